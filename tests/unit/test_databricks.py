"""Databricks without a workspace: the preflight's verdicts from a cluster's facts,
`raybricks doctor` through the real databricks-sdk against a workspace on loopback,
and the start hook's notebook-free parts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from raybricks.cli import main
from raybricks.databricks import job_hook
from raybricks.databricks.preflight import check
from raybricks.platform import Platform
from raybricks.platform.facts import ClusterFacts
from raybricks.platform.master import spark_master
from raybricks.settings import ClusterSettings, load_settings
from tests.unit.fake_workspace import Workspace, reached_by_the_sdk

ML = "16.4.x-cpu-ml-scala2.12"
TAGS = "spark.databricks.clusterUsageTags."


def facts(**given) -> ClusterFacts:
    base = {"cluster_id": "0101-000000-abcd", "org_id": "1234567890", "spark_version": ML}
    return ClusterFacts(**{**base, **given})


def test_a_dedicated_ml_cluster_passes_without_warnings():
    verdict = check(facts(access_mode="SINGLE_USER"), ClusterSettings())
    assert (verdict.refusals, verdict.warnings) == ([], [])


@pytest.mark.parametrize(
    ("key", "runtime"), [("18.x-cpu-ml-scala2.13", "18"), ("17.3.x-cpu-ml-scala2.13", "17.3")]
)
def test_todays_runtime_keys_pass(key, runtime):
    verdict = check(facts(spark_version=key, runtime_version=runtime), ClusterSettings())
    assert verdict.refusals == []


def test_a_runtime_named_by_its_major_alone_is_still_dated():
    (refusal,) = check(facts(spark_version="11.x-cpu-ml-scala2.12"), ClusterSettings()).refusals
    assert refusal.startswith("Databricks runtime 11 is older than Ray on Spark supports")


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({"spark_version": "16.4.x-scala2.12"}, ["16.4.x-scala2.12 is not an ML runtime"]),
        ({"spark_version": "11.3.x-cpu-ml-scala2.12"}, ["runtime 11.3 is older", "12.2"]),
        ({"access_mode": "USER_ISOLATION"}, ["USER_ISOLATION", "SINGLE_USER"]),
        ({"has_spark_context": False}, ["no SparkContext", "classic cluster"]),
    ],
)
def test_each_refusal_is_one_line_naming_the_value_and_the_fix(given, words):
    (refusal,) = check(facts(**given), ClusterSettings()).refusals
    assert "\n" not in refusal
    assert all(word in refusal for word in words), refusal


@pytest.mark.parametrize(
    ("given", "cluster", "words"),
    [
        ({"gpu_task_amount": 0.5}, {}, ["spark.task.resource.gpu.amount = 0.5", "set it to 0"]),
        ({"autoscale": (1, 4)}, {"max_worker_nodes": 2}, ["autoscales (1 to 4", "below"]),
        ({"cores_per_worker": 2}, {"num_cpus_worker_node": 4}, ["= 4 is more than", "2 cores"]),
    ],
)
def test_each_trap_is_a_warning_not_a_refusal(given, cluster, words):
    verdict = check(facts(**given), ClusterSettings(**cluster))
    assert verdict.refusals == []
    (warning,) = verdict.warnings
    assert all(word in warning for word in words), warning


def test_an_autoscaling_spark_with_ray_autoscaling_too_is_no_trap():
    settings = ClusterSettings(min_worker_nodes=1, max_worker_nodes=4)
    assert check(facts(autoscale=(1, 4)), settings).warnings == []


def test_facts_come_from_the_clusters_spark_conf_tags():
    conf = {
        f"{TAGS}clusterId": "0101-000000-abcd",
        f"{TAGS}clusterOwnerOrgId": "1234567890",
        f"{TAGS}sparkVersion": ML,
        f"{TAGS}dataSecurityMode": "SINGLE_USER",
        f"{TAGS}clusterMinWorkers": "1",
        f"{TAGS}clusterMaxWorkers": "3",
        "spark.task.resource.gpu.amount": "1",
    }
    read = ClusterFacts.from_spark_conf(conf)
    assert (read.cluster_id, read.org_id, read.spark_version) == (
        "0101-000000-abcd",
        "1234567890",
        ML,
    )
    assert (read.access_mode, read.autoscale, read.gpu_task_amount) == ("SINGLE_USER", (1, 3), 1.0)


@pytest.mark.parametrize(
    ("workspace", "url"),
    [
        (None, "/driver-proxy/o/1234567890/0101-000000-abcd/8265/"),
        ("adb-1.azuredatabricks.net", "https://adb-1.azuredatabricks.net/driver-proxy/o/"),
    ],
)
def test_the_dashboard_is_reached_through_the_driver_proxy(workspace, url, monkeypatch):
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    proxied = facts(workspace_url=workspace).driver_proxy_url(8265)
    assert proxied.startswith(url) and proxied.endswith("/1234567890/0101-000000-abcd/8265/")


def test_without_workspace_credentials_nodes_get_rays_variables_and_a_warning(monkeypatch, caplog):
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t" * 64)
    with caplog.at_level(logging.WARNING):
        variables = job_hook.JobStartHook().custom_environment_variables()
    assert variables["GLOO_SOCKET_IFNAME"] == "eth0" and variables["RAY_AUTH_TOKEN"] == "t" * 64
    assert "DATABRICKS_TOKEN" not in variables
    assert "cannot reach the workspace" in caplog.text


def test_with_workspace_credentials_nodes_get_them_as_rays_hook_intends(monkeypatch):
    monkeypatch.setenv("DATABRICKS_HOST", "https://example.cloud.databricks.com")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-secret")
    variables = job_hook.JobStartHook().custom_environment_variables()
    assert variables["DATABRICKS_TOKEN"] == "dapi-secret"
    assert variables["DISABLE_MLFLOW_INTEGRATION"] == "TRUE"


def test_no_runtime_internals_is_a_warning_and_no_notebook_shutdown_is_logged(caplog):
    hook = job_hook.JobStartHook()
    with caplog.at_level(logging.INFO):
        hook.on_spark_job_created("group-1")
        hook.on_cluster_created(ray_cluster_handler=None)
    assert "not registered as a background job" in caplog.text
    assert "no notebook-idle auto-shutdown" in caplog.text


# -- raybricks doctor, against a workspace on loopback ------------------------------


def cluster_details(**given) -> dict:
    return {
        "cluster_id": "0101-000000-abcd",
        "spark_version": ML,
        "node_type_id": "i3.xlarge",
        "data_security_mode": "SINGLE_USER",
        "num_workers": 2,
        **given,
    }


@pytest.fixture
def workspace(monkeypatch, tmp_path):
    fake = Workspace(
        node_types=[
            {"node_type_id": "i3.xlarge", "num_cores": 4.0},
            {"node_type_id": "g5.xlarge", "num_cores": 4.0, "num_gpus": 1},
        ]
    )
    with reached_by_the_sdk(fake, monkeypatch, tmp_path):
        yield fake


DOCTOR = ["doctor", "--cluster-id", "0101-000000-abcd", "--target", "dev"]


def test_doctor_passes_a_cluster_that_can_run_ray(workspace, capsys):
    workspace.clusters["0101-000000-abcd"] = cluster_details()
    assert main(DOCTOR) == 0
    assert "can run Ray on Spark" in capsys.readouterr().out


def test_doctor_refuses_a_runtime_without_ml_with_exit_2(workspace, capsys):
    workspace.clusters["0101-000000-abcd"] = cluster_details(spark_version="16.4.x-scala2.12")
    assert main(DOCTOR) == 2
    assert "refused: Databricks runtime 16.4.x-scala2.12 is not an ML runtime" in (
        capsys.readouterr().out
    )


def test_doctor_warns_of_a_node_type_too_small_for_the_settings(workspace, capsys):
    workspace.clusters["0101-000000-abcd"] = cluster_details(
        autoscale={"min_workers": 1, "max_workers": 4}
    )
    assert main([*DOCTOR, "--num-cpus-worker-node", "8"]) == 0
    out = capsys.readouterr().out
    assert "warning: cluster.num_cpus_worker_node = 8 is more than a Spark worker's 4 cores" in out
    assert "warning: the Spark cluster autoscales (1 to 4 workers)" in out


def test_doctor_refuses_more_gpus_per_ray_node_than_the_node_type_has(workspace, capsys):
    workspace.clusters["0101-000000-abcd"] = cluster_details(
        spark_version="16.4.x-gpu-ml-scala2.12", node_type_id="g5.xlarge"
    )
    assert main([*DOCTOR, "--target", "gpu"]) == 0  # one GPU a node, one a worker
    assert main([*DOCTOR, "--target", "gpu", "--num-gpus-worker-node", "2"]) == 2
    out = capsys.readouterr().out
    assert "refused: cluster.num_gpus_worker_node = 2 is more than a Spark worker's 1 GPU" in out


def test_doctor_on_an_unknown_cluster_says_so_in_one_line(workspace, capsys):
    assert main(DOCTOR) == 1
    assert capsys.readouterr().err.strip().endswith("does not exist in " + workspace_host())


def workspace_host() -> str:
    import os

    return os.environ["DATABRICKS_HOST"]


def test_off_databricks_no_check_runs_and_raybricks_starts_spark(monkeypatch):
    """No Spark yet (raybricks starts its own), nor tags: nothing to check."""
    from raybricks.databricks import driver
    from raybricks.databricks.driver import checked_platform

    monkeypatch.setattr(driver, "existing_spark_conf", lambda: None)  # none in this process
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    platform = checked_platform(load_settings("local", check_log_path=False))
    assert (platform.name, platform.facts, platform.temp_root) == ("local", None, Path("/tmp"))
    assert platform.spark_master == spark_master("local-cluster[3,1,1024]")


def test_serverless_or_spark_connect_is_refused_before_anything_starts(monkeypatch):
    from raybricks.databricks.driver import checked_platform
    from raybricks.errors import BadInput

    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "client.2.0")
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
    with pytest.raises(BadInput, match="no SparkContext"):
        checked_platform(load_settings("dev", check_log_path=False))


@pytest.mark.parametrize(
    ("log_path", "refused"),
    [
        ("/Volumes/main/raybricks/logs", False),
        ("/dbfs/raybricks/logs", False),
        ("dbfs:/raybricks/logs", False),  # read as /dbfs/raybricks/logs
        ("/tmp/runs", True),
        ("/Volumesque/logs", True),
    ],
)
def test_on_databricks_the_run_folder_must_be_where_every_node_sees_it(log_path, refused):
    settings = load_settings("dev", overrides={"log_path": log_path}, check_log_path=False)
    verdict = check(facts(), settings.cluster, {"log_path": settings.log_root})
    if refused:
        (refusal,) = verdict.refusals
        assert refusal.startswith(f"log_path = '{log_path}' is on the driver's own disk")
        assert "/Volumes/<catalog>/<schema>/<volume>/" in refusal and "\n" not in refusal
    else:
        assert verdict.refusals == []


@pytest.mark.parametrize(
    ("environ", "conf", "name", "temp_root"),
    [
        ({}, None, "local", "/tmp"),
        ({"PYSPARK_GATEWAY_PORT": "4040"}, None, "spark-submit", "/tmp"),
        ({}, {"spark.master": "yarn"}, "spark-submit", "/tmp"),  # a session made before
        ({"DATABRICKS_RUNTIME_VERSION": "16.4"}, {}, "databricks", "/local_disk0/tmp"),
        ({}, {f"{TAGS}clusterId": "0101-000000-abcd"}, "databricks", "/local_disk0/tmp"),
    ],
)
def test_the_platform_is_decided_once_from_the_environment_and_spark(
    environ, conf, name, temp_root
):
    platform = Platform.of(ClusterSettings(), conf, environ)
    assert (platform.name, platform.temp_root) == (name, Path(temp_root))
    assert (platform.spark_master is not None) == (name == "local")
    assert platform.on_databricks == (name == "databricks")
    assert Platform.of(ClusterSettings(temp_root="/tmp/x"), conf, environ).temp_root == Path(
        "/tmp/x"
    )


def test_rays_notebook_html_goes_to_the_log_within_the_start(caplog):
    from ray.util.spark import databricks_hook

    from raybricks.cluster.compat.notebook_display import notebook_html_to_log

    ray_own = databricks_hook.get_databricks_display_html_function
    with caplog.at_level(logging.WARNING), notebook_html_to_log():
        databricks_hook.get_databricks_display_html_function()("<b>mind the &amp; memory</b>")
    assert "mind the & memory" in caplog.text
    assert databricks_hook.get_databricks_display_html_function is ray_own
