"""What a Ray-on-Spark cluster leaves on this machine after it has shut down, and its
removal. Only this cluster's: its temp folders are `<temp root>/ray-<port>-<id>` (the
head's, and with Ray's own start every node's of this host) and, with fast start,
`ray-<port>-<id>-node-<n>` (each worker node's), each with a lock file beside it.

Ray's `start_ray_node` never removes its lock file; a node that was killed could not
remove its temp folder; and a node whose raylet was killed (its head lost) leaves its
agents running until they give up on the GCS, about a minute, making its temp folder
again meanwhile. Another cluster's folders, even one on the same port, are never touched.
"""

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

NODE_SUFFIX = "-node-"  # a fast-started worker node's folder: <cluster folder>-node-<n>


def remove_leftovers(
    temp_root: Path, cluster_folder: str, wait_seconds: float = 20.0
) -> list[Path]:
    """Remove the temp folders and lock files of the cluster whose head's temp folder is
    `temp_root/cluster_folder`. Its nodes hold their locks while they copy their logs:
    waited for up to `wait_seconds`; then any process still using the folders is ended,
    and each folder goes with its lock held. Returns what was removed."""
    deadline = time.monotonic() + wait_seconds
    while any(_held(lock) for lock in _locks(temp_root, cluster_folder)):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if ended := end_processes_in(temp_root / cluster_folder):
        logger.debug("ended %d process(es) of the cluster's nodes left running", ended)
    folders = {lock.with_suffix("") for lock in _locks(temp_root, cluster_folder)}
    folders |= set(_ours(temp_root, cluster_folder, ""))
    removed = [path for folder in sorted(folders) for path in _remove(folder)]
    if removed:
        logger.debug("removed what the Ray nodes left in %s: %s", temp_root, removed)
    return removed


def end_processes_in(cluster_folder: Path, grace: float = 2.0) -> int:
    """End the processes (TERM, then KILL after `grace` seconds) using the cluster's
    folders (`cluster_folder` and its `-node-<n>` siblings: a file open in them, or named
    in its environment); their lock files beside the folders do not count. How many
    there were."""
    found = [proc for proc in psutil.process_iter() if _uses(proc, str(cluster_folder))]
    end(found, grace)
    return len(found)


def _ours(temp_root: Path, cluster_folder: str, suffix: str) -> list[Path]:
    """This cluster's entries in `temp_root` ending in `suffix` ("" folders, ".lock")."""
    return [
        *temp_root.glob(f"{cluster_folder}{suffix}"),
        *temp_root.glob(f"{cluster_folder}{NODE_SUFFIX}*{suffix}"),
    ]


def _locks(temp_root: Path, cluster_folder: str) -> list[Path]:
    return _ours(temp_root, cluster_folder, ".lock")


def _uses(proc: psutil.Process, cluster_folder: str) -> bool:
    """A file open in the folders, or a path in them in its environment: a JVM that
    PySpark's start launched names its connection file there before it opens it."""
    if proc.pid == os.getpid():
        return False
    return any(_within(path, cluster_folder) for path in _open_paths(proc.pid)) or any(
        _within(path, cluster_folder) for path in _environment_paths(proc)
    )


def _within(path: str, cluster_folder: str) -> bool:
    if path.endswith(".lock"):
        return False
    inside = path.startswith(f"{cluster_folder}/") or path.startswith(
        f"{cluster_folder}{NODE_SUFFIX}"
    )
    return inside or path == cluster_folder


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


def _environment_paths(proc: psutil.Process) -> list[str]:
    try:
        values = proc.environ().values()
    except (psutil.Error, OSError):  # it ended, or is not ours to read
        return []
    return [path for value in values for path in value.split(os.pathsep)]


def _held(lock: Path) -> bool:
    """Whether a Ray node holds `lock` (each running node holds it shared)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _remove(folder: Path) -> list[Path]:
    """`folder` and its lock file, removed while holding the lock (none if a node still
    holds it)."""
    lock = folder.with_name(f"{folder.name}.lock")
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        fd = None  # a folder its node never locked (a head that did not start)
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        gone = []
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            gone.append(folder)
        if fd is not None:
            lock.unlink(missing_ok=True)
            gone.append(lock)
        return gone
    except BlockingIOError:
        return []
    finally:
        if fd is not None:
            os.close(fd)
