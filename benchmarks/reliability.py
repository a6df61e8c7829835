"""Reruns, neighbours and cancels, each repeated, on this machine only (loopback).

Writes benchmarks/RELIABILITY.md: per scenario, the runs, how many passed, the
processes left behind, and the time per run. Exits 1 if any run failed or left
something behind, so it doubles as the slow test (tests/cluster/test_reliability.py).

    .venv/bin/python -m benchmarks.reliability [--runs 10] [--pairs 2] [--cancels 5]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tests.cluster.processes import left_after, marked_env, wait_for

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RAYBRICKS = Path(sys.executable).parent / "raybricks"
RUN_TIMEOUT = 300


@dataclass
class Scenario:
    name: str
    passed: int = 0
    seconds: list[float] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def row(self) -> str:
        runs = len(self.seconds)
        median = statistics.median(self.seconds) if self.seconds else 0.0
        return f"| {self.name} | {runs} | {self.passed} | {len(self.leftovers)} | {median:.1f} |"


def run_args(log_root: Path, *extra: str) -> list[str]:
    return [str(RAYBRICKS), "run", "--target", "local", "--log-path", str(log_root), *extra]


def report_of(log_root: Path, before: set[Path]) -> dict:
    """The report of the one run folder that appeared under `log_root`."""
    (new,) = set(log_root.iterdir()) - before
    return json.loads((new / "report.json").read_text())


def consecutive(scenario: Scenario, root: Path, runs: int) -> None:
    """The same settings (namespace included) again and again, as a daily job."""
    log_root = root / "consecutive"
    log_root.mkdir()
    for _ in range(runs):
        environment, mark = marked_env(RAY_USAGE_STATS_ENABLED="0")
        before = set(log_root.iterdir())
        clock = time.monotonic()
        done = subprocess.run(
            run_args(log_root), env=environment, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
        scenario.seconds.append(time.monotonic() - clock)
        report = report_of(log_root, before)
        judge(scenario, done.returncode == 0 and report["status"] == "passed", report, mark)


def side_by_side(scenario: Scenario, root: Path, pairs: int) -> None:
    """Two runs at once, each with its own namespace and log path."""
    for pair in range(pairs):
        environment, mark = marked_env(RAY_USAGE_STATS_ENABLED="0")
        roots = [root / f"pair{pair}-{side}" for side in "ab"]
        clock = time.monotonic()
        procs = [
            subprocess.Popen(
                run_args(log_root, "--namespace", f"neighbour-{log_root.name}"),
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for log_root in roots
        ]
        codes = [proc.wait(timeout=RUN_TIMEOUT) for proc in procs]
        for log_root, code in zip(roots, codes, strict=True):
            scenario.seconds.append(time.monotonic() - clock)
            report = report_of(log_root, set())
            judge(scenario, code == 0 and report["status"] == "passed", report, mark)


def cancelled(scenario: Scenario, root: Path, runs: int) -> None:
    """SIGTERM (a Databricks cancel) one second into a stage."""
    log_root = root / "cancelled"
    log_root.mkdir()
    for _ in range(runs):
        environment, mark = marked_env(RAY_USAGE_STATS_ENABLED="0")
        before = set(log_root.iterdir())
        clock = time.monotonic()
        with subprocess.Popen(
            run_args(log_root, "--stages", "actor_pool"),
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ) as run:
            wait_for(partial(stage_started, log_root, before), timeout=180, interval=0.1)
            time.sleep(1)
            run.send_signal(signal.SIGTERM)
            code = run.wait(timeout=RUN_TIMEOUT)
        scenario.seconds.append(time.monotonic() - clock)
        report = report_of(log_root, before)
        judge(scenario, code == 143 and report["status"] == "cancelled", report, mark)


def stage_started(log_root: Path, before: set[Path]) -> bool:
    logs = [run / "driver.log" for run in set(log_root.iterdir()) - before]
    return any(log.exists() and "actor_pool: started" in log.read_text() for log in logs)


def judge(scenario: Scenario, ok: bool, report: dict, mark: str) -> None:
    left = left_after(mark)
    scenario.leftovers += left
    if ok and not left:
        scenario.passed += 1
    else:
        scenario.failures.append(f"{report['run_id']}: {report['status']} {report.get('error')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="consecutive runs")
    parser.add_argument("--pairs", type=int, default=2, help="pairs of runs at once")
    parser.add_argument("--cancels", type=int, default=5, help="runs cancelled mid-stage")
    parser.add_argument("--out", type=Path, default=HERE / "RELIABILITY.md")
    args = parser.parse_args()
    plan: list[tuple[Scenario, Callable[[Scenario, Path, int], None], int]] = [
        (Scenario("consecutive runs, same settings"), consecutive, args.runs),
        (Scenario("two runs at once (own namespaces and log paths)"), side_by_side, args.pairs),
        (Scenario("SIGTERM 1 s into a stage -> exit 143"), cancelled, args.cancels),
    ]
    with tempfile.TemporaryDirectory(prefix="raybricks-reliability-") as folder:
        for scenario, scenario_runs, count in plan:
            scenario_runs(scenario, Path(folder), count)
    lines = [
        "# Reliability",
        "",
        f"Written by `python -m benchmarks.reliability --runs {args.runs} --pairs {args.pairs} "
        f"--cancels {args.cancels}` on {time.strftime('%Y-%m-%d')}; each run is "
        "`raybricks run --target local` (local-cluster[2,1,1024], two Ray worker nodes). "
        "Left behind: processes of a run still alive 60 s after it ended.",
        "",
        "| scenario | runs | passed | left behind | median s per run |",
        "|---|---|---|---|---|",
        *(scenario.row() for scenario, _, _ in plan),
        *(f"\nFailed: {f}" for scenario, _, _ in plan for f in scenario.failures),
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(not s.failures for s, _, _ in plan) else 1


if __name__ == "__main__":
    sys.exit(main())
