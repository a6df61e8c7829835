"""Ports for Ray nodes started side by side on one machine, kept apart across processes.

- `claim_worker_port_range`: Ray on Spark's own allocation of 1000-port ranges for each
  node's workers, through the same lock and table (so nodes of Ray's own clusters on the
  machine stay out of these ranges), with the lock polled every 0.1 s and held only
  while the table is written; Ray holds it for 10 s.
- `reserve_unused_port`: Ray's random pick of a free port, which it checks only when it
  picks it, kept from other raybricks clusters on the machine until surely bound: two
  clusters starting at once may otherwise pick the same one before either binds it.

Both run in Spark tasks (a worker node's start) as well as in the driver; the tables
live in /tmp, where Ray keeps its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterable
from pathlib import Path

import psutil
from ray.util.spark import utils as ray_on_spark_utils

LOCK_POLL_SECONDS = 0.1
LOCK_TIMEOUT_SECONDS = 120.0
# Ray's own files (cluster_init._preallocate_ray_worker_port_range), shared on purpose.
PORT_LOCK_FILE = Path("/tmp/ray_on_spark_worker_startup_barrier_lock.lock")
PORT_TABLE_FILE = Path("/tmp/ray_on_spark_worker_port_allocation.txt")
FIRST_PORT, PORTS_PER_NODE, LAST_PORT = 20000, 1000, 65536
# Ours: the ports picked for raybricks clusters on this machine, not yet surely bound.
RESERVED_PORTS_LOCK_FILE = Path("/tmp/raybricks_ray_on_spark_ports.lock")
RESERVED_PORTS_FILE = Path("/tmp/raybricks_ray_on_spark_ports.txt")
RESERVED_SECONDS = 120.0  # a picked port is bound (or given up) well within this
SHARED_MODE = 0o666


def claim_worker_port_range() -> tuple[int, int]:
    """A free 1000-port range for one Ray node's workers on this machine, as
    `(begin, end)` with `end` exclusive: Ray's allocation, with a polled lock.

    The table holds `pid slot` lines; slots of dead processes are free again."""
    lock = _acquire(PORT_LOCK_FILE)
    try:
        begin = FIRST_PORT + _claim_slot(PORT_TABLE_FILE, os.getpid()) * PORTS_PER_NODE
    finally:
        _release(lock)
    return begin, begin + PORTS_PER_NODE


def _acquire(path: Path) -> int:
    fd = _open_shared(path, os.O_RDWR)
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


def _release(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _claim_slot(table: Path, pid: int) -> int:
    taken = {int(p): int(s) for p, s in _rows(table) if psutil.pid_exists(int(p))}
    slot = next(i for i in range(len(taken) + 1) if i not in taken.values())
    if FIRST_PORT + (slot + 1) * PORTS_PER_NODE > LAST_PORT:  # checked before it is taken
        raise RuntimeError(f"no free worker port range left on this machine (slot {slot})")
    taken[pid] = slot
    _write_rows(table, taken.items())
    return slot


def reserve_unused_port(
    host: str,
    min_port: int = 1024,
    max_port: int = 65535,
    max_retries: int = 100,
    exclude_list: list[int] | None = None,
) -> int:
    """Ray's `get_random_unused_port`, skipping the ports reserved on this machine, and
    reserving the one it returns for `RESERVED_SECONDS` (or until this process ends).

    The table holds `pid port time` lines."""
    lock = _acquire(RESERVED_PORTS_LOCK_FILE)
    try:
        now = time.time()
        reserved = [
            (int(pid), int(port), float(at))
            for pid, port, at in _rows(RESERVED_PORTS_FILE)
            if now - float(at) < RESERVED_SECONDS and psutil.pid_exists(int(pid))
        ]
        skip = [*(exclude_list or ()), *(port for _, port, _ in reserved)]
        port: int = ray_on_spark_utils.get_random_unused_port(
            host, min_port, max_port, max_retries, exclude_list=skip
        )
        _write_rows(RESERVED_PORTS_FILE, [*reserved, (os.getpid(), port, now)])
    finally:
        _release(lock)
    return port


def _rows(table: Path) -> list[list[str]]:
    try:
        fd = os.open(table, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return []
    with os.fdopen(fd) as rows:
        return [line.split() for line in rows.read().splitlines()]


def _write_rows(table: Path, rows: Iterable[Iterable[object]]) -> None:
    fd = _open_shared(table, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w") as out:
        out.write("".join(" ".join(map(str, row)) + "\n" for row in rows))


def _open_shared(path: Path, flags: int) -> int:
    """`path` opened (made if missing) without following a symlink (the folder is /tmp,
    where anyone may plant one), readable and writable by every user, as Ray makes its
    own: a machine's users share the tables. A file another user made stays as it is."""
    fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW, SHARED_MODE)
    with contextlib.suppress(PermissionError):
        os.fchmod(fd, SHARED_MODE)  # past this process's umask
    return fd
