"""Reruns, neighbours and cancels, each repeated, on this machine only (loopback).

Writes benchmarks/RELIABILITY.md: per scenario, the runs, how many passed, the
processes left behind, what stayed in the temp root (/tmp) and in the class-archive
cache, and the time per run. Exits 1 if any run failed or left something behind, so it
doubles as the slow test (tests/cluster/test_reliability.py).

    .venv/bin/python -m benchmarks.reliability [--runs 10] [--pairs 2] [--cancels 5]
                                               [--sweep-step 1.0] [--node-loss-step 2.0]
                                               [--kill-step 2.0]
(a step of 0 leaves that sweep out)
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
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

from benchmarks.machine import described
from benchmarks.processes import (
    kill_node,
    left_after,
    live_driver_log,
    marked_env,
    running_marked,
    wait_for,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RAYBRICKS = Path(sys.executable).parent / "raybricks"
RUN_TIMEOUT = 300


TEMP_ROOT = Path("/tmp")
NOT_WHOLE = "report not whole"  # report.json that does not parse: never a pass


@dataclass
class Scenario:
    name: str
    passed: int = 0
    seconds: list[float] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    temp_files: tuple[int, int] = (0, 0)  # (files, bytes) new in the temp root
    temp_entries: list[str] = field(default_factory=list)  # where in it, by top entry
    cache_files: tuple[int, int] = (0, 0)  # (files, bytes) new in the class-archive cache
    notes: list[str] = field(default_factory=list)  # what each run met, where it varies

    def row(self) -> str:
        runs = len(self.seconds)
        median = statistics.median(self.seconds) if self.seconds else 0.0
        return (
            f"| {self.name} | {runs} | {self.passed} | {len(self.leftovers)} | "
            f"{self.temp_files[0]} ({self.temp_files[1]:,} B) | "
            f"{self.cache_files[0]} ({self.cache_files[1]:,} B) | {median:.1f} |"
        )


# Every entry of the temp root counts (Ray's nodes' lock files and temp folders, the
# dashboard's module forkserver's socket folder, Spark's JVMs', anything else), but the
# sweep's own folder and pytest's.
NOT_A_RUNS = ("reliability-*", "pytest-of-*")


def run_files(root: Path) -> dict[Path, int]:
    """Everything in a temp root (every file, socket and folder, with its size) but
    `NOT_A_RUNS`."""
    found = {}
    for entry in root.iterdir():
        if any(entry.match(pattern) for pattern in NOT_A_RUNS):
            continue
        for path in [entry, *(entry.rglob("*") if entry.is_dir() else ())]:
            try:
                found[path] = path.stat().st_size if path.is_file() else 0
            except OSError:
                continue
    return found


def cache_files() -> dict[Path, int]:
    folder = Path.home() / ".cache" / "raybricks"
    return (
        {p: p.stat().st_size for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else {}
    )


def added(before: dict[Path, int], now: dict[Path, int]) -> dict[Path, int]:
    return {path: size for path, size in now.items() if path not in before}


def counted(paths: dict[Path, int]) -> tuple[int, int]:
    """(files, bytes)"""
    return len(paths), sum(paths.values())


def top_entries(paths: dict[Path, int], root: Path) -> list[str]:
    """The entries of `root` that `paths` are under, each with its count."""
    tops = Counter(root / path.relative_to(root).parts[0] for path in paths)
    return [f"{top} ({count})" for top, count in sorted(tops.items())]


def run_args(log_root: Path, *extra: str) -> list[str]:
    return [str(RAYBRICKS), "run", "--target", "local", "--log-path", str(log_root), *extra]


def report_of(log_root: Path, before: set[Path]) -> dict:
    """The report of the one run folder that appeared under `log_root`."""
    (new,) = set(log_root.iterdir()) - before
    if not (new / "report.json").exists():  # a failure of the run, not of this script
        return {"run_id": new.name, "status": "no report", "exit_code": None}
    try:
        return json.loads((new / "report.json").read_text())
    except json.JSONDecodeError:
        return {"run_id": new.name, "status": NOT_WHOLE, "exit_code": None}


@dataclass
class Started:
    proc: subprocess.Popen[bytes]
    log_root: Path
    before: set[Path]
    mark: str
    clock: float


def start(log_root: Path, *extra: str) -> Started:
    environment, mark = marked_env(RAY_USAGE_STATS_ENABLED="0")
    log_root.mkdir(exist_ok=True)
    before = set(log_root.iterdir())
    proc = subprocess.Popen(
        run_args(log_root, *extra),
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return Started(proc, log_root, before, mark, time.monotonic())


def finish(
    scenario: Scenario,
    run: Started,
    code: int,
    status: str,
    what: str = "",
    cancelled_at: float | None = None,
    or_else: tuple[int, str] | None = None,
    any_status: bool = False,
) -> None:
    """Wait for the run; it passes with this exit code and report status, and nothing
    of it still running a minute later. A run whose report says it had ended by
    `cancelled_at` (time.time()) keeps the status it ended with, and may end with its
    own exit code (a cancel during Python's exit is ignored). `or_else` is another
    (exit code, status) that passes; `any_status`: whatever the report says (a report
    that is not whole fails all the same: it does not parse)."""
    exit_code = run.proc.wait(timeout=RUN_TIMEOUT)
    scenario.seconds.append(time.monotonic() - run.clock)
    try:
        report = report_of(run.log_root, run.before)
    except ValueError:  # no run folder: cancelled before it was made
        report = {"run_id": "(no run folder)", "status": status if exit_code == code else "none"}
    codes = {code}
    if any_status and report["status"] != NOT_WHOLE:
        status = report["status"]
    if cancelled_at is not None and ended_by(report, cancelled_at):
        status = report["status"]
        codes.add(report["exit_code"])
    left = left_after(run.mark)
    scenario.leftovers += left
    outcome = (exit_code, report["status"])
    if (outcome in {(c, status) for c in codes} or outcome == or_else) and not left:
        scenario.passed += 1
    else:
        scenario.failures.append(
            f"{what} {report['run_id']}: exit {exit_code}, {report['status']} "
            f"{report.get('error')}, left {left}"
        )


def ended_by(report: dict, moment: float) -> bool:
    """Whether the run of `report` had ended (its report written) by `moment`."""
    if "started_at" not in report:
        return False
    started = datetime.fromisoformat(report["started_at"]).timestamp()
    return started + report["seconds"] <= moment


def consecutive(scenario: Scenario, root: Path, runs: int) -> None:
    """The same settings (namespace included) again and again, as a daily job."""
    for _ in range(runs):
        finish(scenario, start(root / "consecutive"), 0, "passed")


def side_by_side(scenario: Scenario, root: Path, pairs: int) -> None:
    """Two runs at once, each with its own namespace and log path."""
    for pair in range(pairs):
        both = [
            start(root / f"pair{pair}{side}", "--namespace", f"pair{pair}{side}") for side in "ab"
        ]
        for run in both:
            finish(scenario, run, 0, "passed")


def cancelled(scenario: Scenario, root: Path, runs: int) -> None:
    """SIGTERM (a Databricks cancel) one second into a stage."""
    for _ in range(runs):
        run = start(root / "cancelled", "--stages", "actor_pool")
        wait_for(partial(stage_started, run), timeout=180, interval=0.1)
        time.sleep(1)
        run.proc.send_signal(signal.SIGTERM)
        finish(scenario, run, 143, "cancelled")


def moments_of_a_run(
    root: Path, step_tenths: int, stages: str = "namespaces"
) -> Iterator[tuple[float, Started]]:
    """A run of `stages` (by default the lightest), started again and again and handed
    over `at` seconds in, every `step` seconds from 0.5 s on; ends at the first moment a
    run had already ended by (a step of 0: none)."""
    at = 0.5
    while step_tenths:
        run = start(root, "--stages", stages)
        time.sleep(at)
        if run.proc.poll() is not None:
            run.proc.wait()
            return
        yield at, run
        at += step_tenths / 10


def swept(scenario: Scenario, root: Path, step_tenths: int) -> None:
    """SIGTERM at one moment after another of a whole run: Spark's start, Ray's start,
    the stage, the teardown."""
    for at, run in moments_of_a_run(root / "swept", step_tenths):
        run.proc.send_signal(signal.SIGTERM)
        cancelled_at = time.time()
        finish(scenario, run, 143, "cancelled", f"SIGTERM at {at:.1f} s", cancelled_at)


def node_lost_swept(scenario: Scenario, root: Path, step_tenths: int) -> None:
    """A worker node killed (every process of it at once, as a lost machine) at one
    moment after another of a whole run. The run survives it (exit 0) or fails (exit 1,
    its report written); nothing of it is left."""
    for at, run in moments_of_a_run(root / "node-lost", step_tenths):
        killed = kill_a_worker_node(run.mark)
        what = f"worker node killed at {at:.1f} s ({killed} processes)"
        finish(scenario, run, 0, "passed", what, or_else=(1, "failed"))
        scenario.notes.append(f"{at:.1f} s: {killed} killed, exit {run.proc.returncode}")


def killed_swept(scenario: Scenario, root: Path, step_tenths: int) -> None:
    """The driver killed outright (SIGKILL: an out-of-memory kill, a lost driver) at one
    moment after another of a whole run of three stages, its worker nodes settled in the
    later ones. Nothing of the run is left, and its report, if it had written one, is
    whole: as of its last stage's end (or its end)."""
    for at, run in moments_of_a_run(root / "killed", step_tenths, KILLED_STAGES):
        run.proc.kill()
        scenario.notes.append(f"{at:.1f} s: {last_report(run)}")
        finish(scenario, run, -signal.SIGKILL, "any", f"SIGKILL at {at:.1f} s", any_status=True)


KILLED_STAGES = "namespaces,options_override,actor_pool"


def last_report(run: Started) -> str:
    """What a killed run's folder says: its report's status and stages ended, or none."""
    run.proc.wait(timeout=RUN_TIMEOUT)
    try:
        report = report_of(run.log_root, run.before)
    except ValueError:
        return "no run folder"
    if report["status"] == "no report":
        return "no report yet"
    ended = sum(stage["status"] != "skipped" for stage in report["stages"])
    return f"report {report['status']}, {ended} stage(s) ended"


def kill_a_worker_node(mark: str) -> int:
    """Kill one worker node of the marked run, if one has a raylet yet; how many
    processes were killed."""
    for raylet in running_marked(mark, "raylet"):
        command = raylet.cmdline()
        if any(arg.startswith("--raylet_socket_name=") and "-node-" in arg for arg in command):
            node_id = next(arg.split("=", 1)[1] for arg in command if arg.startswith("--node_id="))
            return kill_node(node_id)
    return 0


def stage_started(run: Started) -> bool:
    return "actor_pool: started" in live_driver_log(run.proc.pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="consecutive runs")
    parser.add_argument("--pairs", type=int, default=2, help="pairs of runs at once")
    parser.add_argument("--cancels", type=int, default=5, help="runs cancelled mid-stage")
    parser.add_argument(
        "--sweep-step", type=float, default=1.0, help="seconds between swept SIGTERMs"
    )
    parser.add_argument(
        "--node-loss-step", type=float, default=2.0, help="seconds between swept node kills"
    )
    parser.add_argument(
        "--kill-step", type=float, default=2.0, help="seconds between swept driver kills"
    )
    parser.add_argument("--out", type=Path, default=HERE / "RELIABILITY.md")
    args = parser.parse_args()
    plan: list[tuple[Scenario, Callable[[Scenario, Path, int], None], int]] = [
        (Scenario("consecutive runs, same settings"), consecutive, args.runs),
        (Scenario("two runs at once (own namespaces and log paths)"), side_by_side, args.pairs),
        (Scenario("SIGTERM 1 s into a stage -> exit 143"), cancelled, args.cancels),
        (
            Scenario(f"SIGTERM swept over a whole run, every {args.sweep_step:g} s -> exit 143"),
            swept,
            round(args.sweep_step * 10),
        ),
        (
            Scenario(
                f"a worker node killed, swept over a whole run, every {args.node_loss_step:g} s "
                "-> exit 0, or 1 with its report"
            ),
            node_lost_swept,
            round(args.node_loss_step * 10),
        ),
        (
            Scenario(
                f"the driver killed (SIGKILL), swept over a whole run, every {args.kill_step:g} s "
                "-> its last report whole"
            ),
            killed_swept,
            round(args.kill_step * 10),
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="reliability-") as folder:
        for scenario, scenario_runs, count in plan:
            temp_before, cache_before = run_files(TEMP_ROOT), cache_files()
            scenario_runs(scenario, Path(folder), count)
            new_in_tmp = added(temp_before, run_files(TEMP_ROOT))
            scenario.temp_files = counted(new_in_tmp)
            scenario.temp_entries = top_entries(new_in_tmp, TEMP_ROOT)
            scenario.cache_files = counted(added(cache_before, cache_files()))
    lines = [
        "# Reliability",
        "",
        f"Written by `python -m benchmarks.reliability --runs {args.runs} --pairs {args.pairs} "
        f"--cancels {args.cancels} --sweep-step {args.sweep_step:g} "
        f"--node-loss-step {args.node_loss_step:g} --kill-step {args.kill_step:g}` on "
        f"{time.strftime('%Y-%m-%d')}: {described()}. Each run is "
        "`raybricks run --target local` (local-cluster[3,1,1024], two Ray worker nodes). "
        "Left behind: processes of a run still alive 60 s after it ended; new in /tmp: "
        "every entry there after the scenario that was not before (but the sweep's own "
        "folder and pytest's); "
        "new in the cache: class-archive files (a first run trains them once).",
        "",
        "| scenario | runs | passed | left behind | new in /tmp | new in the cache "
        "| median s per run |",
        "|---|---|---|---|---|---|---|",
        *(scenario.row() for scenario, _, _ in plan),
        *(f"\n{s.name}: {'; '.join(s.notes)}." for s, _, _ in plan if s.notes),
        *(
            f"\nNew in /tmp after {s.name}: {', '.join(s.temp_entries)}."
            for s, _, _ in plan
            if s.temp_entries
        ),
        *(f"\nFailed: {f}" for scenario, _, _ in plan for f in scenario.failures),
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    clean = all(not s.failures and s.temp_files[0] == 0 for s, _, _ in plan)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
