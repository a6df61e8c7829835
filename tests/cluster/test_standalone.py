"""The job on a real Spark cluster: a standalone master and three workers, separate JVMs
as on a Databricks cluster's machines (the `standalone_spark` fixture, up all session).
Ray's worker nodes run inside the workers' executors; Ray autoscales inside Spark.

In `make test-slow`: each test here is a whole run on a third cluster shape, 39-69 s on
two cores in a quiet hour (2026-12-02), when `make test` took 1:29; in a busy hour it took
up to 3:50, so even one more whole run would put its five minutes at risk."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from benchmarks.processes import left_after, marked_env, of_ray_cluster, wait_for

from tests.cluster.runs import (
    BIN,
    EVERY_STAGE_ON_CPUS,
    SPARK_SUBMIT,
    InTheBackground,
    finished,
    forkserver_folders,
    only_run_dir,
    report_of,
    stage_statuses,
)
from tests.helpers import ROOT

RUN_TIMEOUT = 420


@pytest.fixture
def env(stray_token_home):
    return marked_env(HOME=str(stray_token_home), RAY_USAGE_STATS_ENABLED="0")


def report_in(log_root: Path) -> tuple[Path, dict]:
    run_dir = only_run_dir(log_root)
    return run_dir, report_of(run_dir)


def executor_outputs(standalone_spark) -> str:
    return "".join(p.read_text() for p in standalone_spark.folder.glob("work-*/*/*/stderr"))


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT)
def test_every_stage_passes_on_a_standalone_cluster(standalone_spark, env, tmp_path):
    environment, mark = env
    log_root = tmp_path / "runs"
    done = finished(
        [BIN / "raybricks", "run", "--spark-master", standalone_spark.url,
         "--log-path", str(log_root)],
        environment, ROOT, RUN_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir, report = report_in(log_root)
    assert stage_statuses(report) == EVERY_STAGE_ON_CPUS
    assert report["cluster"]["spark_master"] == standalone_spark.url
    # Each worker node ran in an executor of a Spark worker, and left its logs.
    assert executor_outputs(standalone_spark).count("Ray runtime started") >= 2
    assert len(list(run_dir.glob("ray-*-node-*-logs/*/raylet.out"))) == 2
    assert left_after(mark) == []
    assert standalone_spark.alive_workers() == 3  # the Spark cluster itself stays up


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT)
def test_ray_autoscales_inside_spark_and_the_report_says_so(standalone_spark, env, tmp_path):
    """One worker node at first; a driver asks for two CPUs at once; a second node joins,
    the work runs, and once idle past the timeout the extra node is removed."""
    environment, mark = env
    conf = tmp_path / "autoscale.yml"
    conf.write_text(
        "cluster:\n  min_worker_nodes: 1\n  max_worker_nodes: 2\n"
        "  autoscale_idle_timeout_minutes: 0.1\n  include_dashboard: false\n"
    )
    driver = tmp_path / "two_cpus.py"
    driver.write_text(
        "import os, time, ray\n"
        "ray.init(namespace=os.environ['RAY_NAMESPACE'])\n"
        "def workers():\n"
        "    return sum(1 for n in ray.nodes() if n['Alive'] and 'node:__internal_head__'"
        " not in n['Resources'])\n"
        "seen = [workers()]\n"
        "@ray.remote(num_cpus=1)\n"
        "class Busy:\n"
        "    def node(self):\n"
        "        return ray.get_runtime_context().get_node_id()\n"
        "pair = [Busy.remote() for _ in range(2)]\n"
        "nodes = set(ray.get([a.node.remote() for a in pair], timeout=240))\n"
        "seen.append(workers())\n"
        "for a in pair: ray.kill(a)\n"
        "deadline = time.monotonic() + 180\n"
        "while workers() > 1 and time.monotonic() < deadline: time.sleep(1)\n"
        "seen.append(workers())\n"
        "print('seen', seen, 'nodes', len(nodes))\n"
        "raise SystemExit(0 if seen == [1, 2, 1] and len(nodes) == 2 else 1)\n"
    )
    log_root = tmp_path / "runs"
    done = finished(
        [BIN / "raybricks", "exec", "--spark-master", standalone_spark.url, "--conf", str(conf),
         "--log-path", str(log_root), "--", sys.executable, str(driver)],
        environment, ROOT, RUN_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    _, report = report_in(log_root)
    assert report["cluster"]["min_worker_nodes"] == 1
    assert report["cluster"]["max_worker_nodes"] == 2
    assert left_after(mark) == []


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT)
def test_spark_submit_on_a_standalone_cluster_runs_every_stage(standalone_spark, env, tmp_path):
    """As a `spark_python_task` starts the job: spark-submit against the master."""
    environment, mark = env
    environment["PYSPARK_PYTHON"] = sys.executable
    log_root = tmp_path / "runs"
    done = finished(
        [*SPARK_SUBMIT, "--master", standalone_spark.url,
         str(ROOT / "jobs" / "actor_demos.py"), "--log-path", str(log_root)],
        environment, tmp_path, RUN_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    run_dir, report = report_in(log_root)
    assert stage_statuses(report) == EVERY_STAGE_ON_CPUS
    assert report["cluster"]["spark_master"] == standalone_spark.url
    assert len(list(run_dir.glob("ray-*-node-*-logs/*/raylet.out"))) == 2
    assert left_after(mark) == []


@pytest.fixture(scope="session")
def python_without_raybricks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interpreter that has Ray and PySpark (this virtualenv's packages) but not
    raybricks, as the executors of a cluster where raybricks is installed only beside
    the driver: its own virtualenv, this one's site-packages on its path, without
    running their `.pth` files (raybricks' editable install is one)."""
    venv = tmp_path_factory.mktemp("venv-without-raybricks")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    (ours,) = Path(sys.prefix).glob("lib/python*/site-packages")
    (site / "packages.pth").write_text(f"{ours}\n")
    python = venv / "bin" / "python"
    found = subprocess.run(
        [
            python,
            "-c",
            "import ray, pyspark, importlib.util as u; print(u.find_spec('raybricks.cluster'))",
        ],
        capture_output=True,
        text=True,
    )
    assert found.stdout.strip() == "None", found.stderr
    return python


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT)
def test_executors_without_raybricks_get_rays_own_start_and_raybricks_from_the_driver(
    standalone_spark, env, tmp_path, python_without_raybricks
):
    """Fast start's worker nodes need raybricks on every executor: the executors' check
    finds it missing before any worker node is launched, the run falls back to Ray's own
    start, and Ray's workers get raybricks from the driver. The run passes."""
    environment, mark = env
    environment["PYSPARK_DRIVER_PYTHON"] = sys.executable
    environment["PYSPARK_PYTHON"] = str(python_without_raybricks)
    log_root = tmp_path / "runs"
    before = forkserver_folders()
    done = finished(
        [*SPARK_SUBMIT, "--master", standalone_spark.url,
         str(ROOT / "jobs" / "actor_demos.py"), "--log-path", str(log_root),
         "--stages", "namespaces,detached_actors"],
        environment, tmp_path, RUN_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    run_dir, report = report_in(log_root)
    fast = report["cluster"]["fast_start"]
    assert fast.startswith("unavailable: executor ") and "cannot import raybricks" in fast, fast
    assert [s["status"] for s in report["stages"]] == ["passed", "passed"]
    assert "Ray's workers get raybricks from this driver" in (run_dir / "driver.log").read_text()
    assert list(run_dir.glob("ray-*-node-*-logs")) == []  # no fast-started worker node ran
    assert left_after(mark) == []
    assert forkserver_folders() <= before, "Ray's own start left its forkserver folder"


# tree_of_actors trains for about 30 s: long enough to break something under it.
LONG_STAGE = (
    "stage_params:\n  tree_of_actors:\n"
    "    {steps: 30, step_seconds: 1, budget_seconds: 120, timeout_seconds: 150}\n"
)


def broken_mid_stage(
    cluster, environment: dict[str, str], tmp_path: Path, daemon: subprocess.Popen[bytes]
) -> tuple[int, dict]:
    """A long stage run on `cluster`, `daemon`'s JVM killed 3 s into it: the run's exit
    code and report."""
    flags = ("--spark-master", cluster.url)
    with InTheBackground(tmp_path, environment, LONG_STAGE, "tree_of_actors", *flags) as run:
        run.wait_until_logged("tree_of_actors: started")
        time.sleep(3)
        stop_jvm(daemon)
        code = run.proc.wait(timeout=RUN_TIMEOUT - 60)
    return code, report_of(only_run_dir(run.log_root))


def nothing_of_the_run_left(report: dict, mark: str) -> bool:
    """No process of the run's driver, and none of its Ray cluster wherever it ran."""
    port = report["cluster"]["address"].rsplit(":", 1)[1]
    assert wait_for(lambda: not of_ray_cluster(port), timeout=60), of_ray_cluster(port)
    return left_after(mark) == []


def stop_jvm(daemon: subprocess.Popen[bytes]) -> None:
    """SIGKILL a Spark daemon's JVM (`spark-class` execs it: the same process), as a
    lost JVM ends; its executors notice and exit."""
    daemon.send_signal(signal.SIGKILL)
    daemon.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT)
def test_a_spark_worker_killed_mid_stage_is_recorded_as_a_lost_node(
    standalone_spark, env, tmp_path
):
    """A Spark worker's JVM killed mid-stage takes its executor and the Ray worker node
    inside it along: the stage's restartable actors go on elsewhere or the stage fails
    saying which node was lost; either way the report names it, and nothing of the run
    is left."""
    environment, mark = env
    lost_worker = standalone_spark.processes[2]  # [master, worker-0, worker-1, worker-2]
    try:
        code, report = broken_mid_stage(standalone_spark, environment, tmp_path, lost_worker)
    finally:
        standalone_spark.processes.remove(lost_worker)
        standalone_spark.add_worker(1)
        standalone_spark.wait_for_workers(3)
    (stage,) = report["stages"]
    assert code in (0, 1), (tmp_path / "stderr.txt").read_text()[-3000:]
    assert report["status"] == ("passed" if code == 0 else "failed")
    (lost,) = stage["evidence"]["worker_nodes_lost"]
    if code == 1:
        assert stage["error"].endswith(f"(worker node(s) lost meanwhile: {lost})"), stage
    assert nothing_of_the_run_left(report, mark)


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT)
def test_the_spark_master_lost_mid_run_leaves_the_run_going_and_nothing_behind(
    standalone_spark, env, tmp_path
):
    """As Spark's standalone design has it, an application outlives its master: the
    executors, and the Ray worker nodes inside them, work on, so the stage passes. The
    run then shuts down as always and leaves nothing (a master again at the same URL
    takes the workers back for the session's later tests)."""
    environment, mark = env
    master = standalone_spark.processes[0]
    try:
        code, report = broken_mid_stage(standalone_spark, environment, tmp_path, master)
    finally:
        standalone_spark.restart_master()
    assert (code, report["status"]) == (0, "passed"), (tmp_path / "stderr.txt").read_text()[-3000:]
    (log,) = (tmp_path / "runs").glob("*/driver.log")
    assert "Disconnected from Spark cluster" in log.read_text()  # Spark saw its master go
    assert nothing_of_the_run_left(report, mark)


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT)
def test_a_stage_running_spark_jobs_skips_itself_at_once_when_ray_holds_every_slot(
    standalone_spark, env, tmp_path
):
    """A spark:// master's size is not in its URL, so nothing refuses the run up front:
    with Ray's worker nodes on all three workers' cores, batch_inference finds Spark no
    slot for its table's jobs and says so, instead of failing 30 s later."""
    environment, _ = env
    log_root = tmp_path / "runs"
    done = finished(
        [BIN / "raybricks", "run", "--spark-master", standalone_spark.url,
         "--max-worker-nodes", "3", "--num-cpus-worker-node", "1",
         "--stages", "batch_inference", "--log-path", str(log_root)],
        environment, ROOT, RUN_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (stage,) = report_in(log_root)[1]["stages"]
    assert stage["status"] == "skipped" and stage["seconds"] < 5
    assert stage["reason"].startswith("Ray's worker nodes hold every Spark task slot")
