"""`.options()` overrides what `@ray.remote` declared, per instance.

The lesson declares `Foo` with `num_cpus=2, resources={"CustomResource": 1}`. No node
of this cluster has a `CustomResource`, so as declared, Foo can never be placed: Ray
does not fail, it leaves the actor pending forever. Wait on it with a timeout and kill
it, or the job hangs and the pending actor leaks. `Foo.options(num_cpus=1,
resources=None)` is the same class with the requirements replaced, and runs.

`.options()` takes every `@ray.remote` argument, so the same call also names an actor,
detaches it from its driver's lifetime and sets its restart limit:

    Foo.options(name="svc", lifetime="detached", max_restarts=1).remote()

Traps: a detached actor outlives the job, so kill it yourself; `ray.kill(a,
no_restart=False)` counts as a crash and uses up one of `max_restarts`.
"""

from __future__ import annotations

import os
import time
from typing import Any

import ray
from ray.exceptions import GetTimeoutError
from ray.util import state

from raybricks.stages.base import Stage, StageContext, StageFailed, expect
from raybricks.stages.lifecycle import died, pid_after_restart
from raybricks.stages.params import OptionsOverrideParams


@ray.remote(num_cpus=2, resources={"CustomResource": 1})
class Foo:
    def method(self) -> int:
        return 1

    def pid(self) -> int:
        return os.getpid()

    def placement(self) -> dict[str, Any]:
        """Where this instance runs and what Ray assigned to it."""
        context = ray.get_runtime_context()
        return {"pid": os.getpid(), "assigned": context.get_assigned_resources()}


class OptionsOverride(Stage[OptionsOverrideParams]):
    summary = "Foo as declared stays pending; .options() overrides resources, name, lifetime"
    Params = OptionsOverrideParams

    @staticmethod
    def headline(evidence: dict[str, Any]) -> str:
        return (
            f"Foo as declared ({evidence['declared']}) stayed pending "
            f"{evidence['declared_pending_after_seconds']:g} s; .options() ran it with "
            f"{evidence['overridden_assigned']}, detached and named"
        )

    def run(self, ctx: StageContext, params: OptionsOverrideParams) -> None:
        made: list[Any] = []
        try:
            # Foo as declared is watched staying pending while the overrides are shown.
            clock = time.monotonic()
            declared = Foo.remote()  # type: ignore[attr-defined]
            made.append(declared)
            declared_call = declared.method.remote()
            self._resources_overridden(ctx, params, made)
            self._name_lifetime_restarts_overridden(ctx, params, made)
            self._declared_stays_pending(ctx, params, declared_call, clock)
        finally:
            for actor in made:
                ray.kill(actor, no_restart=True)

    def _declared_stays_pending(
        self, ctx: StageContext, params: OptionsOverrideParams, call: Any, clock: float
    ) -> None:
        left = params.pending_check_seconds - (time.monotonic() - clock)
        ready, _ = ray.wait([call], timeout=max(0.0, left))
        ctx.record(
            declared={"num_cpus": 2, "resources": {"CustomResource": 1}},
            declared_pending_after_seconds=round(time.monotonic() - clock, 2),
            cluster_custom_resource=ray.cluster_resources().get("CustomResource", 0),
        )
        expect(not ready, "Foo as declared was placed, but no node should have CustomResource")

    def _resources_overridden(
        self, ctx: StageContext, params: OptionsOverrideParams, made: list[Any]
    ) -> None:
        bar = Foo.options(num_cpus=params.override_num_cpus, resources=None).remote()  # type: ignore[attr-defined]
        made.append(bar)
        placed = _placement(bar, params.placement_timeout_seconds, "Foo.options(...)")
        ray.kill(bar)  # it holds a CPU, which stages running beside this one may need
        assigned = placed["assigned"]
        ctx.record(overridden_assigned=assigned)
        expect(
            "CustomResource" not in assigned, f"resources=None kept the custom resource: {assigned}"
        )
        expect(
            assigned.get("CPU", 0) == params.override_num_cpus,
            f"asked num_cpus={params.override_num_cpus}, assigned {assigned}",
        )

    def _name_lifetime_restarts_overridden(
        self, ctx: StageContext, params: OptionsOverrideParams, made: list[Any]
    ) -> None:
        name = f"Foo-{ctx.run_dir.name}"
        service = Foo.options(  # type: ignore[attr-defined]
            num_cpus=params.override_num_cpus,
            resources=None,
            name=name,
            lifetime="detached",
            max_restarts=1,
        ).remote()
        made.append(service)
        first = _placement(ray.get_actor(name), params.placement_timeout_seconds, name)
        info = state.get_actor(service._actor_id.hex())
        ctx.record(service_name=name, service_is_detached=bool(info and info.is_detached))
        expect(bool(info and info.is_detached), f"{name} is not detached: {info}")

        ray.kill(service, no_restart=False)  # a crash: the one allowed restart
        second = pid_after_restart(ctx, service, first["pid"], params.placement_timeout_seconds)
        ray.kill(service, no_restart=False)  # restarts used up: now it stays dead
        dead = died(ctx, service, params.placement_timeout_seconds)
        ctx.record(service_pids=[first["pid"], second], service_dead_after_second_kill=dead)
        expect(dead, f"{name} came back a second time despite max_restarts=1")


def _placement(actor: Any, timeout: float, what: str) -> dict[str, Any]:
    try:
        return ray.get(actor.placement.remote(), timeout=timeout)
    except GetTimeoutError:
        raise StageFailed(f"{what} was not placed within {timeout} s") from None
