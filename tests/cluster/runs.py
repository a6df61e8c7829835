"""Whole runs as the cluster tier's tests start them: the command, its run folder and
report, and a run in the background while a test acts on it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.processes import live_driver_log, wait_for

from raybricks.cluster.jvm_archive import kept_options
from raybricks.cluster.spark import LOCAL_SPARK_JVM
from raybricks.stages.registry import BUILT_IN
from tests.helpers import ROOT

BIN = Path(sys.executable).parent
RUN_TIMEOUT = 300
# spark-submit with its JVMs started as `raybricks run` starts its own, mapping the class
# archives `make setup` made for them: with Java's default compilers and collector a
# local-cluster[1,1,1024] start took 38 CPU-seconds here, with these options 20. What
# these runs test is the job's Python.
SPARK_SUBMIT = [
    BIN / "spark-submit",
    *("--driver-java-options", f"{LOCAL_SPARK_JVM} {kept_options(LOCAL_SPARK_JVM, 'driver')}"),
    *(
        "--conf",
        "spark.executor.extraJavaOptions="
        f"{LOCAL_SPARK_JVM} {kept_options(LOCAL_SPARK_JVM, 'executor')}",
    ),
]


def finished(
    command: Sequence[object],
    environment: dict[str, str],
    cwd: Path = ROOT,
    timeout: float = RUN_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """`command` (a whole run) run to its end, its output captured."""
    return subprocess.run(
        [str(part) for part in command],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def one_stage(conf: Path, log_root: Path, stage: str) -> list[str]:
    return ["--conf", str(conf), "--stages", stage, "--log-path", str(log_root)]


def only_run_dir(log_root: Path) -> Path:
    (run_dir,) = log_root.iterdir()
    return run_dir


def forkserver_folders() -> set[Path]:
    """The multiprocessing forkserver folders in /tmp (Ray's dashboard makes one)."""
    return set(Path("/tmp").glob("pymp-*"))


def report_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "report.json").read_text())


def stage_statuses(report: dict) -> list[tuple[str, str]]:
    return [(stage["name"], stage["status"]) for stage in report["stages"]]


# A whole run on a cluster without GPUs: gpu_actors skips itself, saying why.
EVERY_STAGE_ON_CPUS = [(name, "skipped" if name == "gpu_actors" else "passed") for name in BUILT_IN]


class InTheBackground:
    """`raybricks run` of some stages (and `flags`), in the background while the test
    acts on it; within `with`, it is ended when the test leaves the block."""

    def __init__(
        self,
        tmp_path: Path,
        environment: dict[str, str],
        conf_text: str,
        stage: str,
        *flags: str,
    ) -> None:
        conf = tmp_path / "conf.yml"
        conf.write_text(conf_text)
        self.log_root = tmp_path / "runs"
        self.stderr = tmp_path / "stderr.txt"  # a file, not a pipe nobody reads: it fills
        self.command = [BIN / "raybricks", "run", *one_stage(conf, self.log_root, stage), *flags]
        self.environment = environment

    def __enter__(self) -> InTheBackground:
        with self.stderr.open("w") as err:
            self.proc = subprocess.Popen(
                self.command,
                env=self.environment,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=ROOT,
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def wait_until_logged(self, line: str, times: int = 1, interval: float = 0.1) -> None:
        """Until `line` is in the run's driver log `times` times."""

        def reached() -> bool:
            return live_driver_log(self.proc.pid).count(line) >= times

        reached_it = wait_for(reached, timeout=240, interval=interval)
        assert reached_it, f"the run never logged {line!r} {times} time(s)"
