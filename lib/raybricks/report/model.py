"""The run report: `report.json` in the run folder.

The file is replaced whole and atomically, so a reader (or a run killed meanwhile) never
sees half of it.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import psutil

import raybricks
from raybricks.errors import BadInput
from raybricks.paths import write_whole

REPORT_FILE = "report.json"
DRIVER_LOG = "driver.log"

RunStatus = Literal["running", "passed", "failed", "cancelled"]
# cancelled: running when the run was cancelled; skipped: never started, or the stage
# found it cannot run on this cluster (its `reason` says why).
StageStatus = Literal["passed", "failed", "cancelled", "skipped"]


@dataclass
class StageResult:
    name: str
    status: StageStatus = "skipped"
    seconds: float = 0.0
    evidence: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    headline: str = ""  # what it proved, from its evidence
    started_at_seconds: float | None = None  # from the run's start
    traceback: str | None = None
    reason: str | None = None  # why a stage that ran skipped itself (it cannot run here)


@dataclass
class Phase:
    """A step of the run itself (Spark's start, Ray's, the teardown), on the stages' clock."""

    name: str
    started_at_seconds: float
    seconds: float


@dataclass
class Report:
    run_id: str
    started_at: str
    status: RunStatus = "running"
    seconds: float = 0.0
    exit_code: int | None = None
    error: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    cluster: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    stages: list[StageResult] = field(default_factory=list)
    command: dict[str, Any] | None = None  # set by `raybricks exec`
    # [seconds from the run's start, live Ray worker nodes], at each stage's start and end
    worker_nodes: list[list[float]] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    # the nodes' own metrics over the run, per node and for the cluster (`raybricks.metrics`)
    metrics: dict[str, Any] = field(default_factory=dict)
    driver: dict[str, Any] = field(default_factory=dict)  # host and pid of the run's driver
    clock: float = field(default_factory=time.monotonic, repr=False, compare=False)  # its start

    @classmethod
    def begin(cls, run_id: str, settings: dict[str, Any]) -> Report:
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        driver = {"host": socket.gethostname(), "pid": os.getpid()}
        return cls(run_id, started, versions=versions(), settings=settings, driver=driver)

    def elapsed(self) -> float:
        """Seconds since the run began, on the clock its stages and phases share."""
        return round(time.monotonic() - self.clock, 2)

    def add_phase(self, name: str, started_at_seconds: float, ended_at_seconds: float) -> None:
        seconds = round(ended_at_seconds - started_at_seconds, 2)
        self.phases.append(Phase(name, round(started_at_seconds, 2), max(0.0, seconds)))

    def finish(self, status: RunStatus, exit_code: int) -> None:
        self.seconds = self.elapsed()
        self.status, self.exit_code = status, exit_code

    def ended_unreported(self) -> bool:
        """Whether a report that says `running` outlived its driver, on this machine: the
        driver was killed, or lost, before it could write how the run ended."""
        if self.status != "running" or self.driver.get("host") != socket.gethostname():
            return False
        return not psutil.pid_exists(int(self.driver.get("pid", 0)))

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if key != "clock"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        stages = [StageResult(**stage) for stage in data.get("stages", [])]
        phases = [Phase(**phase) for phase in data.get("phases", [])]
        return cls(**{**data, "stages": stages, "phases": phases})


def versions() -> dict[str, str]:
    found = {"raybricks": raybricks.__version__, "python": platform.python_version()}
    for package in ("ray", "pyspark"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def write_report(report: Report, run_dir: Path) -> Path:
    """Write `report.json` whole and atomically (see `write_whole`)."""
    text = json.dumps(report.to_dict(), indent=2, default=str) + "\n"
    return write_whole(run_dir / REPORT_FILE, [text.encode()])


def read_report(run_dir: Path) -> Report:
    path = run_dir / REPORT_FILE
    try:
        return Report.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise BadInput(f"RUN_DIR = '{run_dir}' holds no {REPORT_FILE}; give a run folder") from None
    except (ValueError, TypeError) as exc:
        raise BadInput(f"{path} is not a raybricks report ({exc}); give a run folder") from None
