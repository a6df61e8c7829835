"""A faster `setup_ray_cluster`, for the one Ray version whose waits we have read.

Ray on Spark 2.60 spends most of its start-up in fixed waits:
- after launching the head it sleeps 20 s, then checks once that the head's port is open;
- it checks whether enough worker nodes joined every 3 s;
- every node holds a port-allocation lock for 10 s (`RAY_ON_SPARK_RAY_WORKER_NODE_STARTUP_
  INTERVAL`), and a node that finds it taken sleeps 10 s before trying again.
Here the head's port is polled instead (same 20 s limit), readiness is checked every
0.25 s, and the lock is held for 1 s: the port ranges themselves are kept apart by
Ray's allocation file, not by the wait, and Ray's autoscaler launches nodes seconds
apart, so a 1 s hold means no node waits for it.

Any other Ray version keeps Ray's own timings, with one log line saying so.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import ray
from ray.util.spark import cluster_init

logger = logging.getLogger(__name__)

READ_FOR_RAY = "2.60.0"
HEAD_PORT_TIMEOUT_SECONDS = 20.0  # Ray's own limit for the head to open its port
READY_CHECK_SECONDS = 0.25
LOCK_HOLD_SECONDS = 1
LOCK_HOLD_VAR = "RAY_ON_SPARK_RAY_WORKER_NODE_STARTUP_INTERVAL"

_PATCHED = {
    "_RAY_HEAD_STARTUP_TIMEOUT": 0,
    "_RAY_CLUSTER_STARTUP_PROGRESS_CHECKING_INTERVAL": READY_CHECK_SECONDS,
    "_RAY_WORKER_NODE_STARTUP_INTERVAL": LOCK_HOLD_SECONDS,
}


def available() -> bool:
    """Whether this Ray is the version whose internals were read for this."""
    names = [*_PATCHED, "is_port_in_use"]
    return ray.__version__ == READ_FOR_RAY and all(hasattr(cluster_init, n) for n in names)


@contextmanager
def faster_setup(task_env: MutableMapping[str, str], enabled: bool = True) -> Iterator[bool]:
    """Within this block, `setup_ray_cluster` skips its fixed waits. Yields whether it
    does; Ray's module is restored on exit.

    `task_env` is the environment of Spark's Python tasks (`sc.environment`), where
    worker nodes start."""
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
    saved: dict[str, Any] = {name: getattr(cluster_init, name) for name in _PATCHED}
    saved["is_port_in_use"] = cluster_init.is_port_in_use
    saved_task_env = task_env.get(LOCK_HOLD_VAR)
    task_env[LOCK_HOLD_VAR] = str(LOCK_HOLD_SECONDS)
    for name, value in _PATCHED.items():
        setattr(cluster_init, name, value)
    cluster_init.is_port_in_use = _wait_until_port_in_use
    try:
        yield True
    finally:
        for name, value in saved.items():
            setattr(cluster_init, name, value)
        if saved_task_env is None:
            task_env.pop(LOCK_HOLD_VAR, None)
        else:
            task_env[LOCK_HOLD_VAR] = saved_task_env


def _wait_until_port_in_use(host: str, port: int) -> bool:
    """Ray's one-shot check of the head's port, as a poll up to Ray's own limit."""
    deadline = time.monotonic() + HEAD_PORT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            if probe.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.1)
    return False
