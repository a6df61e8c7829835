"""What Ray on Spark leaves on this machine's disk after a cluster has shut down, and
its removal: each node's `<temp dir>.lock` file beside the temp folder (Ray's
`start_ray_node` creates it and never removes it), and temp folders a node that was
killed could not remove itself."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def lock_files(temp_root: Path) -> set[Path]:
    """The Ray nodes' lock files in `temp_root` now."""
    return set(temp_root.glob("ray-*.lock"))


def remove_new_leftovers(
    temp_root: Path, before: set[Path], ours: str = "", wait_seconds: float = 20.0
) -> list[Path]:
    """Remove the lock files (and temp folders) that appeared in `temp_root` since
    `before` and that no process holds any more. Those named `ours*` (this cluster's)
    are waited for up to `wait_seconds`, as its nodes finish copying their logs; other
    new ones (another cluster's, running beside) only if free now. Returns what was
    removed."""
    removed: list[Path] = []
    deadline = time.monotonic() + wait_seconds
    while True:
        held = []
        for lock in sorted(lock_files(temp_root) - before):
            if _unused(lock):
                removed += _remove(lock)
            elif ours and lock.name.startswith(ours):
                held.append(lock)
        if not held or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if removed:
        logger.debug("removed what the Ray nodes left in %s: %s", temp_root, removed)
    return removed


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
