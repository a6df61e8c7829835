"""GPUs for the Spark raybricks starts: each local worker's own addresses, Spark's conf,
and the checks that refuse GPUs a cluster cannot give, before anything starts."""

from __future__ import annotations

import json
import subprocess

import pytest

from raybricks.cluster.gpus import discovery_script, spark_gpu_conf
from raybricks.databricks import driver
from raybricks.databricks.preflight import check
from raybricks.errors import BadInput
from raybricks.platform.facts import ClusterFacts
from raybricks.settings import ClusterSettings, load_settings
from tests.helpers import ROOT


def discovered(script) -> list[str]:
    done = subprocess.run([script], capture_output=True, text=True, check=True)
    answer = json.loads(done.stdout)
    assert answer["name"] == "gpu"
    return answer["addresses"]


def test_each_local_worker_discovers_gpus_no_other_worker_has(tmp_path):
    """Spark runs the script once per worker as each starts: three workers of two GPUs
    get six distinct addresses; a fourth would get none. The script goes after."""
    with discovery_script("fake", per_worker=2, workers=3, folder=tmp_path) as script:
        seen = [discovered(script) for _ in range(4)]
    assert seen == [["0", "1"], ["2", "3"], ["4", "5"], []]
    assert list(tmp_path.iterdir()) == []


def test_a_users_own_discovery_script_is_used_as_it_is(tmp_path):
    own = tmp_path / "mine.sh"
    with discovery_script(str(own), per_worker=1, workers=2, folder=tmp_path) as script:
        assert script == own


def test_spark_gives_each_executor_its_workers_gpus_and_spark_tasks_none(tmp_path):
    conf = spark_gpu_conf(2, tmp_path / "discover.sh")
    assert conf["spark.worker.resource.gpu.amount"] == "2"
    assert conf["spark.executor.resource.gpu.amount"] == "2"
    assert conf["spark.executorEnv.RAY_ON_SPARK_WORKER_GPU_NUM"] == "2"  # else nvidia-smi
    assert not any(key.startswith("spark.task.resource.gpu") for key in conf)


def test_more_gpus_per_ray_node_than_a_local_worker_has_is_bad_input(monkeypatch):
    monkeypatch.setattr(driver, "existing_spark_conf", lambda: None)
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    settings = load_settings("local-gpu", conf_dir=ROOT / "conf", check_log_path=False)
    assert driver.checked_platform(settings).name == "local"  # one GPU a node, one a worker
    two = load_settings(
        "local-gpu",
        overrides={"cluster.num_gpus_worker_node": "2"},
        conf_dir=ROOT / "conf",
        check_log_path=False,
    )
    with pytest.raises(BadInput, match=r"num_gpus_worker_node = 2 is more than .* 1 GPU"):
        driver.checked_platform(two)


ML_GPU = "16.4.x-gpu-ml-scala2.12"


@pytest.mark.parametrize(
    ("facts", "cluster", "refused", "warned"),
    [
        ({"gpus_per_worker": 1}, {"num_gpus_worker_node": 2}, ["= 2 is more than", "1 GPU"], []),
        ({}, {"num_gpus_worker_node": 0}, [], ["GPU runtime", "GPUs sit idle"]),
        (
            {"gpu_task_amount": 1.0},
            {"num_gpus_worker_node": 1},
            [],
            ["gpu.amount = 1", "set it to 0"],
        ),
        ({"gpus_per_worker": 1}, {"num_gpus_worker_node": 1}, [], []),
    ],
)
def test_the_preflight_of_a_gpu_cluster(facts, cluster, refused, warned):
    verdict = check(
        ClusterFacts(spark_version=ML_GPU, **facts),
        ClusterSettings(num_cpus_worker_node=1, **cluster),
    )
    for found, words in ((verdict.refusals, refused), (verdict.warnings, warned)):
        assert (found != []) == (words != [])
        assert all(word in " ".join(found) for word in words), found


def test_a_workers_gpus_come_from_spark_conf():
    facts = ClusterFacts.from_spark_conf({"spark.executor.resource.gpu.amount": "4"})
    assert facts.gpus_per_worker == 4
