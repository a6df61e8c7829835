"""The stages a run can select: the lesson's six, in order, then Spark data through Ray
actors (`batch_inference`) and GPU actors (`gpu_actors`, skipped without GPUs), then
those that installed packages register under the entry-point group `raybricks.stages`
(name = stage name, value = `module:Class`).

The built-in stages are listed without importing them, and so without Ray: settings
are checked before Ray or Spark is imported. A plugin's class is imported when the
catalog is read (its parameters are on the class); one that clashes or fails to
import is bad input.

    catalog = stage_catalog()
    catalog["actor_pool"].load()    # the Stage class, imported now
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata

from raybricks.errors import BadInput
from raybricks.stages.base import Stage, StageParams
from raybricks.stages.params import (
    ActorPoolParams,
    BatchInferenceParams,
    DetachedActorsParams,
    FaultToleranceParams,
    GpuActorsParams,
    NamespacesParams,
    OptionsOverrideParams,
    TreeOfActorsParams,
)

ENTRY_POINT_GROUP = "raybricks.stages"
BUILT_IN_ORIGIN = "raybricks (built-in)"


@dataclass(frozen=True)
class StageEntry:
    name: str
    target: str  # "module:Class"
    params: type[StageParams]
    origin: str = BUILT_IN_ORIGIN  # or the plugin's distribution
    runs_spark_jobs: bool = False  # beside Ray's worker nodes: needs a Spark task slot left

    def load(self) -> type[Stage]:
        module, _, attribute = self.target.partition(":")
        stage: type[Stage] = getattr(importlib.import_module(module), attribute)
        return stage


Catalog = dict[str, StageEntry]

BUILT_IN: Catalog = {
    entry.name: entry
    for entry in (
        StageEntry("namespaces", "raybricks.stages.namespaces:Namespaces", NamespacesParams),
        StageEntry(
            "detached_actors",
            "raybricks.stages.detached_actors:DetachedActors",
            DetachedActorsParams,
        ),
        StageEntry(
            "fault_tolerance",
            "raybricks.stages.fault_tolerance:FaultTolerance",
            FaultToleranceParams,
        ),
        StageEntry(
            "options_override",
            "raybricks.stages.options_override:OptionsOverride",
            OptionsOverrideParams,
        ),
        StageEntry("actor_pool", "raybricks.stages.actor_pool:ActorPoolStage", ActorPoolParams),
        StageEntry(
            "tree_of_actors", "raybricks.stages.tree_of_actors:TreeOfActors", TreeOfActorsParams
        ),
        StageEntry(
            "batch_inference",
            "raybricks.stages.batch_inference:BatchInference",
            BatchInferenceParams,
            runs_spark_jobs=True,
        ),
        StageEntry("gpu_actors", "raybricks.stages.gpu_actors:GpuActors", GpuActorsParams),
    )
}


def stage_catalog() -> Catalog:
    """The built-in stages, then every installed plugin's, in entry-point order."""
    catalog = dict(BUILT_IN)
    for point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        origin = _distribution(point)
        clash = catalog.get(point.name)
        if clash is not None:
            raise BadInput(
                f"stage {point.name!r} of {origin} clashes with the one of {clash.origin}; "
                f"rename it in {origin}'s entry points ({ENTRY_POINT_GROUP}) or uninstall one"
            )
        try:
            stage = point.load()
        except Exception as exc:
            raise BadInput(
                f"stage {point.name!r} of {origin} cannot be imported ({point.value}: "
                f"{type(exc).__name__}: {exc}); fix or uninstall {origin}"
            ) from None
        if not (isinstance(stage, type) and issubclass(stage, Stage)):
            raise BadInput(
                f"stage {point.name!r} of {origin} names {point.value}, which is not a "
                "subclass of raybricks.stages.Stage; point the entry point at one"
            )
        catalog[point.name] = StageEntry(point.name, point.value, stage.Params, origin)
    return catalog


def _distribution(point: metadata.EntryPoint) -> str:
    dist = point.dist
    return (
        f"package {dist.name} {dist.version}" if dist is not None else f"entry point {point.value}"
    )
