"""raybricks' Ray node launcher around a real `ray start --head`, ended at any moment of
its start or once the node is up: by a TERM (Ray on Spark's shutdown of the head) or by
the end of the process that started it (a worker node's Spark task). Either way it exits,
its node's processes end, its temp folder and lock file go, and a node that came up has
its logs copied. Every cluster of the cluster tier runs its nodes under it too."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from benchmarks.processes import left_after, marked_env, wait_for

from raybricks.cluster import node_launcher
from raybricks.cluster.sockets import listening
from tests.helpers import ended, free_port

# The process whose end the launcher watches: it starts the launcher and exits as it did,
# as a shell reports it (a launcher ended by a TERM before its handler was set: 143).
PARENT = (
    "import subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    "sys.exit(128 - code if code < 0 else code)"
)
UP = None  # ended once the head takes connections, not after a fixed time


@dataclass
class LaunchedHead:
    parent: subprocess.Popen[bytes]
    port: int
    temp_dir: Path
    logs: Path
    mark: str

    def launcher(self) -> psutil.Process:
        """The launcher (the parent's only child)."""
        (child,) = psutil.Process(self.parent.pid).children()
        return child

    def up(self) -> bool:
        return listening("127.0.0.1", self.port)


@pytest.fixture
def head(tmp_path: Path) -> Iterator[LaunchedHead]:
    """A head launched by raybricks' launcher under a parent of its own, as Ray on Spark's
    driver or Spark task starts it (a short temp folder: AF_UNIX paths must fit)."""
    temp_dir = Path(tempfile.gettempdir()) / f"ray-launcher-{uuid.uuid4().hex[:8]}"
    logs, port = tmp_path / "logs", free_port()
    environment, mark = marked_env(
        RAY_ON_SPARK_COLLECT_LOG_TO_PATH=str(logs), RAY_USAGE_STATS_ENABLED="0"
    )
    command = [sys.executable, "-m", node_launcher.__name__, "--head", "--block"]
    command += [f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=0"]
    command += ["--include-dashboard=false", f"--temp-dir={temp_dir}"]
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import os; os.environ['{node_launcher.START_RAY_PARENT_PID}']"
            f" = str(os.getpid()); {PARENT}",
            *command,
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    launched = LaunchedHead(parent, port, temp_dir, logs, mark)
    try:
        started = wait_for(lambda: psutil.Process(parent.pid).children(), 10, 0.01)
        assert started, "the launcher did not start"
        yield launched
    finally:
        parent.kill()
        parent.wait()
        left_after(mark)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("after", [0.0, 0.5, 1.5, 3.0, UP], ids=["0s", "0.5s", "1.5s", "3s", "up"])
@pytest.mark.parametrize("ended_by", ["TERM", "its parent's end"])
def test_the_launcher_ends_its_node_at_any_moment_and_leaves_nothing(head, ended_by, after):
    launcher = head.launcher()
    if after is UP:
        assert wait_for(head.up, 60, 0.05), "the head never took connections"
    else:
        time.sleep(after)
    if ended_by == "TERM":
        launcher.send_signal(signal.SIGTERM)
        assert head.parent.wait(timeout=30) == node_launcher.TERMINATED
    else:
        head.parent.kill()  # SIGKILL: the launcher learns of it only by its new parent
        head.parent.wait()
        assert wait_for(lambda: ended(launcher), 30, 0.05), "the launcher runs on"
    assert left_after(head.mark, timeout=30) == []
    assert not head.temp_dir.exists()
    assert not Path(f"{head.temp_dir}.lock").exists()
    if after is UP:
        (copied,) = (head.logs / f"{head.temp_dir.name}-logs").iterdir()
        assert (copied / "gcs_server.out").exists()  # the port taken is the GCS's
