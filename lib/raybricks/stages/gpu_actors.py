"""GPU actors on Ray on Spark: each Ray worker node gets the GPUs Spark assigned to its
Spark task, and Ray hands them out to actors one device (or a share of one) at a time.

    @ray.remote(num_gpus=1)
    class Device: ...
    Device.remote()                         # a GPU of its own: CUDA_VISIBLE_DEVICES is it
    Device.options(num_gpus=0.5).remote()   # two of these share one device

Ray sets `CUDA_VISIBLE_DEVICES` (and `ray.get_gpu_ids()`) for each actor to the device
it was given, among those its node got from Spark. An actor asking for more GPUs than
any node has never starts (Ray does not fail it, it waits): kill it. An actor waiting
for a busy device starts once the actor holding it is killed, on that device.

Traps: a Spark conf `spark.task.resource.gpu.amount` above 0 makes Spark's own tasks
hold GPUs Ray's nodes then miss (keep it at 0); `num_gpus_worker_node` must not exceed a
Spark worker's GPUs; an empty `CUDA_VISIBLE_DEVICES` in the environment makes Ray refuse
a node with GPUs. On a cluster without GPUs the stage is skipped, saying so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raybricks.stages.base import Stage, StageContext, StageFailed, StageSkipped, expect
from raybricks.stages.params import GpuActorsParams


@ray.remote(num_gpus=1, num_cpus=0)
class Device:
    def seen(self) -> dict[str, Any]:
        """The GPUs this actor was given, as Ray and CUDA see them, and those of its node
        (as Spark gave them to the node's task: its raylet's environment)."""
        return {
            "node": ray.get_runtime_context().get_node_id(),
            "gpu_ids": [str(gpu) for gpu in ray.get_gpu_ids()],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "node_devices": _parent_environment().get("CUDA_VISIBLE_DEVICES"),
            "pid": os.getpid(),
        }


def _parent_environment() -> dict[str, str]:
    """This process's parent's environment (a Ray worker's parent is its raylet)."""
    raw = Path(f"/proc/{os.getppid()}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(): value.decode() for key, value in pairs}


class GpuActors(Stage[GpuActorsParams]):
    summary = "actors get GPUs of their own (or a share of one) from the node Spark gave them"
    Params = GpuActorsParams

    @staticmethod
    def headline(evidence: dict[str, Any]) -> str:
        whole = evidence["whole_gpu_actors"]
        return (
            f"{len(whole)} actors on {len({a['node'] for a in whole})} node(s) got a GPU each, "
            f"as Spark assigned it; two shared GPU {evidence['shared'][0]['gpu_ids']}; "
            f"{evidence['too_many']['num_gpus']:g} GPUs stayed pending; a waiting actor took "
            "the device of the one killed"
        )

    def run(self, ctx: StageContext, params: GpuActorsParams) -> None:
        per_node = [n["Resources"].get("GPU", 0.0) for n in ray.nodes() if n["Alive"]]
        if not any(per_node):
            raise StageSkipped(
                "the cluster has no GPU (cluster.num_gpus_worker_node is 0, or Spark's "
                "workers have none); run it with --target local-gpu or on a GPU cluster"
            )
        made: list[Any] = []
        try:
            holders = self._a_device_each(ctx, params, int(sum(per_node)), made)
            self._a_busy_device_is_waited_for(ctx, params, holders, made)
            self._kill(made)
            self._two_share_one(ctx, params, holders[0]["node"], made)
            self._more_than_any_node_has_stays_pending(ctx, params, max(per_node), made)
        finally:
            self._kill(made)

    def _a_device_each(
        self, ctx: StageContext, params: GpuActorsParams, gpus: int, made: list[Any]
    ) -> list[dict[str, Any]]:
        actors = [Device.remote() for _ in range(gpus)]  # type: ignore[attr-defined]
        made += actors
        seen = [
            _seen(actor, params.placement_timeout_seconds, "a one-GPU actor") for actor in actors
        ]
        ctx.record(whole_gpu_actors=[_short(s) for s in seen])
        for actor in seen:
            expect(
                actor["gpu_ids"] == (actor["cuda_visible_devices"] or "").split(","),
                f"ray.get_gpu_ids() {actor['gpu_ids']} and CUDA_VISIBLE_DEVICES "
                f"{actor['cuda_visible_devices']!r} disagree",
            )
            expect(
                set(actor["gpu_ids"]) <= set((actor["node_devices"] or "").split(",")),
                f"GPU {actor['gpu_ids']} is not among those Spark gave its node "
                f"({actor['node_devices']!r})",
            )
        devices = [(actor["node"], tuple(actor["gpu_ids"])) for actor in seen]
        expect(
            len(set(devices)) == len(devices) == gpus,
            f"{gpus} one-GPU actors did not get {gpus} distinct devices: {devices}",
        )
        return seen

    def _a_busy_device_is_waited_for(
        self,
        ctx: StageContext,
        params: GpuActorsParams,
        holders: list[dict[str, Any]],
        made: list[Any],
    ) -> None:
        waiting = Device.remote()  # type: ignore[attr-defined]
        made.append(waiting)
        call = waiting.seen.remote()
        ready, _ = ray.wait([call], timeout=params.pending_check_seconds)
        expect(not ready, "an actor got a GPU while every device was held")
        victim = made[0]  # the actor holding holders[0]'s device
        ray.kill(victim)
        try:
            took = ray.get(call, timeout=params.placement_timeout_seconds)
        except GetTimeoutError:
            raise StageFailed("the waiting actor did not start once a device was freed") from None
        freed = (holders[0]["node"], holders[0]["gpu_ids"])
        ctx.record(waited_for=_short(took), freed=_short(holders[0]))
        expect(
            (took["node"], took["gpu_ids"]) == freed,
            f"the waiting actor got {took['gpu_ids']} on another device than the one freed",
        )

    def _two_share_one(
        self, ctx: StageContext, params: GpuActorsParams, node: str, made: list[Any]
    ) -> None:
        on_node = NodeAffinitySchedulingStrategy(node_id=node, soft=False)
        halves = [
            Device.options(num_gpus=0.5, scheduling_strategy=on_node).remote()  # type: ignore[attr-defined]
            for _ in range(2)
        ]
        made += halves
        seen = [_seen(a, params.placement_timeout_seconds, "a half-GPU actor") for a in halves]
        ctx.record(shared=[_short(s) for s in seen])
        expect(
            seen[0]["gpu_ids"] == seen[1]["gpu_ids"] and len(seen[0]["gpu_ids"]) == 1,
            f"two num_gpus=0.5 actors did not share one device: {[s['gpu_ids'] for s in seen]}",
        )

    def _more_than_any_node_has_stays_pending(
        self, ctx: StageContext, params: GpuActorsParams, per_node: float, made: list[Any]
    ) -> None:
        asked = per_node + 1
        greedy = Device.options(num_gpus=asked).remote()  # type: ignore[attr-defined]
        made.append(greedy)
        ready, _ = ray.wait([greedy.seen.remote()], timeout=params.pending_check_seconds)
        ray.kill(greedy)
        ctx.record(too_many={"num_gpus": asked, "most_on_a_node": per_node, "placed": bool(ready)})
        expect(not ready, f"an actor asking {asked:g} GPUs was placed; no node has that many")

    @staticmethod
    def _kill(actors: list[Any]) -> None:
        for actor in actors:
            ray.kill(actor)
        actors.clear()


def _seen(actor: Any, timeout: float, what: str) -> dict[str, Any]:
    try:
        seen: dict[str, Any] = ray.get(actor.seen.remote(), timeout=timeout)
    except GetTimeoutError:
        raise StageFailed(f"{what} was not placed within {timeout:g} s") from None
    return seen


def _short(seen: dict[str, Any]) -> dict[str, Any]:
    """What the report keeps of an actor's view: its node's id shortened."""
    return {**seen, "node": seen["node"][:8]}
