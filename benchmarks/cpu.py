"""Where the CPU of a run goes, by kind of process; writes benchmarks/CPU.md. Not a test.

    .venv/bin/python -m benchmarks.cpu [--runs 3]

Each run is `raybricks run --target local --stages namespaces` (the lightest stage, so
the figures are mostly the cluster's start and teardown). Every process the run starts
is sampled every 0.2 s for its CPU seconds (user and system); a process is counted
with what it had used at its last sample, so one that lives under 0.2 s goes unseen.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

from benchmarks.machine import described
from benchmarks.processes import left_after, marked_env

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
SAMPLE_SECONDS = 0.2

LAUNCHERS = "Ray node launchers (Ray's start_ray_node or raybricks', then ray start)"
BINARIES = {"raylet": "raylets (one per node)", "gcs_server": "GCS (head)"}
# (kind, what in its command line tells it), first match wins: Ray's titled processes
# show only their title, the others their command line (an agent's names the raylet).
KINDS = (
    ("Spark driver JVM", "org.apache.spark.deploy.SparkSubmit"),
    ("Spark executor JVMs", "CoarseGrainedExecutorBackend"),
    ("Spark's Python workers (import Ray for the node tasks)", "pyspark.daemon"),
    ("Spark's Python workers (import Ray for the node tasks)", "python_daemon"),
    (LAUNCHERS, "start_ray_node"),
    (LAUNCHERS, "node_launcher"),
    (LAUNCHERS, "bin/ray start"),
    ("dashboard agents (one per node)", "ray::DashboardAgent"),
    ("dashboard agents (one per node)", "dashboard/agent.py"),
    ("runtime env agents (one per node)", "ray::RuntimeEnvAgent"),
    ("runtime env agents (one per node)", "runtime_env/agent/main.py"),
    ("dashboard and its modules (head)", "ray-dashboard-"),
    ("dashboard and its modules (head)", "dashboard/dashboard.py"),
    ("dashboard and its modules (head)", "ray.dashboard.subprocesses"),  # their forkserver
    ("autoscaler (head)", "autoscaler/_private/monitor.py"),
    ("Ray client server (head)", "ray.util.client.server"),
    ("Ray workers (actors and tasks)", "default_worker.py"),
    ("Ray workers (actors and tasks)", "ray::"),
    ("the driver (raybricks)", "raybricks"),
)


def kind_of(proc: psutil.Process) -> str:
    try:
        name, text = proc.name(), " ".join(proc.cmdline())
    except psutil.Error:
        return "other"
    if name in BINARIES:
        return BINARIES[name]
    return next((kind for kind, sign in KINDS if sign in f"{name} {text}"), "other")


def cpu_of_one_run(folder: Path) -> tuple[dict[str, float], Counter[str], float]:
    """CPU seconds and process counts by kind over one run, and its wall seconds."""
    env, mark = marked_env(RAY_USAGE_STATS_ENABLED="0")
    command = [str(BIN / "raybricks"), "run", "--target", "local", "--stages", "namespaces"]
    began = time.time()
    proc = subprocess.Popen(
        [*command, "--log-path", str(folder / "runs")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    used: dict[int, tuple[str, float]] = {}
    while proc.poll() is None:
        for each in psutil.process_iter():
            try:
                if each.create_time() < began or each.pid == psutil.Process().pid:
                    continue
                times = each.cpu_times()
                kind = used[each.pid][0] if each.pid in used else kind_of(each)
                used[each.pid] = (kind, times.user + times.system)
            except psutil.Error:
                continue
        time.sleep(SAMPLE_SECONDS)
    wall = time.time() - began
    if proc.returncode != 0:
        raise SystemExit(f"the run failed (exit {proc.returncode})")
    left_after(mark)
    seconds: dict[str, float] = {}
    count: Counter[str] = Counter()
    for kind, cpu in used.values():
        seconds[kind] = seconds.get(kind, 0.0) + cpu
        count[kind] += 1
    return seconds, count, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs (median per kind)")
    runs = parser.parse_args().runs
    measured = []
    with tempfile.TemporaryDirectory(prefix="raybricks-cpu-") as folder:
        for run in range(runs):
            measured.append(cpu_of_one_run(Path(folder) / str(run)))
    kinds = sorted({kind for seconds, _, _ in measured for kind in seconds})
    median = {kind: statistics.median(s.get(kind, 0.0) for s, _, _ in measured) for kind in kinds}
    total = statistics.median(sum(s.values()) for s, _, _ in measured)
    wall = statistics.median(w for _, _, w in measured)
    lines = [
        "# Where a run's CPU goes",
        "",
        f"Written by `python -m benchmarks.cpu --runs {runs}` on {time.strftime('%Y-%m-%d')}: "
        f"{described()}. Each run is `raybricks run --target local --stages namespaces` "
        "(local-cluster[3,1,1024], two Ray worker nodes, fast start on; the lightest stage, "
        "so this is mostly the cluster's start and teardown). CPU seconds (user and system) "
        f"of every process the run started, sampled every {SAMPLE_SECONDS} s; medians of "
        f"{runs} runs.",
        "",
        "| processes | how many | CPU seconds | share |",
        "|---|---|---|---|",
        *(
            f"| {kind} | {statistics.median(c[kind] for _, c, _ in measured):.0f} | "
            f"{median[kind]:.1f} | {median[kind] / total:.0%} |"
            for kind in sorted(kinds, key=median.__getitem__, reverse=True)
        ),
        f"| all | | {total:.1f} | 100% |",
        "",
        f"Wall seconds per run: {wall:.1f}; on average {total / wall:.2f} of the "
        f"{psutil.cpu_count()} cores busy.",
    ]
    (HERE / "CPU.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
