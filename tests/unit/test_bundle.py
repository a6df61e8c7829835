"""The Databricks bundle, checked offline: what can be known without a workspace is."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from databricks.bundles.jobs import Job

from raybricks.cli import _parser
from raybricks.cluster.ray_version import PINNED
from raybricks.databricks.preflight import check
from raybricks.platform.facts import ClusterFacts
from raybricks.settings import TARGETS, load_settings
from raybricks.stages.registry import BUILT_IN
from tests.helpers import ROOT

BUNDLE = yaml.safe_load((ROOT / "databricks.yml").read_text())
RESOURCE_FILES = sorted(path for pattern in BUNDLE["include"] for path in ROOT.glob(pattern))
JOBS = {
    name: job
    for path in RESOURCE_FILES
    for name, job in yaml.safe_load(path.read_text())["resources"]["jobs"].items()
}


def resolved(value: Any, target: str, run_params: dict[str, str] | None = None) -> Any:
    """`${var.x}` and `${bundle.*}` as the CLI would fill them for `target` (defaults plus
    the target's overrides); `{{job.run_id}}` and `{{job.parameters.x}}` as a run
    would (the job's defaults, or `run_params` as `--params` gives them)."""
    variables = {name: spec.get("default") for name, spec in BUNDLE["variables"].items()}
    variables.update(BUNDLE["targets"][target].get("variables", {}))

    def fill(text: str) -> str:
        text = re.sub(r"\$\{var\.(\w+)\}", lambda m: str(variables[m.group(1)]), text)
        text = text.replace("${bundle.target}", target).replace(
            "${bundle.name}", BUNDLE["bundle"]["name"]
        )
        return text.replace("{{job.run_id}}", "123456")

    if isinstance(value, dict):
        return {key: resolved(item, target, run_params) for key, item in value.items()}
    if isinstance(value, list):
        return [resolved(item, target, run_params) for item in value]
    return fill(value) if isinstance(value, str) else value


def task_parameters(job_name: str, target: str, **run_params: str) -> list[str]:
    """The wheel task's parameters as a run gets them."""
    job = resolved(JOBS[job_name], target)
    params = {p["name"]: str(p["default"]) for p in job["parameters"]} | run_params
    (task,) = job["tasks"]
    return [
        re.sub(r"\{\{job\.parameters\.(\w+)\}\}", lambda m: params[m.group(1)], str(item))
        for item in task["python_wheel_task"]["parameters"]
    ]


def wheel_tasks() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, task)
        for name, job in JOBS.items()
        for task in job["tasks"]
        if "python_wheel_task" in task
    ]


def test_targets_are_dev_by_default_and_prod_in_production_mode():
    targets = BUNDLE["targets"]
    assert set(targets) == {"dev", "gpu", "prod"}
    assert targets["dev"]["mode"] == "development" and targets["dev"]["default"] is True
    assert targets["gpu"]["mode"] == "development"
    assert targets["prod"]["mode"] == "production" and targets["prod"]["workspace"]["root_path"]


def new_cluster(target: str) -> dict[str, Any]:
    """The job cluster as `target` deploys it: the job's, with the target's overrides."""
    (cluster,) = resolved(JOBS["actor_demos"], target)["job_clusters"]
    jobs = BUNDLE["targets"][target].get("resources", {}).get("jobs", {})
    for override in jobs.get("actor_demos", {}).get("job_clusters", []):
        assert override["job_cluster_key"] == cluster["job_cluster_key"]
        cluster["new_cluster"] = {**cluster["new_cluster"], **override["new_cluster"]}
    return dict(cluster["new_cluster"])


def test_the_gpu_target_deploys_on_gpu_workers_whose_spark_tasks_take_no_gpu(monkeypatch):
    """A GPU ML runtime and node type, a GPU per Ray worker node passed to the run, and
    Spark's tasks holding none: the preflight passes such a cluster, without warnings."""
    monkeypatch.setattr("raybricks.settings.unwritable_reason", lambda path: None)
    cluster = new_cluster("gpu")
    assert "-gpu-ml-" in cluster["spark_version"]
    assert cluster["spark_conf"] == {"spark.task.resource.gpu.amount": "0"}
    assert "spark_conf" not in new_cluster("dev")
    args = _parser().parse_args(task_parameters("actor_demos", "gpu"))
    assert args.num_gpus_worker_node == "1"
    settings = load_settings(
        args.target, overrides={"cluster.num_gpus_worker_node": args.num_gpus_worker_node}
    )
    facts = ClusterFacts(
        spark_version=cluster["spark_version"], cores_per_worker=4, gpus_per_worker=1
    )
    verdict = check(facts, settings.cluster)
    assert (verdict.refusals, verdict.warnings) == ([], [])


@pytest.mark.parametrize("target", ["dev", "gpu", "prod"])
@pytest.mark.parametrize("job_name", list(JOBS))
def test_each_job_loads_through_the_typed_bundle_models(job_name, target):
    job = Job.from_dict(resolved(JOBS[job_name], target))
    assert job.max_concurrent_runs == 1
    assert job.schedule and job.schedule.quartz_cron_expression and job.schedule.timezone_id
    assert job.email_notifications and job.email_notifications.on_failure
    assert job.timeout_seconds
    (cluster,) = job.job_clusters
    assert "-ml-" in str(cluster.new_cluster.spark_version)  # Ray on Spark needs an ML runtime
    assert str(cluster.new_cluster.data_security_mode).endswith("SINGLE_USER")
    assert job.permissions and job.parameters


def test_spark_autoscales_between_rays_worker_node_bounds():
    (cluster,) = JOBS["actor_demos"]["job_clusters"]
    assert cluster["new_cluster"]["autoscale"] == {
        "min_workers": "${var.min_worker_nodes}",
        "max_workers": "${var.max_worker_nodes}",
    }
    defaults = {p["name"]: p["default"] for p in JOBS["actor_demos"]["parameters"]}
    assert defaults["min_worker_nodes"] == "${var.min_worker_nodes}"
    assert defaults["max_worker_nodes"] == "${var.max_worker_nodes}"


def test_prod_runs_as_a_service_principal():
    assert BUNDLE["targets"]["prod"]["run_as"] == {
        "service_principal_name": "${var.service_principal}"
    }


def test_every_job_parameter_is_passed_on_as_the_run_flag_of_its_name():
    """`--params name=value` reaches `raybricks run` as `--name value`."""
    for name, _ in wheel_tasks():
        probes = {p["name"]: f"probe-{p['name']}" for p in JOBS[name]["parameters"]}
        args = _parser().parse_args(task_parameters(name, "dev", **probes))
        assert {key: getattr(args, key) for key in probes} == probes


def test_the_schedule_is_paused_in_dev_only():
    assert resolved(JOBS["actor_demos"]["schedule"], "dev")["pause_status"] == "PAUSED"
    assert resolved(JOBS["actor_demos"]["schedule"], "prod")["pause_status"] == "UNPAUSED"


@pytest.mark.parametrize("target", ["dev", "gpu", "prod"])
def test_task_parameters_are_the_clis_own_flags_and_valid_settings(target, monkeypatch):
    monkeypatch.setattr(
        "raybricks.settings.unwritable_reason", lambda path: None
    )  # no /Volumes here
    for name, _ in wheel_tasks():
        parameters = task_parameters(name, target)
        args = _parser().parse_args(parameters)
        assert args.subcommand == "run" and args.target == target
        settings = load_settings(
            args.target,
            overrides={
                "cluster.max_worker_nodes": args.max_worker_nodes,
                "cluster.min_worker_nodes": args.min_worker_nodes,
                "cluster.num_cpus_worker_node": args.num_cpus_worker_node,
                "log_path": args.log_path,
                "job_run_id": args.job_run_id,
            },
            conf_dir=ROOT / "conf",
        )
        assert settings.log_path.startswith("/Volumes/") and settings.log_path.endswith(target)
        assert settings.job_run_id == 123456


def pinned(package: str) -> str:
    """The version constraints.txt pins `package` to."""
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==", 1)[1]
    raise AssertionError(f"{package} is not pinned in constraints.txt")


def test_every_target_has_its_conf_file():
    for target in BUNDLE["targets"]:
        assert (ROOT / "conf" / f"{target}.yml").is_file()
        assert target in TARGETS


def test_the_task_runs_the_wheels_command_and_installs_the_wheel_and_ray():
    for _, task in wheel_tasks():
        assert task["python_wheel_task"]["package_name"] == "raybricks"
        assert task["python_wheel_task"]["entry_point"] == "raybricks"
        libraries = task["libraries"]
        assert {"whl": "../dist/*.whl"} in libraries  # relative to resources/
        assert {"pypi": {"package": "${var.ray_requirement}"}} in libraries
    assert BUNDLE["artifacts"]["raybricks_wheel"]["type"] == "whl"
    default = BUNDLE["variables"]["ray_requirement"]["default"]
    assert default == PINNED == f"ray[default,data]=={pinned('ray')}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built with the bundle's own build command."""
    out = tmp_path_factory.mktemp("dist")
    command = BUNDLE["artifacts"]["raybricks_wheel"]["build"].split()
    assert command[:4] == ["python3", "-m", "pip", "wheel"]
    subprocess.run(
        [sys.executable, *command[1:-3], "--wheel-dir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("raybricks-*.whl")
    return built


def test_the_wheel_holds_the_library_and_the_conf_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "raybricks/cli.py",
        "raybricks/stages/tree_of_actors.py",
        "raybricks/conf/dev.yml",
        "raybricks/conf/prod.yml",
        "raybricks/conf/local.yml",
    ):
        assert needed in names
    assert not any(name.startswith(("tests/", "jobs/")) for name in names)


def test_a_deployed_job_reads_the_conf_files_inside_the_wheel(wheel, tmp_path):
    """On a cluster there is no conf/ beside the working folder: the wheel's copy is used."""
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"  # no conf/ here
    elsewhere.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, raybricks; print(raybricks.__file__, file=sys.stderr); "
            "from raybricks.cli import main; sys.exit(main(sys.argv[1:]))",
            "validate",
            "--target",
            "prod",
            "--log-path",
            str(tmp_path),
        ],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(str(site))  # the installed wheel, not the repository
    assert '"max_worker_nodes": 4' in done.stdout  # conf/prod.yml's value, not the default


@pytest.mark.parametrize("stages", ["all", "", "actor_pool,namespaces"])
def test_the_wheels_entry_point_takes_the_tasks_parameters_as_given(wheel, tmp_path, stages):
    """As Databricks calls it: the `raybricks` console script of the installed wheel,
    with the task's parameters, `--params stages=...` among them."""
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True, timeout=300)
    parameters = task_parameters("actor_demos", "prod", stages=stages)
    check = (
        "import sys\n"
        "from importlib.metadata import entry_points\n"
        "(script,) = [e for e in entry_points(group='console_scripts') if e.name == 'raybricks']\n"
        "assert script.value == 'raybricks.entry:entry', script.value\n"
        "from raybricks.cli import _parser, _settings\n"
        "settings = _settings(_parser().parse_args(sys.argv[1:]), None, check_log_path=False)\n"
        "print(','.join(settings.stages), settings.cluster.max_worker_nodes, settings.job_run_id)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check, *parameters],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    selected = stages.split(",") if stages not in ("", "all") else list(BUILT_IN)
    assert done.stdout.split() == [",".join(selected), "2", "123456"]


def test_the_job_entrypoint_reads_the_conf_files_beside_it_from_any_folder(tmp_path):
    """As a synced bundle runs it: the working folder is not the repository."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "jobs" / "actor_demos.py"),
            "--target",
            "prod",
            "--namespace",
            "has space",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    # the conf file was found and read (the error is about the flag, not a missing file)
    assert "namespace = 'has space' (--namespace)" in done.stderr, done.stderr
