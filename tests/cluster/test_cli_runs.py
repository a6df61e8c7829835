"""Whole runs as users start them, each in its own process with its own cluster:
`raybricks run`, `spark-submit jobs/actor_demos.py`, `raybricks exec`, and SIGTERM.

Each waits for log lines and exit codes, never for fixed times, so it holds while the
other pytest-xdist worker runs the session cluster's tests beside it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from functools import partial
from pathlib import Path

import pytest
import ray
from benchmarks.processes import left_after, marked_env, running_marked, wait_for
from prometheus_client.parser import text_string_to_metric_families

from raybricks.stages.progress import LINE_EVERY
from raybricks.stages.registry import BUILT_IN as STAGES
from tests.cluster.runs import (
    BIN,
    RUN_TIMEOUT,
    SPARK_SUBMIT,
    InTheBackground,
    finished,
    forkserver_folders,
    one_stage,
    only_run_dir,
    report_of,
    stage_statuses,
)
from tests.helpers import CHROMIUM, ROOT, png_shades, render_in_chromium

PROGRESS_LINE = re.compile(r" INFO stage (?P<stage>\w+): [\d,]+ of [\d,]+ \w+")


@pytest.fixture
def env(stray_token_home):
    environment, mark = marked_env(HOME=str(stray_token_home), RAY_USAGE_STATS_ENABLED="0")
    return environment, mark


# For runs whose point is not the cluster's shape (the full run keeps the default): one
# executor, one Ray worker node, no dashboard; none of their stages asks the state API.
SMALL_CLUSTER = (
    'cluster:\n  spark_master: "local-cluster[1,1,1024]"\n'
    "  max_worker_nodes: 1\n  include_dashboard: false\n"
)


def saved_driver_log(log_root: Path) -> str:
    """The run folder's driver.log as the run saved it last ("" before it has)."""
    try:
        return (only_run_dir(log_root) / "driver.log").read_text()
    except (OSError, ValueError):  # no run folder yet, or no log in it
        return ""


def ray_node_logs(run_dir: Path) -> list[Path]:
    return list(run_dir.glob("ray-*-logs/*/raylet*.out"))


TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}")


def first_time(log: Path, text: str = "") -> datetime:
    """When the first line holding `text` was logged (Ray's logs stamp each line)."""
    for line in log.read_text().splitlines():
        if text in line and (stamp := TIMESTAMP.search(line)):
            return datetime.strptime(stamp[0], "%Y-%m-%d %H:%M:%S,%f")
    raise AssertionError(f"no stamped line with {text!r} in {log}")


@pytest.mark.timeout(RUN_TIMEOUT)
def test_run_passes_every_stage_and_leaves_report_driver_log_ray_and_spark_logs(full_run):
    done, run_dir, mark = full_run.done, full_run.run_dir, full_run.mark
    assert done.returncode == 0, done.stderr[-3000:]
    report = report_of(run_dir)
    assert report["status"] == "passed" and report["exit_code"] == 0
    assert report["cluster"]["auth_mode"] == "token"
    assert report["cluster"]["startup_seconds"] > 0
    assert report["cluster"]["fast_start"] == "on"
    assert stage_statuses(report) == [(name, "passed") for name in STAGES]
    assert all(stage["evidence"] and stage["headline"] for stage in report["stages"])
    assert "stage 8/8 gpu_actors: passed" in (run_dir / "driver.log").read_text()
    timeline = json.loads((run_dir / "ray-timeline.json").read_text())  # chrome://tracing's
    assert timeline and {"ph", "ts", "pid", "tid"} <= set(timeline[0])
    assert f"run folder: {run_dir}" in done.stdout
    assert wait_for(lambda: ray_node_logs(run_dir), timeout=30)
    # Fast start: each worker node ran in a temp folder of its own (so its logs come in
    # a folder of their own), and every Spark task slot was checked and warmed.
    assert wait_for(lambda: len(list(run_dir.glob("ray-*-node-*-logs/*/raylet.out"))) == 2, 30)
    assert "every executor can run raybricks (3 task slots" in (run_dir / "driver.log").read_text()
    # ... and the head's raylet started beside its dashboard, not once it was up.
    (head_logs,) = [p for p in run_dir.glob("ray-*-logs/*") if "-node-" not in p.parent.name]
    dashboard_up = first_time(head_logs / "dashboard.log", "http server initialized")
    assert first_time(head_logs / "raylet.out") < dashboard_up
    # Two of the three Spark executors hosted a worker node each, whose `ray start` output
    # came along; the third was Spark's own.
    executors = sorted((run_dir / "spark-executors").iterdir())
    assert [folder.name for folder in executors] == ["0", "1", "2"]
    hosts = [
        folder for folder in executors if "Ray runtime started" in (folder / "stderr").read_text()
    ]
    assert len(hosts) == 2
    assert left_after(mark) == []
    # Nothing of the run's nodes stays in the temp root: no lock file, no temp folder
    # (named after the head's, `ray-<port>-<id>`: another cluster may have had the port).
    cluster_folder = head_logs.parent.name.removesuffix("-logs")
    assert list(Path("/tmp").glob(f"{cluster_folder}*")) == []
    seen = report["cluster"]["worker_nodes_seen"]
    assert seen == {"min": 2, "peak": 2, "end": 2}


@pytest.mark.timeout(RUN_TIMEOUT)
def test_the_report_keeps_what_each_node_reported_over_the_run(full_run):
    """The head and both worker nodes sampled from the cluster's ready to the work's end,
    their series in report.json, their charts in report.html, their last scrapes in
    metrics.prom (one Prometheus text, each sample naming its node)."""
    report = report_of(full_run.run_dir)
    metrics = report["metrics"]
    nodes = {node["name"]: node for node in metrics["nodes"]}
    assert sorted(nodes) == ["head", "worker-1", "worker-2"]
    ready = next(p for p in report["phases"] if p["name"] == "Ray cluster start")
    stages_end = max(s["started_at_seconds"] + s["seconds"] for s in report["stages"])
    for name, node in nodes.items():
        assert len(node["t"]) >= 3 and node["memory_total"][-1] > 0, name
        assert node["t"][0] >= ready["started_at_seconds"] + ready["seconds"] - 0.5
        assert node["t"][-1] >= stages_end - 0.5, "sampled until the work ended"
    for name in ("worker-1", "worker-2"):  # one CPU and one (fake) GPU each, both used
        node = nodes[name]
        assert (node["cpu_total"][-1], node["gpu_total"][-1]) == (1.0, 1.0)
        assert max(node["cpu_used"]) > 0 and max(node["object_store_capacity"]) > 0
    cluster = metrics["cluster"]
    assert max(cluster["actors_alive"]) > 0 and max(cluster["tasks_running"]) > 0
    assert metrics["unanswered"] == {}
    page = (full_run.run_dir / "report.html").read_text()
    for title in ("CPUs in use", "GPUs in use", "object store used", "actors alive"):
        assert f'aria-label="{title}' in page, title
    scraped = (full_run.run_dir / "metrics.prom").read_text()
    families = list(text_string_to_metric_families(scraped))
    assert len({f.name for f in families}) == len(families)
    said_by = {s.labels.get("raybricks_node") for f in families for s in f.samples}
    assert said_by == {"head", "worker-1", "worker-2"}


@pytest.mark.timeout(RUN_TIMEOUT)
def test_a_passing_run_prints_a_few_lines_of_its_own(full_run):
    """Ray's and Spark's own output (banners, warnings, deliberate crashes) went to
    driver.log: the console holds raybricks' lines and the summary."""
    lines = (full_run.done.stderr + full_run.done.stdout).splitlines()
    # a long stage's progress: a line at most every LINE_EVERY seconds, after the first
    said = [PROGRESS_LINE.search(line) for line in lines]
    seconds = {s["name"]: s["seconds"] for s in report_of(full_run.run_dir)["stages"]}
    for name, length in seconds.items():
        told = sum(1 for match in said if match and match["stage"] == name)
        assert told <= length // LINE_EVERY, (name, length, told)
    console = [line for line, match in zip(lines, said, strict=True) if not match]
    # settings, Spark up, Ray's advice in our words (memory, CPUs), cluster ready, each
    # stage's start and end, the summary (its first line, its header, a row per stage), the
    # run folder
    assert len(console) <= 5 + 2 * len(STAGES) + 2 + len(STAGES) + 1, "\n".join(lines)
    assert not [line for line in console if "Traceback" in line or " ERROR " in line]
    assert any(f"Ray {ray.__version__} cluster ready at" in line for line in console)
    for name in STAGES:  # the summary, with what each stage proved
        assert any(line.startswith(name) and "passed" in line for line in console), name
    log = (full_run.run_dir / "driver.log").read_text()
    assert "Ray runtime started" in log or "Next steps" in log  # Ray's own banner, kept there
    # no call to Spark's JVM met a connection cut under it (see test_cluster's head start)
    assert "Exception while sending command" not in log


@pytest.mark.timeout(RUN_TIMEOUT)
def test_report_html_renders_in_chromium(full_run):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    dom, png = render_in_chromium(full_run.run_dir / "report.html", full_run.run_dir)
    report = report_of(full_run.run_dir)
    assert f"raybricks run {report['run_id']}" in dom
    for stage in report["stages"]:
        assert f'id="stage-{stage["name"]}"' in dom
    assert 'class="status passed"' in dom
    assert "What the nodes reported" in dom and "CPUs in use" in dom
    assert png_shades(png) > 16, "the screenshot is one flat colour"


# Prepended to a run: what fast start was written for is no longer this Ray (a Ray
# release moved on), as far as the compatibility layer can tell.
UNKNOWN_RAY = "from raybricks.cluster import compat\ncompat.READ_FOR_RAY = '2.59.0'\n"


# Ray's own start (its fixed waits) through spark-submit: in `make test-slow`; the
# emulated Databricks job task goes through spark-submit in `make test`.
@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT)
def test_spark_submit_with_a_failing_stage_on_an_unknown_ray_exits_1_and_shuts_down(
    tmp_path, env, example_plugin
):
    """Also the example plugin's stage (installed: on the PYTHONPATH of the driver and
    of Spark's executors), run through its entry point beside a failing built-in."""
    environment, mark = env
    environment["PYSPARK_PYTHON"] = sys.executable
    environment["PYTHONPATH"] = str(example_plugin)
    conf = tmp_path / "failing.yml"
    # An override asking for more CPUs than any worker node has can never be placed.
    conf.write_text(
        SMALL_CLUSTER + "stage_params:\n  options_override:\n"
        "    override_num_cpus: 2\n    placement_timeout_seconds: 2\n"
    )
    job = tmp_path / "job_on_an_unknown_ray.py"
    job.write_text(
        f"{UNKNOWN_RAY}import runpy\n"
        f"runpy.run_path({str(ROOT / 'jobs' / 'actor_demos.py')!r}, run_name='__main__')\n"
    )
    log_root = tmp_path / "runs"
    done = finished(
        [
            *SPARK_SUBMIT,
            "--master",
            "local-cluster[1,1,1024]",
            str(job),
            *one_stage(conf, log_root, "options_override,greeter"),
        ],
        environment,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    report = report_of(only_run_dir(log_root))
    assert report["status"] == "failed"
    assert report["cluster"]["spark_master"] == "local-cluster[1,1,1024]"  # spark-submit's
    # Ray's own start-up ran, unpatched, and the report says why.
    assert report["cluster"]["fast_start"] == (
        "unavailable: it was written for Ray 2.59.0, this is Ray 2.60.0"
    )
    assert list(only_run_dir(log_root).glob("ray-*-node-*-logs")) == []  # no fast-started node
    failing, plugin = report["stages"]
    assert failing["status"] == "failed"
    assert "was not placed within 2.0 s" in failing["error"]
    assert (plugin["name"], plugin["status"]) == ("greeter", "passed")
    assert plugin["evidence"]["answers"] == [
        "hello, caller 0",
        "hello, caller 1",
        "hello, caller 2",
    ]
    assert left_after(mark) == []


RAYBRICKS_MAIN = "import sys\nfrom raybricks.entry import entry\nsys.exit(entry(sys.argv[1:]))\n"
NEVER_JOINING = ROOT / "tests" / "cluster" / "stand_ins" / "never_joining"
JOIN_BOUND = (
    "from raybricks.cluster.compat import fast_start\nfast_start.JOIN_PROGRESS_SECONDS = 8\n"
)


@pytest.mark.slow  # two cluster starts, one of Ray's own (its fixed waits)
@pytest.mark.timeout(RUN_TIMEOUT)
def test_a_fast_start_whose_worker_nodes_never_join_is_retried_with_rays_own(tmp_path, env):
    """Its worker node's `ray start` never joins (a stand-in on the PYTHONPATH): after
    the bound, the fast-started cluster is torn down and Ray's own start passes the run;
    the report says why, and neither start leaves anything behind."""
    environment, mark = env
    environment["PYTHONPATH"] = str(NEVER_JOINING)
    conf = tmp_path / "small.yml"
    conf.write_text(SMALL_CLUSTER)
    log_root = tmp_path / "runs"
    before = forkserver_folders()
    done = finished(
        [
            sys.executable,
            "-c",
            JOIN_BOUND + RAYBRICKS_MAIN,
            "run",
            *one_stage(conf, log_root, "namespaces"),
        ],
        environment,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = only_run_dir(log_root)
    report = report_of(run_dir)
    assert report["cluster"]["fast_start"].startswith(
        "unavailable: fast-started worker nodes did not join within 8 s"
    ), report["cluster"]
    assert report["stages"][0]["status"] == "passed"
    assert "fast start did not work" in done.stderr  # said on the console too
    assert left_after(mark) == []
    assert forkserver_folders() <= before, "Ray's own start left its forkserver folder"
    for logs in run_dir.glob("ray-*-logs"):  # both clusters' folders are gone
        assert list(Path("/tmp").glob(f"{logs.name.removesuffix('-logs')}*")) == []


# Only fast start looks it up there (Ray's cluster_init holds a reference of its own).
MISSING = "utils.get_random_unused_port"


# Side b runs on a Ray that lacks a private name fast start replaces: Ray's own start.
SIDES = {
    "a": ("", "on"),
    "b": (
        f"from ray.util.spark import utils\ndel {MISSING}\n",
        f"unavailable: ray.util.spark.{MISSING} is missing",
    ),
}


@pytest.mark.timeout(RUN_TIMEOUT)
@pytest.mark.parametrize(
    "sides",
    [
        # In `make test`, exec's command side has unit tests (test_job.py); its cluster
        # is run's, which the other whole runs start: these are in `make test-slow`.
        pytest.param(["a"], id="one", marks=pytest.mark.slow),
        # Two clusters, one through Ray's own start (its fixed waits).
        pytest.param(["a", "b"], id="two-at-once", marks=pytest.mark.slow),
    ],
)
def test_exec_hands_each_cluster_to_its_command(tmp_path, env, sides):
    """`exec`s side by side (no port collision between their clusters), each command
    getting its own cluster, namespace and token, and exiting with its code."""
    environment, mark = env
    driver = (
        "import os, sys, ray\n"
        # RAY_ADDRESS and the token come from exec; plain ray.init() reads no namespace
        # from the environment, so exec's RAY_NAMESPACE is passed on explicitly.
        # At WARNING Ray's connect says nothing: the command's own output is the 42.
        "ray.init(namespace=os.environ['RAY_NAMESPACE'], logging_level='WARNING')\n"
        "assert ray.get_runtime_context().namespace == sys.argv[2]\n"
        "open(sys.argv[1], 'w').write(os.environ['RAY_AUTH_TOKEN'])\n"
        "alive = [n for n in ray.nodes() if n['Alive']]\n"
        "print(40 + len(alive))\n"
        "sys.exit(40 + len(alive))\n"  # the head and one worker node: 42
    )
    roots = {side: tmp_path / side for side in sides}
    conf = tmp_path / "small.yml"
    conf.write_text(SMALL_CLUSTER)

    def start(side: str, root: Path) -> subprocess.Popen[bytes]:
        root.mkdir()
        namespace = f"ns-{side}"
        options = ["--conf", conf, "--namespace", namespace, "--log-path", root / "runs"]
        (root / "driver.py").write_text(driver)
        command = [sys.executable, root / "driver.py", root / "token", namespace]
        raybricks = [sys.executable, "-c", SIDES[side][0] + RAYBRICKS_MAIN]
        with (root / "stderr.txt").open("w") as stderr, (root / "stdout.txt").open("w") as out:
            return subprocess.Popen(
                [*raybricks, "exec", *options, "--", *command],
                env=environment,
                stdout=out,
                stderr=stderr,
            )

    procs = [start(side, root) for side, root in roots.items()]
    codes = [proc.wait(timeout=RUN_TIMEOUT) for proc in procs]
    assert codes == [42] * len(sides), [
        (r / "stderr.txt").read_text()[-2000:] for r in roots.values()
    ]
    reports = [report_of(only_run_dir(root / "runs")) for root in roots.values()]
    assert [(r["command"]["exit_code"], r["exit_code"]) for r in reports] == [(42, 42)] * len(sides)
    assert [r["cluster"]["fast_start"] for r in reports] == [SIDES[side][1] for side in sides]
    assert len({r["cluster"]["address"] for r in reports}) == len(sides)
    assert left_after(mark) == []
    tokens = [(root / "token").read_text() for root in roots.values()]
    assert len(set(tokens)) == len(sides) and all(len(token) == 64 for token in tokens)
    for root in roots.values():  # a few lines of raybricks' own, and the command's own
        console = [
            *(root / "stderr.txt").read_text().splitlines(),
            *(root / "stdout.txt").read_text().splitlines(),
        ]
        assert "42" in console and len(console) <= 12, "\n".join(console)
        assert not [line for line in console if "Traceback" in line or "Next steps" in line]
    for root, token in zip(roots.values(), tokens, strict=True):
        run_dir = only_run_dir(root / "runs")
        assert wait_for(partial(ray_node_logs, run_dir), timeout=30)
        files = [p for p in run_dir.rglob("*") if p.is_file()]
        leaks = [str(p) for p in files if token.encode() in p.read_bytes()]
        assert leaks == [], "the run's token was written to its run folder"


TERM, INT = signal.SIGTERM, signal.SIGINT


@pytest.mark.timeout(RUN_TIMEOUT)
@pytest.mark.parametrize(
    ("signals", "stage_status"),
    [
        # SIGINT where SparkContext() sets a SIGINT handler of its own; both signals take
        # the same path after that (the `deferred` unit test sends both).
        pytest.param([("starting a local Spark", 1.0, INT)], "skipped", id="spark-start-sigint"),
        # In `make test`, the emulated Databricks job task is cancelled during Ray's start
        # (test_databricks_runtime.py), and again during the teardown, as a job's cancel
        # comes; a stage cancelled there, and the run below, in `make test-slow`.
        pytest.param(
            [("starting Ray on Spark", 1.0, TERM)],
            "skipped",
            id="ray-start",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_a_cancel_at_any_phase_ends_cleanly_and_leaves_nothing(
    tmp_path, env, signals, stage_status
):
    """Each signal is sent `after` seconds once its phase's line is logged."""
    environment, mark = env
    # auth disabled, despite the stray token file
    conf = SMALL_CLUSTER + "  auth: disabled\n"
    run = InTheBackground(tmp_path, environment, conf, "namespaces")
    first = signal.Signals(signals[0][2])
    with run:
        for log_line, after, signum in signals:
            run.wait_until_logged(log_line)
            time.sleep(after)
            run.proc.send_signal(signum)
        assert run.proc.wait(timeout=120) == 128 + first, run.stderr.read_text()[-3000:]
    run_dir = only_run_dir(run.log_root)
    report = report_of(run_dir)
    assert (report["status"], report["exit_code"]) == ("cancelled", 128 + first)
    assert report["error"] == f"cancelled by {first.name}"
    assert report["stages"][0]["status"] == stage_status
    if signals[0][0] != "starting a local Spark":  # a cluster existed: its logs were collected
        assert report["cluster"]["address"], "the report names the cluster that had started"
        assert wait_for(lambda: ray_node_logs(run_dir), timeout=30)
    assert left_after(mark) == []


@pytest.mark.timeout(RUN_TIMEOUT)
@pytest.mark.parametrize(
    ("conf_text", "flags", "error"),
    [
        pytest.param(
            SMALL_CLUSTER + "  head_node_options:\n    no_such_ray_start_option: 1\n",
            [],
            "the Ray cluster could not start",
            id="the-head-fails",
            marks=pytest.mark.slow,  # a third cluster start; no-room ends the same way
        ),
        pytest.param(
            "",
            ["--spark-master", "local-cluster[1,1,1024]", "--min-worker-nodes", "2"],
            "cluster.min_worker_nodes: 2 worker nodes cannot start on local-cluster[1,1,1024]",
            id="no-room-for-the-minimum",
        ),
    ],
)
def test_a_cluster_that_cannot_start_exits_3_and_reports_every_stage_skipped(
    tmp_path, env, conf_text, flags, error
):
    environment, mark = env
    conf = tmp_path / "conf.yml"
    conf.write_text(conf_text)
    log_root = tmp_path / "runs"
    done = finished(
        [BIN / "raybricks", "run", "--conf", str(conf), "--log-path", str(log_root), *flags],
        environment,
    )
    assert done.returncode == 3, done.stderr[-3000:]
    report = report_of(only_run_dir(log_root))
    assert report["status"] == "failed" and report["exit_code"] == 3
    assert report["error"].startswith(error)
    assert error in done.stderr
    assert stage_statuses(report) == [(n, "skipped") for n in STAGES]
    # A local master's size is known before Spark starts: then it does not start.
    spark_started = "Spark up" in (only_run_dir(log_root) / "driver.log").read_text()
    assert spark_started == (not flags)
    assert left_after(mark) == []


def test_ray_holding_every_spark_slot_is_refused_before_anything_starts(tmp_path, env):
    """Two one-core executors and two one-CPU Ray worker nodes leave batch_inference's
    Spark jobs no slot: refused in one line, exit 2, no run folder, no Spark."""
    environment, mark = env
    log_root = tmp_path / "runs"
    flags = ["--spark-master", "local-cluster[2,1,1024]", "--log-path", str(log_root)]
    done = finished([BIN / "raybricks", "run", *flags], environment)
    assert done.returncode == 2, done.stderr[-3000:]
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("raybricks:")]
    assert "hold every task slot of Spark master local-cluster[2,1,1024]" in line
    assert "Traceback" not in done.stderr and not log_root.exists()
    assert left_after(mark) == []


# With Ray's own start (its launcher, which leaves its lock file) in `make test-slow`.
@pytest.mark.parametrize("fast", [True, pytest.param(False, marks=pytest.mark.slow)])
@pytest.mark.timeout(RUN_TIMEOUT)
def test_a_driver_killed_outright_leaves_what_its_stages_proved_and_nothing_running(
    tmp_path, env, fast
):
    """SIGKILL, as an out-of-memory kill or a lost driver ends it, once the first stage
    has ended: the report, rewritten as each stage ends, keeps that stage; `raybricks
    report` says the run ended without a report of its end; nothing of it runs on, and
    nothing of its cluster stays in the temp root, whichever start ran."""
    environment, mark = env
    conf = SMALL_CLUSTER + f"  fast_start: {str(fast).lower()}\nparallel_stages: 1\n"
    temp = environment["TMPDIR"] = str(tmp_path / "tmp")  # what Python's tempfile makes
    Path(temp).mkdir()
    with InTheBackground(tmp_path, environment, conf, "namespaces,detached_actors") as run:
        # The saved driver log says it once the report has it (tests/unit/test_runner.py).
        assert wait_for(lambda: "namespaces: passed" in saved_driver_log(run.log_root), 240, 0.05)
        run.proc.kill()
        run.proc.wait(timeout=30)
    run_dir = only_run_dir(run.log_root)
    report = report_of(run_dir)
    assert report["status"] == "running"  # its last report: the first stage's end
    assert stage_statuses(report) == [
        ("namespaces", "passed"),
        ("detached_actors", "skipped"),
    ]
    assert "namespaces: passed" in (run_dir / "driver.log").read_text()  # saved as it ended
    sampled = report["metrics"]  # what was sampled until then: from the cluster's ready on
    assert {node["name"] for node in sampled["nodes"]} == {"head", "worker-1"}
    assert sampled["cluster"]["t"][0] <= report["stages"][0]["started_at_seconds"] + 0.5
    said = finished([BIN / "raybricks", "report", run_dir], environment)
    assert "ended without a report of its end: the driver was killed or lost" in said.stdout
    assert left_after(mark) == []
    assert (report["cluster"]["fast_start"] == "off") is not fast  # fast: on, or it fell back
    port = report["cluster"]["address"].rsplit(":", 1)[1]

    def cluster_entries() -> list[Path]:
        return list(Path("/tmp").glob(f"ray-{port}-*"))

    assert wait_for(lambda: not cluster_entries(), timeout=30), cluster_entries()
    # Killed as the second stage starts a driver of its own: no temp file of it stays.
    assert wait_for(lambda: not any(Path(temp).iterdir()), timeout=30), list(Path(temp).iterdir())


# A fourth cluster start (about a minute of both cores): in `make test-slow`. In `make
# test` the runner's and the head's unit tests give up on a head that has gone.
@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT)
def test_a_head_lost_mid_stage_ends_the_run_with_exit_3_and_leaves_nothing(
    tmp_path, env, example_plugin
):
    """Without its head a cluster answers nothing, and Ray's disconnect would end the
    driver; the run notices within a second or two and ends as any failure does. Beside
    the stage that loses its head: the example plugin's stage, installed (on the
    PYTHONPATH of the driver and of Spark's executors), run through its entry point."""
    environment, mark = env
    environment["PYTHONPATH"] = str(example_plugin)
    # A stage that surely lasts past the kill: its workers train for 40 s.
    conf = SMALL_CLUSTER + (
        "stage_params:\n  tree_of_actors:\n"
        "    {step_seconds: 5, budget_seconds: 120, timeout_seconds: 120}\n"
    )
    with InTheBackground(tmp_path, environment, conf, "greeter,tree_of_actors") as run:
        run.wait_until_logged("tree_of_actors: started")
        run.wait_until_logged("greeter: passed")
        (gcs,) = running_marked(mark, "gcs_server")
        gcs.kill()
        # 3, not the code of Ray ending the process: the run ended as any failure does
        assert run.proc.wait(timeout=120) == 3, run.stderr.read_text()[-3000:]
    report = report_of(only_run_dir(run.log_root))
    assert (report["status"], report["exit_code"]) == ("failed", 3)
    assert report["error"] == "the Ray cluster's head exited"
    plugin, lost = report["stages"]
    assert (plugin["name"], plugin["status"]) == ("greeter", "passed")
    assert plugin["evidence"]["answers"] == [
        "hello, caller 0",
        "hello, caller 1",
        "hello, caller 2",
    ]
    # Failed: stopped by the runner ("interrupted (the Ray cluster's head exited)"), or
    # by one of its own calls failing first, whichever came first.
    assert (lost["name"], lost["status"]) == ("tree_of_actors", "failed")
    assert left_after(mark) == []


# Ray's log line as `ray.init` begins: setup_ray_cluster's own connect, then the run's.
CONNECTING = "Connecting to existing Ray cluster"


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT)
@pytest.mark.parametrize("after", [0.0, 0.03, 0.1])
@pytest.mark.parametrize("connect", [1, 2], ids=["setup-connects", "run-connects"])
def test_a_cancel_as_ray_init_connects_is_a_cancel(tmp_path, env, connect, after):
    """SIGTERM within milliseconds of either `ray.init` of the start (Ray's signal
    handlers come and go around them)."""
    environment, mark = env
    with InTheBackground(tmp_path, environment, SMALL_CLUSTER, "namespaces") as run:
        run.wait_until_logged(CONNECTING, times=connect, interval=0.005)
        time.sleep(after)
        run.proc.send_signal(TERM)
        assert run.proc.wait(timeout=120) == 143, run.stderr.read_text()[-3000:]
    report = report_of(only_run_dir(run.log_root))
    assert (report["status"], report["exit_code"]) == ("cancelled", 143)
    assert report["cluster"]["address"], "a cluster had started: the report says which"
    assert left_after(mark) == []


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT)
@pytest.mark.parametrize("after", [0.0, 0.1, 0.2, 0.4])
def test_a_head_lost_during_the_teardown_leaves_the_run_as_it_ended(tmp_path, env, after):
    """The GCS killed as the teardown disconnects (it takes about 0.3 s): the run's
    stages had passed, so did the run; it ends at once and leaves nothing. (Its metrics
    are not sampled: such a run keeps none, and passes.)"""
    environment, mark = env
    unsampled = SMALL_CLUSTER + "metrics:\n  sample_seconds: 0\n"
    with InTheBackground(tmp_path, environment, unsampled, "namespaces") as run:
        run.wait_until_logged("shutting the Ray cluster down", interval=0.005)
        time.sleep(after)
        for gcs in running_marked(mark, "gcs_server"):
            gcs.kill()
        # seconds: before, a disconnect from a lost head could hang (seen: 25 s, 60 s)
        assert run.proc.wait(timeout=20) == 0, run.stderr.read_text()[-3000:]
    run_dir = only_run_dir(run.log_root)
    report = report_of(run_dir)
    assert (report["status"], report["exit_code"]) == ("passed", 0)
    assert report["metrics"] == {} and not (run_dir / "metrics.prom").exists()
    assert left_after(mark) == []
