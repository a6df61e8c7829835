"""The job on GPU worker nodes, on a machine without a GPU: `--target local-gpu` gives
each Spark worker one fake GPU (scheduling-only, found by raybricks' discovery script, as
Ray's own tests/spark/test_GPU.py fakes them), and each Ray worker node gets its Spark
task's. Ray sets CUDA_VISIBLE_DEVICES and ray.get_gpu_ids() per actor as on real GPUs,
which is what the runs prove; with fast start, raybricks' launcher starts the nodes and
must hand them the addresses Spark assigned, as Ray's own launch does."""

from __future__ import annotations

import pytest
from benchmarks.processes import left_after

from raybricks.stages.registry import BUILT_IN as STAGES
from tests.cluster.conftest import FullRun, whole_run
from tests.cluster.runs import RUN_TIMEOUT, report_of, stage_statuses
from tests.helpers import ROOT


def every_stage_passed_gpu_actors_with_its_evidence(run: FullRun, fast_start: str) -> None:
    assert run.done.returncode == 0, run.done.stderr[-3000:]
    report = report_of(run.run_dir)
    assert stage_statuses(report) == [(name, "passed") for name in STAGES]
    cluster = report["cluster"]
    assert (cluster["gpus_per_worker_node"], cluster["total_gpus"]) == (1, 2.0)
    assert cluster["fast_start"] == fast_start
    evidence = run.evidence("gpu_actors")
    whole = evidence["whole_gpu_actors"]
    # Each of two actors got a device of its own, on its own node: the one Spark gave it.
    assert len({(a["node"], tuple(a["gpu_ids"])) for a in whole}) == len(whole) == 2
    for actor in whole:
        assert [actor["cuda_visible_devices"]] == actor["gpu_ids"] == [actor["node_devices"]]
    assert len({actor["node_devices"] for actor in whole}) == 2  # each worker its own
    shared = evidence["shared"]
    assert shared[0]["gpu_ids"] == shared[1]["gpu_ids"] and shared[0]["pid"] != shared[1]["pid"]
    assert evidence["too_many"] == {"num_gpus": 2.0, "most_on_a_node": 1.0, "placed": False}
    freed, took = evidence["freed"], evidence["waited_for"]
    assert (took["node"], took["gpu_ids"]) == (freed["node"], freed["gpu_ids"])
    assert took["pid"] != freed["pid"]
    assert left_after(run.mark) == []


@pytest.mark.timeout(RUN_TIMEOUT)
def test_the_whole_job_passes_on_fake_gpus_each_actor_on_the_device_spark_assigned(full_run):
    every_stage_passed_gpu_actors_with_its_evidence(full_run, fast_start="on")
    console = full_run.done.stderr
    assert "2 worker nodes, 2 CPUs, 2 GPUs" in console  # the cluster, as it was ready


@pytest.mark.slow  # a second whole job on GPUs, through Ray's own start (its fixed waits)
@pytest.mark.timeout(RUN_TIMEOUT)
def test_the_whole_job_passes_on_fake_gpus_with_rays_own_start(stray_token_home, tmp_path):
    conf = tmp_path / "local-gpu.yml"
    conf.write_text((ROOT / "conf" / "local-gpu.yml").read_text() + "  fast_start: false\n")
    run = whole_run("local-gpu", stray_token_home, tmp_path, "--conf", conf)
    every_stage_passed_gpu_actors_with_its_evidence(run, fast_start="off")
