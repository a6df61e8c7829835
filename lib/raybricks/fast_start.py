"""A faster `setup_ray_cluster`, for the one Ray version whose waits we have read.

Ray on Spark 2.60 spends most of its start-up in fixed waits:
- after launching the head it sleeps 20 s, then checks once that the head's port is open;
- it checks whether enough worker nodes joined every 3 s;
- every node claims its worker port range under a machine-wide file lock that it holds
  for 10 s (`RAY_ON_SPARK_RAY_WORKER_NODE_STARTUP_INTERVAL`), and a node that finds the
  lock taken sleeps 10 s before trying again, so two nodes on one machine start 10-20 s
  apart.
Here the head's port is polled instead (same 20 s limit, cut short if the head's
process ends), readiness is checked every
0.25 s, and port ranges are claimed by `claim_worker_port_range`: the same lock and
allocation table as Ray's (so nodes of Ray's own clusters on the machine stay out of
its ranges), with the lock polled every 0.1 s and held only until the node's raylet
listens. The hold is needed: nodes of one cluster on one machine share a session
folder, and each picks its raylet's socket name there by looking for an unused one,
so two nodes starting together can pick the same name and one fails to bind it.

Any other Ray version keeps Ray's own timings, with one log line saying so.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import ray
from ray.util.spark import cluster_init

logger = logging.getLogger(__name__)

READ_FOR_RAY = "2.60.0"
HEAD_PORT_TIMEOUT_SECONDS = 20.0  # Ray's own limit for the head to open its port
READY_CHECK_SECONDS = 0.25
LOCK_POLL_SECONDS = 0.1
LOCK_HOLD_MAX_SECONDS = 10.0  # Ray's own fixed hold
LOCK_TIMEOUT_SECONDS = 120.0

# Ray's own files (cluster_init._preallocate_ray_worker_port_range), shared on purpose.
PORT_LOCK_FILE = Path("/tmp/ray_on_spark_worker_startup_barrier_lock.lock")
PORT_TABLE_FILE = Path("/tmp/ray_on_spark_worker_port_allocation.txt")
FIRST_PORT, PORTS_PER_NODE, LAST_PORT = 20000, 1000, 65536


def available() -> bool:
    """Whether this Ray is the version whose internals were read for this."""
    return ray.__version__ == READ_FOR_RAY and all(hasattr(cluster_init, n) for n in _patches())


@contextmanager
def faster_setup(enabled: bool = True) -> Iterator[bool]:
    """Within this block, `setup_ray_cluster` skips its fixed waits. Yields whether it
    does; Ray's module is restored on exit.

    Worker nodes start in Spark tasks, which get the port-range claim through the
    pickled task function (it names `claim_worker_port_range` by module)."""
    if not enabled:
        yield False
        return
    if not available():
        logger.info(
            "fast start is for Ray %s, this is Ray %s: using Ray's own start-up waits",
            READ_FOR_RAY,
            ray.__version__,
        )
        yield False
        return
    patches = _patches()
    saved = {name: getattr(cluster_init, name) for name in patches}
    for name, value in patches.items():
        setattr(cluster_init, name, value)
    try:
        yield True
    finally:
        for name, value in saved.items():
            setattr(cluster_init, name, value)


def _patches() -> dict[str, Any]:
    return {
        "_RAY_HEAD_STARTUP_TIMEOUT": 0,
        "_RAY_CLUSTER_STARTUP_PROGRESS_CHECKING_INTERVAL": READY_CHECK_SECONDS,
        "is_port_in_use": _wait_until_port_in_use,
        "_preallocate_ray_worker_port_range": claim_worker_port_range,
    }


def _wait_until_port_in_use(host: str, port: int) -> bool:
    """Ray's one-shot check of the head's port, as a poll up to Ray's own limit that
    gives up at once when the head's process has ended."""
    deadline = time.monotonic() + HEAD_PORT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            if probe.connect_ex((host, port)) == 0:
                return True
        if not _head_running(port):
            return False  # Ray then reports the head's exit code and its output
        time.sleep(0.1)
    return False


def _head_running(port: int) -> bool:
    """Whether a child of this process still runs the Ray head for `port` (Ray
    starts it as `python -m ray.util.spark.start_ray_node --head --port=PORT ...`)."""
    for child in psutil.Process().children():
        try:
            running = child.status() != psutil.STATUS_ZOMBIE
            if running and f"--port={port}" in child.cmdline():
                return True
        except psutil.Error:
            continue  # it ended meanwhile
    return False


def claim_worker_port_range() -> tuple[int, int]:
    """A free 1000-port range for one Ray node's workers on this machine, as
    `(begin, end)` with `end` exclusive: Ray's allocation, with a polled lock.

    The table holds `pid slot` lines; slots of dead processes are free again. The
    lock stays held until the raylet this process goes on to start listens."""
    lock = _acquire(PORT_LOCK_FILE)
    claimed_at = time.time()
    try:
        begin = FIRST_PORT + _claim_slot(PORT_TABLE_FILE, os.getpid()) * PORTS_PER_NODE
    except BaseException:
        _release(lock)
        raise
    threading.Thread(target=_release_once_listening, args=(lock, claimed_at), daemon=True).start()
    return begin, begin + PORTS_PER_NODE


def _acquire(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise TimeoutError(
                    f"{path} stayed locked for {LOCK_TIMEOUT_SECONDS:.0f} s"
                ) from None
            time.sleep(LOCK_POLL_SECONDS)


def _release_once_listening(lock: int, claimed_at: float) -> None:
    deadline = time.monotonic() + LOCK_HOLD_MAX_SECONDS
    try:
        while time.monotonic() < deadline and not _raylet_listening(since=claimed_at):
            time.sleep(LOCK_POLL_SECONDS)
    finally:
        _release(lock)


def _raylet_listening(since: float) -> bool:
    """Whether a raylet started by this process since then holds its socket."""
    for process in psutil.Process().children(recursive=True):
        try:
            if process.name() == "raylet" and process.create_time() >= since:
                sockets = process.net_connections(kind="unix")
                if any(Path(s.laddr).name.startswith("raylet") for s in sockets):
                    return True
        except psutil.Error:
            continue  # it ended meanwhile, or is not ours to inspect
    return False


def _release(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _claim_slot(table: Path, pid: int) -> int:
    rows = [line.split() for line in table.read_text().splitlines()] if table.exists() else []
    taken = {int(p): int(s) for p, s in rows if psutil.pid_exists(int(p))}
    slot = next(i for i in range(len(taken) + 1) if i not in taken.values())
    if FIRST_PORT + (slot + 1) * PORTS_PER_NODE > LAST_PORT:  # checked before it is taken
        raise RuntimeError(f"no free worker port range left on this machine (slot {slot})")
    taken[pid] = slot
    table.write_text("".join(f"{p} {s}\n" for p, s in taken.items()))
    return slot
