"""A Spark standalone cluster on this machine: a master and N workers, each a JVM of its
own, started with pyspark's own `bin/spark-class` and bound to loopback. The shape of a
Databricks cluster (a driver beside worker machines), here as separate processes.

    python -m benchmarks.standalone up [--workers 2] [--cores 1] [--memory 3g]
    python -m benchmarks.standalone down

`up` prints the master URL and keeps the cluster's state in .spark-standalone/ so that
`down` stops what `up` started. Tests and benchmarks use `StandaloneCluster` directly.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from raybricks.cluster.spark import QUICK_START_JVM

LOOPBACK = "127.0.0.1"
STATE = Path(".spark-standalone")
READY_SECONDS = 90.0


def spark_class() -> Path:
    """pyspark's own launcher, beside this interpreter."""
    return Path(sys.executable).parent / "spark-class"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@dataclass
class StandaloneCluster:
    workers: int = 2
    cores: int = 1
    memory: str = "3g"
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="spark-standalone-")))
    port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"spark://{LOOPBACK}:{self.port}"

    def start(self) -> StandaloneCluster:
        self.processes.append(self._launch_master())
        for number in range(self.workers):
            self.add_worker(number)
        self.wait_for_workers(self.workers)
        return self

    def restart_master(self) -> None:
        """A master again at the same URL (after one was lost): the workers register
        with it anew, as with a standby master taking over."""
        _stop_group(self.processes[0].pid)
        self.processes[0] = self._launch_master()
        self.wait_for_workers(self.workers)

    def _launch_master(self) -> subprocess.Popen[bytes]:
        return self._launch(
            "master",
            "org.apache.spark.deploy.master.Master",
            *("--host", LOOPBACK, "--port", str(self.port), "--webui-port", str(self.ui_port)),
        )

    def add_worker(self, number: int) -> subprocess.Popen[bytes]:
        worker = self._launch(
            f"worker-{number}",
            "org.apache.spark.deploy.worker.Worker",
            *("--host", LOOPBACK, "--webui-port", "0", "--cores", str(self.cores)),
            *("--memory", self.memory, "--work-dir", str(self.folder / f"work-{number}")),
            self.url,
        )
        self.processes.append(worker)
        return worker

    def _launch(self, name: str, main: str, *args: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "SPARK_LOCAL_IP": LOOPBACK,
            "PYSPARK_PYTHON": sys.executable,
            "SPARK_DAEMON_JAVA_OPTS": QUICK_START_JVM,  # half the CPU of Java's defaults
            # executors' scratch in the cluster's folder, gone with it if a JVM is killed
            "SPARK_LOCAL_DIRS": str(self.folder / "local"),
        }
        with (self.folder / f"{name}.log").open("wb") as log:
            return subprocess.Popen(
                [str(spark_class()), main, *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stopped as a group: the JVM and its launcher
            )

    def alive_workers(self) -> int:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.ui_port}/json/", timeout=5) as r:
                state = json.load(r)
        except (OSError, ValueError):  # not up yet, or not answering JSON yet
            return 0
        return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")

    def wait_for_workers(self, count: int, timeout: float = READY_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while self.alive_workers() < count:
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-800:] for p in self.folder.glob("*.log"))
                raise RuntimeError(f"{count} Spark workers not up in {timeout:.0f} s:\n{logs}")
            time.sleep(0.2)

    def stop(self) -> None:
        for process in reversed(self.processes):
            _stop_group(process.pid)
        self.processes.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


def _stop_group(pid: int) -> None:
    """TERM the process group (a launcher and its JVM), then KILL what stays."""
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return
    members = [p for p in psutil.process_iter() if _group_of(p) == group]
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, signum)
        except ProcessLookupError:
            return
        _, members = psutil.wait_procs(members, timeout=10)
        if not members:
            return


def _group_of(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, psutil.Error):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down"])
    # two for Ray's worker nodes, one for Spark's own jobs
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--memory", default="3g")
    args = parser.parse_args()
    if args.action == "up":
        if STATE.exists():
            sys.exit(f"a cluster is up already ({(STATE / 'url').read_text()}); `down` first")
        cluster = StandaloneCluster(args.workers, args.cores, args.memory).start()
        STATE.mkdir()
        (STATE / "url").write_text(cluster.url)
        (STATE / "pids").write_text(" ".join(str(p.pid) for p in cluster.processes))
        (STATE / "folder").write_text(str(cluster.folder))
        print(f"Spark standalone master: {cluster.url} ({args.workers} workers)")
        print(f"  .venv/bin/raybricks run --spark-master {cluster.url}")
    else:
        if not STATE.exists():
            sys.exit("no cluster is up")
        for pid in (STATE / "pids").read_text().split():
            _stop_group(int(pid))
        shutil.rmtree((STATE / "folder").read_text(), ignore_errors=True)
        shutil.rmtree(STATE)
        print("Spark standalone cluster stopped")


if __name__ == "__main__":
    main()
