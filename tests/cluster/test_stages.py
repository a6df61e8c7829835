"""Every stage: in the whole job (the full run's report) it passes with the evidence its
pattern should leave; on the session's cluster it fails when its pattern is broken, and
leaves no actor behind either way (the fixture checks). A daily job reruns in the same
namespace: detached_actors removes the counters an interrupted run left (on the session's
cluster, with one left there first), options_override names its service per run, and
`make test-slow` runs whole jobs back to back (benchmarks/reliability.py)."""

from __future__ import annotations

import sys
from typing import Any

import pyarrow as pa
import pytest
import ray
from ray.util.state import list_actors

from raybricks.cluster.lifecycle import ClusterInfo
from raybricks.report.model import StageResult
from raybricks.run.runner import Runner
from raybricks.stages.base import Stage, StageContext, StageParams
from raybricks.stages.batch_inference import BatchInference
from raybricks.stages.params import ActorPoolParams
from raybricks.stages.pool import DEFAULT_DEPTH
from raybricks.stages.registry import BUILT_IN as STAGES
from raybricks.stages.scorer import Scorer


def run_stage(
    name: str,
    tmp_path,
    cluster: ClusterInfo,
    stage_class: type[Stage] | None = None,
    unchecked: StageParams | None = None,
    **params: Any,
) -> StageResult:
    """`name` run as a run runs it (its params, its Spark session and handoff folder).
    Params a conf file could not give come as `unchecked` (`Params.model_construct`)."""
    entry = STAGES[name]
    runner = Runner(
        [(name, stage_class or entry.load())],
        lambda _: unchecked or entry.params(**params),
        timeout_seconds=120,
    )

    def context(stage: str) -> StageContext:
        handoff = tmp_path / "handoff" / stage
        namespace = ray.get_runtime_context().namespace
        return StageContext(
            namespace, tmp_path, cluster.address, cluster.spark, handoff, f"file://{handoff}"
        )

    (result,) = runner.run(context)
    return result


# Ray Data's own services, one each per cluster for its life (not a stage's actors).
RAY_DATA_SERVICES = {
    "_StatsActor",
    "_AutoscalingCoordinatorActor",
    "ActorLocationTracker",
}


@pytest.fixture
def stage(ray_cluster, tmp_path):
    def run(
        name: str,
        stage_class: type[Stage] | None = None,
        unchecked: StageParams | None = None,
        **params: Any,
    ) -> StageResult:
        return run_stage(name, tmp_path, ray_cluster.info, stage_class, unchecked, **params)

    yield run
    live = list_actors(filters=[("state", "!=", "DEAD")])
    left = [(a.class_name, a.name, a.state) for a in live if a.class_name not in RAY_DATA_SERVICES]
    assert left == [], f"actors left behind: {left}"


def passed(stage, name: str, **params: Any) -> dict[str, Any]:
    result = stage(name, **params)
    assert result.status == "passed", result.error
    return result.evidence


def test_namespaces_evidence(full_run):
    evidence = full_run.evidence("namespaces")
    assert evidence["from_other_driver"]["found_plainly"] is False
    assert evidence["from_other_driver"]["found_across"] == evidence["namespace"]
    assert evidence["same_name_in_both"] == [evidence["namespace"], evidence["other_namespace"]]
    assert evidence["two_distinct_actors"] is True


def test_namespaces_fails_when_the_other_driver_shares_the_namespace(stage):
    result = stage("namespaces", other_namespace_suffix="")
    assert result.status == "failed"
    assert "found 'probe'" in (result.error or "")


def test_detached_actors_evidence_after_removing_what_an_earlier_run_left(stage):
    from raybricks.stages.detached_actors import Counter

    namespace = ray.get_runtime_context().namespace
    Counter.options(name="Counter1", lifetime="detached").remote()  # an interrupted run's
    evidence = passed(stage, "detached_actors", calls=20)
    assert evidence["leftovers_removed"] == 1
    assert evidence["outlived_creator"] is True
    assert evidence["from_task_ok"] and evidence["from_other_driver_ok"]
    assert evidence["from_task_calls_per_second"] > 0
    assert evidence["get_if_exists_same_actor"] is True and evidence["get_if_exists_next"] == 21
    assert evidence["reborn_first_next"] == 1
    assert namespace == ray.get_runtime_context().namespace


def test_detached_actors_fails_when_counters_die_with_their_creator(stage):
    result = stage("detached_actors", lifetime=None)
    assert result.status == "failed"
    assert "died with the driver that created it" in (result.error or "")


def test_fault_tolerance_evidence(full_run):
    evidence = full_run.evidence("fault_tolerance")  # max_restarts 2, unlimited_crashes 3
    assert evidence["retried_call_answer"] == 42
    assert evidence["pids_across_crash"][0] != evidence["pids_across_crash"][1]
    assert evidence["dead_past_max_restarts"] is True
    assert evidence["runs_of_failing_call"] == 1
    assert evidence["runs_with_retry_exceptions"] == 2  # 1 + its max_task_retries (1)
    assert evidence["kill_no_restart_dead"] is True
    assert evidence["unlimited_generations"] == [1, 2, 3, 4]


def test_fault_tolerance_fails_when_the_restart_limit_is_too_low(stage):
    result = stage("fault_tolerance", max_restarts=0, unlimited_crashes=1)  # the other story
    assert result.status == "failed"
    assert "not retried" in (result.error or "")


def test_options_override_evidence(full_run):
    evidence = full_run.evidence("options_override")
    assert evidence["cluster_custom_resource"] == 0
    assert evidence["overridden_assigned"] == {"CPU": 1.0}
    assert evidence["service_is_detached"] is True
    assert evidence["service_dead_after_second_kill"] is True


def test_options_override_fails_when_the_override_cannot_be_placed(stage):
    result = stage("options_override", override_num_cpus=2, placement_timeout_seconds=1.0)
    assert result.status == "failed"
    assert "was not placed within 1.0 s" in (result.error or "")


def test_actor_pool_evidence(full_run):
    evidence = full_run.evidence("actor_pool")
    assert evidence["map"] == [2, 4, 6, 8]
    assert sorted(evidence["map_unordered"]) == [2, 4, 6, 8]
    assert evidence["slow_call_answer_after_timeout"] == 42
    assert evidence["one_bad_item"][2].startswith("error: refusing to double 3")
    assert evidence["usable_after_error"] == [10]
    assert evidence["actor_pool_map_items_per_second"] > 0
    assert evidence["direct_round_robin_items_per_second"] > 0
    # the pipelined pool's figure beside ActorPool's
    assert evidence["pipelined_pool_map_items_per_second"] > 0
    assert evidence["pipeline_depth"] == DEFAULT_DEPTH


def test_actor_pool_fails_when_get_next_does_not_time_out(stage):
    """The stage's own check, behind the params' refusal of a timeout this long."""
    unchecked = ActorPoolParams.model_construct(
        slow_call_seconds=0.05, get_next_timeout_seconds=5.0, throughput_items=50
    )
    result = stage("actor_pool", unchecked=unchecked)
    assert result.status == "failed"
    assert "did not time out" in (result.error or "")


def test_tree_of_actors_evidence(full_run):
    evidence = full_run.evidence("tree_of_actors")
    first_states = evidence["timeline"][0][1]
    assert set(first_states.values()) == {"RUNNING"}
    assert evidence["final_states"] == {"lr": "DONE", "cl": "DONE", "nn": "DONE"}
    assert evidence["restarted"] == ["cl"]  # in the workers' own words
    assert "cl" in evidence["retrained"]  # the supervisor noticed the lost call
    for model in evidence["models"].values():
        assert model["steps"] == 8 and model["loss"] < model["first_loss"]


def test_tree_of_actors_fails_when_a_worker_never_reaches_done(stage):
    result = stage("tree_of_actors", steps=10_000, step_seconds=0.05, timeout_seconds=2.0)
    assert result.status == "failed"
    assert "not all DONE within 2.0 s" in (result.error or "")


# A table small enough for the session cluster, still many batches per actor.
LIGHT_INFERENCE = {"rows": 6_000, "partitions": 2, "batch_size": 500, "load_seconds": 0.0}


def test_batch_inference_evidence(full_run):
    evidence = full_run.evidence("batch_inference")
    assert evidence["rows_out"] == evidence["rows"] == 200_000
    bad = ("repeated_ids", "missing_ids", "unknown_ids", "wrong_scores")
    assert [evidence[key] for key in bad] == [0, 0, 0, 0]
    assert evidence["actors"] >= 1 and set(evidence["loads_by_pid"].values()) == {1}
    assert set(evidence["scoring_pids"]) <= set(evidence["loads_by_pid"])
    assert evidence["calls"] == 8  # 200,000 rows in blocks of 25,000
    assert set(evidence["seconds"]) == {"spark_to_ray", "actors", "ray_to_spark"}
    assert evidence["rows_per_second"] > 0
    assert 0 <= evidence["warm_actors"] <= evidence["actors"]
    to_ray, to_spark = evidence["handoffs"]
    # 200,000 rows in, their ids and scores (3.2 MB) out: each within its Arrow bound.
    assert (to_ray["route"], to_spark["route"]) == ("arrow", "arrow")
    assert to_ray["rows"] == to_spark["rows"] == 200_000
    assert not (full_run.run_dir / "handoff").exists()  # gone as the stage ended


def test_batch_inference_passes_twice_in_a_row_also_with_a_scorer_killed(stage, tmp_path):
    """The second time a scorer's process dies mid-run: it is replaced (a new process,
    its own model load), its batch retried, and the table is still exactly-once. Nothing
    of either handoff is left."""
    first = passed(stage, "batch_inference", **LIGHT_INFERENCE)
    assert not first["scorer_crashed"]
    assert not (tmp_path / "handoff" / "batch_inference").exists()
    second = passed(stage, "batch_inference", crash_after_batches=3, **LIGHT_INFERENCE)
    assert second["scorer_crashed"] is True
    assert (second["rows_out"], second["missing_ids"], second["wrong_scores"]) == (6_000, 0, 0)
    assert second["actors"] >= 2  # the one that died, and the one that took its place
    assert set(second["scoring_pids"]) <= set(second["loads_by_pid"])
    assert set(second["loads_by_pid"].values()) == {1}
    assert not (tmp_path / "handoff" / "batch_inference").exists()


class BrokenScorer(Scorer):
    """Loses the last row of every third block, and is off by a millionth on one id in a
    thousand."""

    @ray.method(num_returns=2)
    def score(self, block: pa.Table) -> tuple[pa.Table, dict[str, int]]:
        scored, call = Scorer.score(self, block)
        ids = scored.column("id").to_numpy()
        off = scored.column("score").to_numpy() + (ids % 1000 == 0) * 1e-6
        scored = scored.set_column(1, "score", pa.array(off))
        return (scored.slice(0, scored.num_rows - 1) if self.calls % 3 == 0 else scored), call


def test_batch_inference_fails_when_a_scorer_drops_rows_and_sees_wrong_scores(stage):
    """Both checks run on what came back before the stage judges it."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # shipped by value
    broken = type("BatchInferenceBroken", (BatchInference,), {"scorer": BrokenScorer})
    result = stage("batch_inference", broken, **LIGHT_INFERENCE)
    assert result.status == "failed"
    assert "not exactly once" in (result.error or "") and "missing" in (result.error or "")
    assert result.evidence["missing_ids"] > 0
    assert result.evidence["wrong_scores"] > 0  # ids 0, 1000, ... scored off, unless dropped


def test_gpu_actors_is_skipped_saying_why_on_a_cluster_without_gpus(stage):
    result = stage("gpu_actors")
    assert (result.status, result.error) == ("skipped", None)
    assert result.reason.startswith("the cluster has no GPU")
