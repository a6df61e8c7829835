"""Named and detached actors: long-lived services that others look up by name.

`Counter.options(name="Counter1", lifetime="detached").remote()` makes an actor that
does not die with the driver that made it, and that any driver or task in the same
namespace reaches with `ray.get_actor("Counter1")`. It lives until killed, so:

- kill it yourself (`ray.kill`); a scheduled job that reruns daily must first remove
  what an earlier, interrupted run left behind, or `Counter1` is "already taken";
- `get_if_exists=True` returns the existing actor instead of failing on the name;
- the lesson's "Limitations" are gone: once killed, the name can be registered again.
"""

from __future__ import annotations

import time
from typing import Any

import ray

from raybricks.stages.base import Stage, StageContext, expect, side_by_side
from raybricks.stages.elsewhere import run_elsewhere
from raybricks.stages.params import DetachedActorsParams

NAMES = ("Counter1", "Counter2")


@ray.remote(num_cpus=0)
class Counter:
    def __init__(self) -> None:
        self.label = "Counter"
        self.count = 0

    def next(self) -> int:
        self.count += 1
        return self.count


class DetachedActors(Stage[DetachedActorsParams]):
    summary = "detached named Counters outlive their creator and are found by name elsewhere"
    Params = DetachedActorsParams

    @staticmethod
    def headline(evidence: dict[str, Any]) -> str:
        return (
            "Counter1 and Counter2 outlived their creator "
            f"(pid {evidence['created_by_driver_pid']}), counted from a task and another "
            "driver; get_if_exists gave the same actor; "
            f"{evidence['leftovers_removed']} leftover(s) removed"
        )

    def run(self, ctx: StageContext, params: DetachedActorsParams) -> None:
        namespace = ray.get_runtime_context().namespace
        ctx.record(leftovers_removed=remove_leftovers(namespace))
        try:
            self._prove(ctx, params, namespace)
        finally:
            remove_leftovers(namespace)

    def _prove(self, ctx: StageContext, params: DetachedActorsParams, namespace: str) -> None:
        created = run_elsewhere(create_counters, namespace=namespace, lifetime=params.lifetime)
        ctx.record(created_by_driver_pid=created["pid"])
        # Counter1 is watched outliving its creator while both counters are used elsewhere.
        side_by_side(
            lambda: _outlives_its_creator(ctx), lambda: _counted_elsewhere(ctx, params, namespace)
        )

        existing = ray.get_actor(NAMES[0])
        again = Counter.options(  # type: ignore[attr-defined]
            name=NAMES[0], lifetime="detached", get_if_exists=True
        ).remote()
        same = again._actor_id == existing._actor_id
        continued = ray.get(again.next.remote())
        ctx.record(get_if_exists_same_actor=same, get_if_exists_next=continued)
        expect(same and continued == params.calls + 1, "get_if_exists made a new actor")

        ray.kill(existing)
        _wait_until(lambda: not _alive(NAMES[0]), ctx)
        reborn = Counter.options(name=NAMES[0], lifetime="detached").remote()  # type: ignore[attr-defined]
        first = ray.get(reborn.next.remote())
        ctx.record(name_reused_after_kill=True, reborn_first_next=first)
        expect(first == 1, f"the re-registered {NAMES[0]} started at {first}")


def _outlives_its_creator(ctx: StageContext) -> None:
    expect(_outlives(NAMES[0], ctx), f"{NAMES[0]} died with the driver that created it")
    ctx.record(outlived_creator=True)


def _counted_elsewhere(ctx: StageContext, params: DetachedActorsParams, namespace: str) -> None:
    """Counter1 from a task, Counter2 from another driver: each counts 1..calls."""
    expected = list(range(1, params.calls + 1))
    clock = time.perf_counter()
    from_task = ray.get(call_from_task.remote(NAMES[0], params.calls))
    task_seconds = time.perf_counter() - clock
    from_driver = run_elsewhere(
        call_counter, namespace=namespace, name=NAMES[1], calls=params.calls
    )
    ctx.record(
        from_task_ok=from_task == expected,
        from_task_calls_per_second=round(params.calls / task_seconds),
        from_other_driver_ok=from_driver == expected,
    )
    expect(from_task == expected, f"{NAMES[0]} from a task gave {from_task[:5]}...")
    expect(from_driver == expected, f"{NAMES[1]} from a driver gave {from_driver[:5]}...")


def remove_leftovers(namespace: str) -> int:
    """Kill this stage's counters left alive in `namespace` (by an earlier run, too).

    Asks the GCS for named actors, not the state API, which needs the dashboard."""
    leftovers = [
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["namespace"] == namespace and actor["name"] in NAMES
    ]
    for name in leftovers:
        ray.kill(ray.get_actor(name, namespace=namespace))
    return len(leftovers)


def create_counters(lifetime: str | None) -> dict[str, Any]:
    """Runs in a short-lived driver that exits right after."""
    import os

    counters = [Counter.options(name=n, lifetime=lifetime).remote() for n in NAMES]  # type: ignore[attr-defined]
    ray.get([c.__ray_ready__.remote() for c in counters])  # up before this driver exits
    return {"pid": os.getpid()}


def call_counter(name: str, calls: int) -> list[int]:
    """Look the counter up by name and call it; runs in a task and in another driver."""
    counter = ray.get_actor(name)
    return ray.get([counter.next.remote() for _ in range(calls)])


call_from_task = ray.remote(num_cpus=0)(call_counter)


def _alive(name: str) -> bool:
    try:
        ray.get_actor(name)
    except ValueError:
        return False
    return True


def _outlives(name: str, ctx: StageContext, watch_seconds: float = 1.0) -> bool:
    """Whether `name` stays alive for a while: a non-detached actor dies a moment after
    its creator exits."""
    deadline = time.monotonic() + watch_seconds
    while time.monotonic() < deadline:
        if not _alive(name):
            return False
        ctx.wait(0.1)
    return True


def _wait_until(condition: Any, ctx: StageContext, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        expect(time.monotonic() < deadline, f"condition not met within {timeout} s")
        ctx.wait(0.1)
