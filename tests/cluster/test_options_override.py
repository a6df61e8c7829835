"""The options_override stage on the session's cluster, and when its pattern breaks."""

from __future__ import annotations

import ray
from ray.util.state import list_actors

from raybricks.report import StageResult
from raybricks.runner import Runner
from raybricks.stages.base import StageContext
from raybricks.stages.options_override import OptionsOverrideParams


def run_stage(ray_cluster, tmp_path, **params) -> StageResult:
    runner = Runner(["options_override"], lambda name: OptionsOverrideParams(**params))
    (result,) = runner.run(
        lambda: StageContext(
            ray.get_runtime_context().namespace, tmp_path, ray_cluster.info.address
        )
    )
    return result


def live_actors() -> list[str]:
    return [a.class_name for a in list_actors(filters=[("state", "!=", "DEAD")])]


def test_options_override_proves_each_override(ray_cluster, tmp_path):
    result = run_stage(ray_cluster, tmp_path)
    assert result.status == "passed", result.error
    evidence = result.evidence
    assert evidence["declared"] == {"num_cpus": 2, "resources": {"CustomResource": 1}}
    assert evidence["cluster_custom_resource"] == 0
    assert evidence["overridden_assigned"] == {"CPU": 1.0}
    assert evidence["service_is_detached"] is True
    first, second = evidence["service_pids"]
    assert first != second  # max_restarts=1 through .options(): restarted once
    assert evidence["service_dead_after_second_kill"] is True
    assert live_actors() == []


def test_options_override_fails_when_the_override_cannot_be_placed(ray_cluster, tmp_path):
    result = run_stage(ray_cluster, tmp_path, override_num_cpus=2, placement_timeout_seconds=1.0)
    assert result.status == "failed"
    assert "was not placed within 1.0 s" in (result.error or "")
    assert live_actors() == []  # the pending actors were killed, not leaked
