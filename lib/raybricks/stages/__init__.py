"""The stage registry. A new stage is one module plus one line here; the order of this
registry is the order in which the stages run by default."""

from __future__ import annotations

from raybricks.stages.actor_pool import ActorPoolStage
from raybricks.stages.base import Stage
from raybricks.stages.detached_actors import DetachedActors
from raybricks.stages.fault_tolerance import FaultTolerance
from raybricks.stages.namespaces import Namespaces
from raybricks.stages.options_override import OptionsOverride
from raybricks.stages.tree_of_actors import TreeOfActors

STAGES: dict[str, type[Stage]] = {
    stage.name: stage
    for stage in (
        Namespaces,
        DetachedActors,
        FaultTolerance,
        OptionsOverride,
        ActorPoolStage,
        TreeOfActors,
    )
}
