"""A Ray node's launcher under Spark, in place of Ray on Spark's `start_ray_node`, for a
fast-started cluster: it keeps that script's contract and imports nothing of Ray.

Ray on Spark runs `python -m ray.util.spark.start_ray_node <ray start arguments>` for
the head (from the driver) and for each worker node (in a Spark task). That script
imports Ray (about a CPU-second) only for two constants, then runs `ray start --block`
as its child, which imports Ray again. Here, as there:
- the node's temp folder is made, and `<temp folder>.lock` held shared while it runs;
- a TERM, or the end of the process that started it (the Spark task's Python worker,
  or the driver), ends `ray start` (which ends the node's processes); if it has not
  ended after a grace, it is killed, and here so is every process below it, as are
  those that outlive it (the dashboard's modules, which linger for half a second) and
  a head's autoscaler monitor, at once (`AUTOSCALER_MONITORS`);
- `ray start` runs without the CLI commands it has no use for (`LEAN_RAY_START`);
- `ray start` and the node's processes poll their node's sockets every 0.1 s as they
  connect (`SOCKET_CONNECT_POLL`), and a stopped node for its drain's end (`DRAIN_POLL`);
- a worker node's raylet starts without waiting for its agents (`START_HOOK`);
- as it ends, the last holder of the lock copies the node's logs to
  `$RAY_ON_SPARK_COLLECT_LOG_TO_PATH/<temp folder name>-logs/<host>` and removes the
  temp folder; this one also removes the lock file, which Ray's leaves behind;
- a janitor, a process of its own session (out of reach of a kill of the Spark task's
  process group), waits for the lock and does the same if this launcher was killed
  before it could (a driver killed outright takes its executors' Python workers with
  it), ending what still runs in the folder first; it exits as soon as the node is gone.
A node without its own temp folder (Ray's global mode) is left to Ray's script.

Spark runs it as `python -m raybricks.cluster.node_launcher`: it imports nothing of
raybricks beyond this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

# Ray on Spark's names (`ray.util.spark.cluster_init`), checked by `raybricks.cluster.compat`.
COLLECT_LOG_TO_PATH = "RAY_ON_SPARK_COLLECT_LOG_TO_PATH"
START_RAY_PARENT_PID = "RAY_ON_SPARK_START_RAY_PARENT_PID"
RAYS_LAUNCHER = "ray.util.spark.start_ray_node"
LAUNCHERS = (RAYS_LAUNCHER, __name__)  # a node's launcher, in its command line

# As Ray's: for `ray start` to end the node's processes, then they are killed.
STOP_GRACE_SECONDS = 1.5
PARENT_CHECK_SECONDS = 0.5
# How long a removal of a node's temp folder goes on ending what still uses it.
SETTLE_SECONDS = 5.0
SETTLE_POLL_SECONDS = 0.2
TERMINATED = 143

# Ray's processes connect to their node's Unix sockets (a raylet to its object store as
# it starts, a worker to its raylet) up to 10 times, 1 s apart: a socket a moment late
# to listen cost a raylet a whole second before it could register. Every 0.1 s here,
# within the same 10 s; a connect with its own count of attempts (a raylet's to its
# store: 300) waits a tenth as long (30 s). Ray's system config, read from the
# environment by its C++ code; left to the user when either is set.
SOCKET_CONNECT_POLL = {
    "RAY_raylet_client_connect_timeout_milliseconds": "100",
    "RAY_raylet_client_num_connect_attempts": "100",
}

# On a TERM, `ray start` first drains its node, looking every 0.5 s whether its raylet has
# gone: an idle raylet (the driver gone) goes at once, and `ray start` slept on. Every
# 0.05 s here. (Without the drain, the GCS hung for a second as it stopped.) Left to the
# user when set.
DRAIN_POLL = {"RAY_GRACEFUL_SHUTDOWN_POLL_INTERVAL_S": "0.05"}

# A worker node's raylet starts without waiting for its agents (a head's start hook does
# the same for it: `raybricks.cluster.compat.head_start`). Left to the user when set.
START_HOOK = {"RAY_START_HOOK": "raybricks.cluster.compat.agent_ports.worker_node_start"}

# A head's autoscaler monitor, by its script (Ray's autoscaler v1 or v2): on a TERM it
# spends a second telling drivers that the autoscaler failed, and `ray start` waits for
# it before ending the dashboard and the rest. A stopped node's is killed first.
AUTOSCALER_MONITORS = ("/autoscaler/_private/monitor.py", "/autoscaler/v2/monitor.py")

# `ray start` without the commands Ray's CLI adds only if they import (serve, job, state):
# importing them (pandas and FastAPI among them) took 1.3 of its 1.7 CPU-seconds, before
# the node starts. Should this Ray's CLI not import without them, it runs as installed.
# Run as `python -c LEAN_RAY_START <ray script> start ...`.
OPTIONAL_CLI_COMMANDS = (
    "ray.serve.scripts",
    "ray.dashboard.modules.job.cli",
    "ray.util.state.state_cli",
)
LEAN_RAY_START = f"""
import runpy, sys
sys.modules.update(dict.fromkeys({OPTIONAL_CLI_COMMANDS!r}))
try:
    import ray.scripts.scripts
except ImportError:
    for name in {OPTIONAL_CLI_COMMANDS!r}:
        sys.modules.pop(name, None)
del sys.argv[0]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class NodeLauncher:
    """`ray start <arguments>` as a child, stopped on a TERM or when the process that
    started this one ends, and the node's temp folder cleaned up after it."""

    def __init__(self, arguments: list[str], temp_dir: Path) -> None:
        self.arguments = arguments
        self.temp_dir = temp_dir
        self.lock_path = Path(f"{temp_dir}.lock")
        self._stopping = threading.Event()
        self._ray_start: subprocess.Popen[bytes] | None = None
        self._below_when_stopped: list[int] = []

    def run(self) -> int:
        """Run the node to its end; the exit code (143 when it was stopped)."""
        # A handler, not SIG_IGN, which `ray start` and the node's processes would inherit.
        signal.signal(signal.SIGHUP, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        threading.Thread(target=self._stop_with_parent, daemon=True).start()
        ray_cli = _ray_cli()  # before anything is made that a missing one would leave
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_SH)
            _start_janitor(self.temp_dir)  # once the lock is held: it waits for its release
            code = self._run_ray_start(ray_cli)
            self._clean_up(lock_fd)
        finally:
            os.close(lock_fd)
        return TERMINATED if self._stopping.is_set() else _exit_status(code)

    def stop(self) -> None:
        """Ask `ray start` to end its node (`run` then cleans up and returns)."""
        if not self._stopping.is_set():
            self._stopping.set()
            self._end_ray_start()

    def _run_ray_start(self, ray_cli: str) -> int:
        """`ray start`'s return code (0 when stopped before it started)."""
        if self._stopping.is_set():
            return 0
        self._ray_start = subprocess.Popen(
            [sys.executable, "-c", LEAN_RAY_START, ray_cli, "start", *self.arguments],
            env=_ray_start_environment(),
        )
        if self._stopping.is_set():
            self._end_ray_start()  # a stop that came as it started
        code = self._ray_start.wait()
        for pid in self._below_when_stopped:
            _kill(pid)  # ended by `ray start`, or left running: none outlives the node
        return code

    def _end_ray_start(self) -> None:
        """TERM `ray start` (its autoscaler monitor KILLed), and KILL it if it still runs
        after the grace."""
        if self._ray_start is None:
            return  # `run` checks for a stop once it has started it
        self._below_when_stopped = _descendants(self._ray_start.pid)
        for pid in self._below_when_stopped:
            if _runs_script(pid, AUTOSCALER_MONITORS):
                _kill(pid)
        self._ray_start.terminate()
        killer = threading.Timer(STOP_GRACE_SECONDS, self._kill_node)
        killer.daemon = True
        killer.start()

    def _kill_node(self) -> None:
        """KILL `ray start` and every process below it (the raylet, its agents and
        workers): once `ray start` is gone nothing ends them, and they would run on
        for a minute, writing into the node's temp folder as it is copied and removed."""
        ray_start = self._ray_start
        if ray_start is None or ray_start.poll() is not None:
            return  # it ended its node itself
        # Found before the kill (then they are reparented); `_run_ray_start` kills them.
        self._below_when_stopped += _descendants(ray_start.pid)
        ray_start.kill()

    def _stop_with_parent(self) -> None:
        parent = int(os.environ.get(START_RAY_PARENT_PID) or os.getppid())  # Ray sets it
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        self.stop()

    def _clean_up(self, lock_fd: int) -> None:
        """The last node using the temp folder copies its logs and removes it."""
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another node still uses the folder
        self._collect_logs()
        _remove(self.temp_dir)
        self.lock_path.unlink(missing_ok=True)

    def _collect_logs(self) -> None:
        _collect_logs(self.temp_dir)


def _collect_logs(temp_dir: Path) -> None:
    destination = os.environ.get(COLLECT_LOG_TO_PATH)
    if not destination:
        return
    session = temp_dir / "session_latest"
    if not session.exists():
        return  # the node ended before Ray made its session folder: no logs
    target = Path(destination) / f"{temp_dir.name}-logs" / socket.gethostname()
    try:
        shutil.copytree(session.resolve(strict=True) / "logs", target, dirs_exist_ok=True)
    except OSError as exc:
        logger.warning("collecting the Ray node's logs to %s failed: %r", target, exc)


JANITOR = "--janitor"
MODULE = "raybricks.cluster.node_launcher"  # as Spark runs it, `__name__` is __main__


def _start_janitor(temp_dir: Path) -> None:
    """The janitor of `temp_dir`, in a session of its own; its output goes nowhere."""
    subprocess.Popen(
        [sys.executable, "-m", MODULE, JANITOR, str(temp_dir)],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def janitor(temp_dir: Path) -> None:
    """Once no launcher holds `temp_dir`'s lock (its launcher ended, however it did): the
    temp folder's processes ended, its logs collected and the folder and its lock
    removed, unless its launcher already did (then the lock file is gone)."""
    lock_path = Path(f"{temp_dir}.lock")
    try:
        lock_fd = os.open(lock_path, os.O_RDWR)  # never made here: none is left behind
    except FileNotFoundError:
        return
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # blocks while the node runs
        if not lock_path.exists():
            return  # the launcher cleaned up
        if temp_dir.exists():  # else the launcher was killed between folder and lock
            for pid in _processes_using(temp_dir):
                _kill(pid)
            _collect_logs(temp_dir)
            _remove(temp_dir)
        lock_path.unlink(missing_ok=True)
    finally:
        os.close(lock_fd)


def _remove(temp_dir: Path) -> None:
    """`temp_dir` removed, and removed again while a process naming it is still there:
    one the node started just as it was stopped (a raylet `ray start` had begun) makes
    its session folders anew after a first removal. Ends within `SETTLE_SECONDS`."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        for pid in _processes_using(temp_dir):
            _kill(pid)
        shutil.rmtree(temp_dir, ignore_errors=True)
        time.sleep(SETTLE_POLL_SECONDS)
        settled = not temp_dir.exists() and not _processes_using(temp_dir)
        if settled or time.monotonic() > deadline:
            return


def _processes_using(temp_dir: Path) -> list[int]:
    """The processes whose command line names `temp_dir` (a node's raylet, agents and
    workers name their session folder in it), not a folder whose name only begins with
    its name (the head's is the start of each worker node's, `<head's>-node-<n>`)."""
    name, found = str(temp_dir), []

    def names(argument: str) -> bool:
        return argument == name or argument.endswith(f"={name}") or f"{name}/" in argument

    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            arguments = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # ended meanwhile
        if (
            any(names(argument) for argument in arguments)
            and int(cmdline.parent.name) != os.getpid()
            and JANITOR not in arguments  # it cleans up after a launcher killed meanwhile
        ):
            found.append(int(cmdline.parent.name))
    return found


def _ray_start_environment() -> dict[str, str]:
    """This process's environment, with each of `SOCKET_CONNECT_POLL`, `DRAIN_POLL` and
    `START_HOOK` unless the user (or the head's start) set (some of) it."""
    environment = dict(os.environ)
    for defaults in (SOCKET_CONNECT_POLL, DRAIN_POLL, START_HOOK):
        if not any(name in environment for name in defaults):
            environment.update(defaults)
    return environment


def _exit_status(code: int) -> int:
    """A child's return code as a shell would report it (a signal's as 128 + its number)."""
    return 128 - code if code < 0 else code


def temp_dir_of(arguments: list[str]) -> Path | None:
    """The node's `--temp-dir`, normalized as Ray does; None when it has none."""
    given = [arg.split("=", 1)[1] for arg in arguments if arg.startswith("--temp-dir=")]
    return Path(os.path.normpath(given[-1])) if given else None


def _descendants(pid: int) -> list[int]:
    """The processes below `pid`: its children, theirs, and so on (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (name)"
        except (OSError, IndexError):
            continue  # ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        below = children.get(queue.pop(), [])
        found += below
        queue += below
    return found


def _runs_script(pid: int, scripts: tuple[str, ...]) -> bool:
    """Whether process `pid` runs one of `scripts` (a path ending), by its command line."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False  # ended meanwhile
    return any(argument.endswith(scripts) for argument in arguments.split("\0"))


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _ray_cli() -> str:
    """Ray's `ray` script: the one installed beside this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / "ray"
    found = str(beside) if beside.is_file() else shutil.which("ray")
    if found is None:
        raise SystemExit(f"no `ray` command beside {sys.executable} or on PATH for `ray start`")
    return found


if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if sys.argv[1:2] == [JANITOR]:
        janitor(Path(sys.argv[2]))
        sys.exit(0)
    node_arguments = sys.argv[1:]
    node_temp_dir = temp_dir_of(node_arguments)
    if node_temp_dir is None:
        os.execv(sys.executable, [sys.executable, "-m", RAYS_LAUNCHER, *node_arguments])
    sys.exit(NodeLauncher(node_arguments, node_temp_dir).run())
