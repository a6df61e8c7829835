"""The job as it starts on a Databricks cluster, emulated. Both task shapes: a
`python_wheel_task` (how the bundle runs it: the wheel's entry point called in a
process whose SparkSession the platform made first) and a `spark_python_task`
(spark-submit of the job's file). Both with DATABRICKS_RUNTIME_VERSION set, the
cluster's facts as Spark conf tags, no notebook (no IPython shell), a short temp root
as /local_disk0/tmp, and the Unity Catalog volume at a real `/Volumes/...` path, where
the wheel task's audit hook sees every file opened. Real Spark, real Ray on Spark, the
real code path (Ray switches to its Databricks hook; raybricks' job hook replaces it).

What the emulation cannot see: the FUSE mount itself (a local folder takes appends; the
audit hook only sees that none are made by the driver), Databricks' own Spark master and
autoscaling, the real driver proxy, the runtime's Python packages, its access modes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from benchmarks.processes import left_after, live_driver_log, marked_env, wait_for

from tests.cluster.runs import (
    EVERY_STAGE_ON_CPUS,
    RUN_TIMEOUT,
    SPARK_SUBMIT,
    finished,
    only_run_dir,
    report_of,
    stage_statuses,
)
from tests.helpers import ROOT

HERE = Path(__file__).parent / "emulated_databricks"
CLUSTER_ID, ORG_ID = "0101-000000-abcd", "1234567890"
PROXY = f"/driver-proxy/o/{ORG_ID}/{CLUSTER_ID}/"
TAGS = "spark.databricks.clusterUsageTags."


def tags(spark_version: str = "16.4.x-cpu-ml-scala2.12") -> list[str]:
    given = {"sparkVersion": spark_version, "clusterId": CLUSTER_ID, "clusterOwnerOrgId": ORG_ID}
    return [part for key, value in given.items() for part in ("--conf", f"{TAGS}{key}={value}")]


@pytest.fixture
def short_temp_root() -> Iterator[Path]:
    """As /local_disk0/tmp: short, since Ray's socket paths below it must stay short."""
    folder = Path(tempfile.mkdtemp(prefix="rb-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


VOLUMES = Path("/Volumes")


@pytest.fixture
def volume() -> Iterator[Path]:
    """A Unity Catalog volume's log folder, at a `/Volumes/...` path as on Databricks
    (the preflight refuses a run folder elsewhere): made for the test, removed after."""
    made_root = not VOLUMES.exists()
    try:
        folder = Path(tempfile.mkdtemp(prefix="raybricks_tests-", dir=_volumes()))
    except OSError as exc:
        pytest.skip(f"the emulated volume needs {VOLUMES} (it cannot be made here: {exc})")
    yield folder / "raybricks" / "logs"
    shutil.rmtree(folder, ignore_errors=True)
    if made_root:
        with contextlib.suppress(OSError):  # another test's volume may be in it now
            VOLUMES.rmdir()


def _volumes() -> Path:
    VOLUMES.mkdir(exist_ok=True)
    return VOLUMES


@pytest.fixture
def driver(stray_token_home, tmp_path, short_temp_root, volume):
    """A job driver's environment (no IPython, no dbruntime, no workspace credentials)
    and the task's conf file: the temp root a short temp folder, the volume's folder."""
    environment, mark = marked_env(
        HOME=str(stray_token_home),
        RAY_USAGE_STATS_ENABLED="0",
        DATABRICKS_RUNTIME_VERSION="16.4",
        PYSPARK_PYTHON=sys.executable,
    )
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "PYTHONPATH"):
        environment.pop(name, None)
    temp_root = short_temp_root
    conf = tmp_path / "conf.yml"
    # The point here is the Databricks path, not each pattern's depth (the session
    # cluster's tests have that): lighter stage parameters keep the job short.
    conf.write_text(
        LIGHT_STAGES + f"cluster:\n  temp_root: {temp_root}\n  include_dashboard: true\n"
    )
    return environment, mark, conf, volume, temp_root


def spark_submit(master: str, spark_version: str, job: Path, *flags: object) -> list:
    return [*SPARK_SUBMIT, "--master", master, *tags(spark_version), str(job), *flags]


JOB = ROOT / "jobs" / "actor_demos.py"
LIGHT_STAGES = """stage_params:
  detached_actors: {calls: 20}
  fault_tolerance: {unlimited_crashes: 1}
  options_override: {pending_check_seconds: 0.5}
  actor_pool: {throughput_items: 200, slow_call_seconds: 1.0}
  tree_of_actors: {steps: 4, crash_at_step: 1}
"""


def python_driver(spark_submit: int) -> psutil.Process:
    """The Python driver that spark-submit's JVM started for the job."""
    for child in psutil.Process(spark_submit).children(recursive=True):
        try:
            if str(JOB) in child.cmdline() and "python" in child.name():
                return child
        except psutil.Error:  # a child that ended meanwhile
            continue
    raise AssertionError("spark-submit runs no Python driver")


def logged(spark_submit: int, line: str) -> bool:
    """Whether the job's Python driver has logged `line` (its driver log as it grows)."""
    try:
        return line in live_driver_log(python_driver(spark_submit).pid)
    except AssertionError:  # not started yet
        return False


WHEEL_TASK = HERE / "wheel_task.py"


@pytest.mark.timeout(RUN_TIMEOUT)
def test_a_wheel_task_fails_as_a_process_leaves_the_platforms_spark_and_appends_nothing(
    driver, tmp_path
):
    """The bundle's task shape: the wheel's entry point called in the platform's process,
    whose SparkSession exists first. A refused run, one whose cluster cannot start and a
    cancelled one each end the call with SystemExit and their exit code; the platform's
    Spark answers after each; nothing under the volume is appended to, or written where
    it exists. (Exit 1, a stage failed, leaves by the same path: tests/unit/test_cli.py.)"""
    environment, mark, conf, volume, temp_root = driver
    conf.write_text(conf.read_text() + "  max_worker_nodes: 1\n")

    def task(case: str, stages: str, *more: str) -> list[str]:
        flags = ["--conf", conf, "--log-path", volume / case, "--stages", stages, *more]
        return ["run", "--target", "dev", *map(str, flags), "--job-run-id", "123"]

    no_room = ("--max-worker-nodes", "2", "--min-worker-nodes", "2")
    cases = {
        "refused": {"parameters": task("refused", "no_such_stage")},
        "failed": {"parameters": task("failed", "namespaces", *no_room)},
        "cancelled": {
            "parameters": task("cancelled", "detached_actors"),
            "cancel_at": ["starting Ray on Spark", "shutting the Ray cluster down"],
        },
    }
    done = finished(
        spark_submit(
            "local-cluster[1,1,1024]",
            "16.4.x-cpu-ml-scala2.12",
            WHEEL_TASK,
            *(volume.parents[1], json.dumps(cases)),  # the whole volume is watched
        ),
        environment,
        tmp_path,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    ended = {c["case"]: c for c in map(json.loads, lines)}
    assert {case: (c["returned"], c["exit_code"]) for case, c in ended.items()} == {
        "refused": (None, 2),
        "failed": (None, 3),
        "cancelled": (None, 143),
    }, (done.stdout + done.stderr)[-3000:]
    assert all(c["spark_answers"] for c in ended.values()), "the platform's Spark was stopped"
    assert [c["opened"] for c in ended.values()] == [[], [], []], "appended or updated in place"
    assert not (volume / "refused").exists()
    failed = report_of(only_run_dir(volume / "failed"))
    assert stage_statuses(failed) == [("namespaces", "skipped")]
    assert failed["error"].startswith("cluster.min_worker_nodes: 2 worker nodes cannot start")
    cancelled_dir = only_run_dir(volume / "cancelled")
    assert cancelled_dir.name.endswith("-job123")
    cancelled = report_of(cancelled_dir)
    assert (cancelled["status"], cancelled["error"]) == ("cancelled", "cancelled by SIGTERM")
    assert cancelled["stages"][0]["status"] == "skipped"
    assert cancelled["cluster"]["address"], "the report names the cluster that had started"
    log = (cancelled_dir / "driver.log").read_text()
    assert "SIGTERM while starting the Ray cluster: finishing that first" in log
    assert "SIGTERM while shutting down: finishing that first" in log
    assert wait_for(lambda: list(cancelled_dir.glob("ray-*-logs/*/raylet*.out")), 30)
    went_the_databricks_way(cancelled_dir, done.stdout + done.stderr)
    assert left_after(mark) == []
    assert list(temp_root.iterdir()) == []


# Every stage on two worker nodes through spark-submit: about 90 s of both cores, in
# `make test-slow` and `make test-runtimes`; in `make test`, the cancelled job task below
# goes the same Databricks way through the start.
@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT)
def test_a_plain_job_task_passes_every_stage_with_the_proxy_dashboard(driver, tmp_path):
    environment, mark, conf, volume, temp_root = driver
    # As the README writes it: the executors' Python relative to the repository.
    environment["PYSPARK_PYTHON"] = os.path.relpath(sys.executable, ROOT)
    done = finished(
        spark_submit(
            "local-cluster[3,1,1024]",  # two executors for Ray's nodes, one for Spark's own
            "16.4.x-cpu-ml-scala2.12",
            JOB,
            *("--target", "local", "--conf", conf, "--log-path", volume),
        ),
        environment,
        ROOT,
    )
    assert done.returncode == 0, ended_how(volume, done.stderr)
    run_dir = only_run_dir(volume)
    report = report_of(run_dir)
    assert stage_statuses(report) == EVERY_STAGE_ON_CPUS
    went_the_databricks_way(run_dir, done.stdout + done.stderr)
    assert left_after(mark) == []
    assert list(temp_root.iterdir()) == []  # Ray's temp folders went under the temp root


def ended_how(volume: Path, stderr: str) -> str:
    """A failed run's report (its error and stages), before the console's end: Spark's
    console can fill the last lines with its executors' status updates."""
    try:
        report = report_of(only_run_dir(volume))
    except (OSError, ValueError):
        return f"no report; {stderr[-3000:]}"
    failed = {s["name"]: s["error"] for s in report["stages"] if s["status"] == "failed"}
    return f"{report['error']}; {stage_statuses(report)}; {failed}; {stderr[-2000:]}"


def went_the_databricks_way(run_dir: Path, console: str) -> None:
    """The preflight passed, the job hook replaced Ray's Databricks hook, and the
    dashboard is reached through the driver proxy."""
    assert f"Databricks cluster {CLUSTER_ID}" in console  # before the run folder existed
    assert PROXY in report_of(run_dir)["cluster"]["dashboard_url"]
    log = (run_dir / "driver.log").read_text()
    assert "Ray on the Databricks cluster's Spark, " in log  # not the target's own master
    assert "no notebook-idle auto-shutdown" in log
    assert "not registered as a background job" in log  # no dbruntime: a warning


@pytest.mark.slow  # three clusters one after another: in `make test-slow`
@pytest.mark.timeout(RUN_TIMEOUT)
def test_with_or_without_ipython_and_credentials_the_cluster_starts(driver, tmp_path):
    environment, mark, conf, volume, _ = driver
    calls = tmp_path / "dbruntime-calls.txt"
    environment["RAYBRICKS_EMULATED_DBRUNTIME_LOG"] = str(calls)
    environment["PYTHONPATH"] = str(HERE)  # the runtime's dbruntime, stand-in
    conf.write_text(conf.read_text() + "  max_worker_nodes: 1\n  fast_start: true\n")
    done = finished(
        spark_submit(
            "local-cluster[1,1,1024]",
            "16.4.x-cpu-ml-scala2.12",
            HERE / "cases.py",
            *("--conf", conf, "--log-path", volume, "--stages", "namespaces"),
        ),
        environment,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    cases = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [(c["case"], c["exit_code"]) for c in cases] == [
        ("ipython-no-credentials", 0),
        ("credentials-no-ipython", 0),
        ("ipython-and-credentials", 0),
    ]
    for case in cases:
        report = report_of(Path(case["run_dir"]))
        assert PROXY in report["cluster"]["dashboard_url"], case
        files = [p for p in Path(case["run_dir"]).rglob("*") if p.is_file()]
        leaks = [str(p) for p in files if b"dapi-emulated-secret" in p.read_bytes()]
        assert leaks == [], "the workspace token was written to the run folder"
    # Each cluster's Spark jobs were registered with the runtime as background jobs.
    assert calls.read_text().count("registerBackgroundSparkJobGroup") >= 3
    assert left_after(mark) == []


@pytest.mark.timeout(RUN_TIMEOUT)
@pytest.mark.parametrize(
    ("cancelled_at", "stage_ends", "first_logged"),
    [
        # Ray's start, where its own signal handlers come and go: the start ends first
        pytest.param(
            "starting Ray on Spark",
            ("skipped", None),
            "SIGTERM while starting the Ray cluster: finishing that first",
            id="ray-start",
            marks=pytest.mark.slow,  # in `make test`, the wheel task's cancel
        ),
        pytest.param(
            "detached_actors: started",
            ("cancelled", "interrupted (SIGTERM)"),
            "detached_actors: cancelled",
            id="mid-stage",
            marks=pytest.mark.slow,  # a stage's cancel: the runner's unit tests, the sweep
        ),
    ],
)
def test_a_cancelled_job_task_ends_with_143_after_shutting_down(
    driver, tmp_path, cancelled_at, stage_ends, first_logged
):
    """SIGTERM a second after a phase began, and a second one during the teardown the
    first started."""
    environment, mark, conf, volume, temp_root = driver
    conf.write_text(conf.read_text() + "  max_worker_nodes: 1\n")
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        task = subprocess.Popen(
            spark_submit(
                "local-cluster[1,1,1024]",
                "16.4.x-cpu-ml-scala2.12",
                JOB,
                *("--conf", conf, "--log-path", volume, "--stages", "detached_actors"),
            ),
            env=environment,
            stdout=err,  # spark-submit hands the Python driver's stderr on as its stdout
            stderr=err,
            cwd=tmp_path,
        )
    try:
        started = wait_for(lambda: logged(task.pid, cancelled_at), 180, 0.1)
        assert started, stderr.read_text()[-3000:]
        time.sleep(1.0)
        driver_process = python_driver(task.pid)
        before = len(live_driver_log(driver_process.pid))  # a fallback start shut one down
        driver_process.send_signal(signal.SIGTERM)  # as a cancel reaches it
        # ... and once more while the teardown it started runs: that one waits for it
        tearing_down = "shutting the Ray cluster down"
        assert wait_for(
            lambda: tearing_down in live_driver_log(driver_process.pid)[before:], 120, 0.05
        )
        with contextlib.suppress(psutil.NoSuchProcess):
            driver_process.send_signal(signal.SIGTERM)
        assert task.wait(timeout=120) == 143, stderr.read_text()[-3000:]
    finally:
        if task.poll() is None:
            task.kill()
    run_dir = only_run_dir(volume)
    report = report_of(run_dir)
    assert (report["status"], report["exit_code"]) == ("cancelled", 143)
    assert report["error"] == "cancelled by SIGTERM"
    (stage,) = report["stages"]
    assert (stage["status"], stage["error"]) == stage_ends
    assert report["cluster"]["address"], "the report names the cluster that had started"
    log = (run_dir / "driver.log").read_text()
    assert first_logged in log, log[-4000:]
    assert "SIGTERM while shutting down: finishing that first" in log
    assert wait_for(lambda: list(run_dir.glob("ray-*-logs/*/raylet*.out")), 30)  # logs collected
    went_the_databricks_way(run_dir, stderr.read_text())
    assert left_after(mark) == []
    assert list(temp_root.iterdir()) == []


@pytest.mark.timeout(RUN_TIMEOUT)
def test_a_runtime_without_ml_is_refused_in_one_line_and_nothing_starts(driver, tmp_path):
    environment, mark, conf, volume, _ = driver
    done = finished(
        spark_submit(
            "local-cluster[1,1,1024]",
            "16.4.x-scala2.12",
            JOB,
            *("--conf", conf, "--log-path", volume),
        ),
        environment,
        tmp_path,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    # spark-submit hands the Python driver's stderr on as its stdout
    output = (done.stdout + done.stderr).splitlines()
    errors = [line for line in output if line.startswith("raybricks:")]
    assert errors == [
        "raybricks: Databricks runtime 16.4.x-scala2.12 is not an ML runtime: Ray on Spark "
        "needs one; choose an ML runtime such as 18.x-cpu-ml-scala2.13 (bundle variable "
        "spark_version)"
    ]
    assert not volume.exists()  # no run folder
    assert left_after(mark) == []
