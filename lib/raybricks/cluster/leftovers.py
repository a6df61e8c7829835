"""What Ray on Spark leaves on this machine after a cluster has shut down, and its
removal: each node's `<temp dir>.lock` file beside the temp folder (Ray's
`start_ray_node` creates it and never removes it), temp folders a node that was killed
could not remove itself, and the processes of such a node that run on: a node whose
raylet was killed (its head lost) leaves its agents running until they give up on the
GCS, about a minute, and they make its temp folder again meanwhile."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import time
from pathlib import Path

import psutil

from raybricks.cluster.processes import end

logger = logging.getLogger(__name__)


def lock_files(temp_root: Path) -> set[Path]:
    """The Ray nodes' lock files in `temp_root` now."""
    return set(temp_root.glob("ray-*.lock"))


def remove_new_leftovers(
    temp_root: Path, before: set[Path], ours: str = "", wait_seconds: float = 20.0
) -> list[Path]:
    """Remove the lock files (and temp folders) that appeared in `temp_root` since
    `before` and that no process holds any more. Those named `ours*` (this cluster's)
    are waited for up to `wait_seconds`, as its nodes finish copying their logs, and
    then any process still using their folders is ended; other new ones (another
    cluster's, running beside) only if free now. Returns what was removed."""
    deadline = time.monotonic() + wait_seconds
    while ours and _held(temp_root, before, ours) and time.monotonic() < deadline:
        time.sleep(0.2)
    if ours and (ended := end_processes_in(temp_root / ours)):
        logger.debug("ended %d process(es) of the cluster's nodes left running", ended)
    removed = [
        path
        for lock in sorted(lock_files(temp_root) - before)
        if _unused(lock)
        for path in _remove(lock)
    ]
    if removed:
        logger.debug("removed what the Ray nodes left in %s: %s", temp_root, removed)
    return removed


def end_processes_in(folders: Path, grace: float = 2.0) -> int:
    """End the processes (TERM, then KILL after `grace` seconds) with a file open in a
    folder whose path starts with `folders` (`/tmp/ray-9123-` for every node folder of
    that cluster); their lock files beside the folders do not count. How many there were."""
    prefix = str(folders)
    found = [proc for proc in psutil.process_iter() if _uses(proc, prefix)]
    end(found, grace)
    return len(found)


def _uses(proc: psutil.Process, prefix: str) -> bool:
    if proc.pid == os.getpid():
        return False
    paths = _open_paths(proc.pid)
    return any(path.startswith(prefix) and not path.endswith(".lock") for path in paths)


def _open_paths(pid: int) -> list[str]:
    """What a process has open, files its folder's removal deleted included (those
    psutil leaves out): the agents of a killed node write to logs already removed."""
    folder = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(folder)
    except OSError:  # it ended, or is not ours to read
        return []
    paths = []
    for fd in fds:
        with contextlib.suppress(OSError):  # closed meanwhile
            paths.append(os.readlink(f"{folder}/{fd}").removesuffix(" (deleted)"))
    return paths


def _held(temp_root: Path, before: set[Path], ours: str) -> bool:
    new = lock_files(temp_root) - before
    return any(lock.name.startswith(ours) and not _unused(lock) for lock in new)


def _remove(lock: Path) -> list[Path]:
    folder = lock.with_suffix("")
    gone = []
    if folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
        gone.append(folder)
    lock.unlink(missing_ok=True)
    return [*gone, lock]


def _unused(lock: Path) -> bool:
    """Whether no Ray node holds `lock` (each running node holds it shared)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
