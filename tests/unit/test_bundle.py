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
from raybricks.settings import TARGETS, load_settings
from tests.helpers import ROOT

BUNDLE = yaml.safe_load((ROOT / "databricks.yml").read_text())
JOBS = BUNDLE["resources"]["jobs"]


def resolved(value: Any, target: str) -> Any:
    """`${var.x}` and `${bundle.*}` as the CLI would fill them for `target` (defaults plus
    the target's overrides); `{{job.run_id}}` as the job would at run time."""
    variables = {name: spec.get("default") for name, spec in BUNDLE["variables"].items()}
    variables.update(BUNDLE["targets"][target].get("variables", {}))

    def fill(text: str) -> str:
        text = re.sub(r"\$\{var\.(\w+)\}", lambda m: str(variables[m.group(1)]), text)
        text = text.replace("${bundle.target}", target).replace(
            "${bundle.name}", BUNDLE["bundle"]["name"]
        )
        return text.replace("{{job.run_id}}", "123456")

    if isinstance(value, dict):
        return {key: resolved(item, target) for key, item in value.items()}
    if isinstance(value, list):
        return [resolved(item, target) for item in value]
    return fill(value) if isinstance(value, str) else value


def python_tasks() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, task)
        for name, job in JOBS.items()
        for task in job["tasks"]
        if "spark_python_task" in task
    ]


def test_targets_are_dev_by_default_and_prod_in_production_mode():
    targets = BUNDLE["targets"]
    assert set(targets) == {"dev", "prod"}
    assert targets["dev"]["mode"] == "development" and targets["dev"]["default"] is True
    assert targets["prod"]["mode"] == "production" and targets["prod"]["workspace"]["root_path"]


@pytest.mark.parametrize("target", ["dev", "prod"])
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


def test_the_schedule_is_paused_in_dev_only():
    assert resolved(JOBS["actor_demos"]["schedule"], "dev")["pause_status"] == "PAUSED"
    assert resolved(JOBS["actor_demos"]["schedule"], "prod")["pause_status"] == "UNPAUSED"


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_task_parameters_are_the_clis_own_flags_and_valid_settings(target, monkeypatch):
    monkeypatch.setattr(
        "raybricks.settings.unwritable_reason", lambda path: None
    )  # no /Volumes here
    for _, task in python_tasks():
        parameters = resolved(task["spark_python_task"]["parameters"], target)
        args = _parser().parse_args(["run", *parameters])
        assert args.target == target
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


def test_every_target_has_its_conf_file():
    for target in BUNDLE["targets"]:
        assert (ROOT / "conf" / f"{target}.yml").is_file()
        assert target in TARGETS


def test_local_paths_exist_and_the_wheel_and_ray_are_installed_on_the_cluster():
    for _, task in python_tasks():
        assert (ROOT / task["spark_python_task"]["python_file"]).is_file()
        libraries = task["libraries"]
        assert {"whl": "./dist/*.whl"} in libraries
        assert {"pypi": {"package": "ray[default]==2.60.0"}} in libraries
    assert BUNDLE["artifacts"]["raybricks_wheel"]["type"] == "whl"


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
