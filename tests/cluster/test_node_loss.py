"""Node loss: a Ray worker node killed from outside in the middle of a stage.

The stage's restartable actor must come back on another node and answer, the run
must record which node was lost, the metrics sampler must go on with the other nodes,
nothing may hang, and Ray on Spark must relaunch a node so the cluster is whole again
(the session's later tests rely on that too)."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, ClassVar

import pytest
import ray
from benchmarks.processes import kill_node, wait_for

from raybricks.cluster.lifecycle import live_worker_nodes
from raybricks.metrics.sampler import Sampler
from raybricks.run.runner import Runner
from raybricks.stages.base import Stage, StageContext, StageParams, expect

ANSWER_TIMEOUT = 90  # a restart elsewhere takes seconds; a hang must still end


@ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1)  # a CPU: on a worker node
class Survivor:
    def node(self) -> str:
        return ray.get_runtime_context().get_node_id()


class SurvivesNodeLoss(Stage[StageParams]):
    """Calls a restartable actor until it answers from a node other than its first."""

    summary = "a restartable actor outlives its node"
    placed: ClassVar[queue.Queue[str]] = queue.Queue()

    def run(self, ctx: StageContext, params: StageParams) -> None:
        survivor = Survivor.remote()  # type: ignore[attr-defined]
        try:
            first = ray.get(survivor.node.remote(), timeout=ANSWER_TIMEOUT)
            ctx.record(first_node=first)
            type(self).placed.put(first)
            deadline = time.monotonic() + ANSWER_TIMEOUT
            node = first
            while node == first and time.monotonic() < deadline:
                ctx.wait(0.2)
                node = ray.get(survivor.node.remote(), timeout=ANSWER_TIMEOUT)
            ctx.record(answered_from=node)
            expect(node != first, f"the actor never left node {first}")
        finally:
            ray.kill(survivor, no_restart=True)


@pytest.fixture
def whole_cluster_after(ray_cluster) -> Any:
    yield
    wanted = ray_cluster.info.min_worker_nodes
    relaunched = wait_for(lambda: len(live_worker_nodes()) >= wanted, timeout=180, interval=1)
    assert relaunched, f"Ray on Spark did not bring the cluster back to {wanted} worker nodes"


@pytest.mark.timeout(420)
def test_a_worker_node_killed_mid_stage_is_survived_and_recorded(ray_cluster, whole_cluster_after):
    runner = Runner(
        [("survives_node_loss", SurvivesNodeLoss)],
        lambda _: StageParams(),
        timeout_seconds=240,
        worker_nodes=live_worker_nodes,
    )

    killed: list[tuple[str, int]] = []

    def kill_when_placed() -> None:
        victim = SurvivesNodeLoss.placed.get(timeout=120)
        killed.append((victim, kill_node(victim)))

    killer = threading.Thread(target=kill_when_placed, daemon=True)
    killer.start()
    sampler = Sampler(1.0, time.monotonic())
    with sampler.running(head=ray_cluster.info.head):
        (result,) = runner.run(
            lambda _: StageContext("raybricks-tests", ray_cluster.log_dir, ray_cluster.info.address)
        )
    killer.join(5)
    ((victim, processes),) = killed
    assert processes > 1, "the node's processes were not found"
    assert result.status == "passed", result.error
    assert result.evidence["first_node"] == victim
    assert result.evidence["answered_from"] != victim
    assert result.evidence["worker_nodes_lost"] == [victim]
    # The lost node's series ends (gone from the node table, or a gap first); the
    # others' went on after it.
    series = sampler.series()
    ends = {node["node_id"]: node["t"][-1] for node in series["nodes"]}
    assert ends[victim] < series["cluster"]["t"][-1]
    assert max(t for node, t in ends.items() if node != victim) == series["cluster"]["t"][-1]
