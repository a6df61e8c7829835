"""The one place that reaches into Ray's and Spark's private code, and only when a run
asks for it.

Ray on Spark's start-up spends most of its time in fixed waits, which fast start cuts
by replacing a few private names of Ray 2.60 (`fast_start`, `head_start`, `ports`), and
launches each node with `raybricks.cluster.node_launcher` (outside this package: it must
not import Ray; the names of Ray's it keeps to are checked here).
Before anything private is imported, `unavailable_reason` checks the Ray version and
every name needed; on a mismatch the run uses Ray's own `setup_ray_cluster` and
`shutdown_ray_cluster` unchanged, and says why in one log line and in the report.

    status = compat.fast_start_status(enabled)        # "on", "off", "unavailable: <why>"
    with compat.fast_start_attempt(executors_answer) as attempt:    # when "on"
        setup_ray_cluster(...)        # a failure: attempt.retry_reason(error) says why
    with compat.fast_shutdown_if(status == "on"):
        shutdown_ray_cluster()

Besides fast start, each guarded where it is used: the head found by its command line
(`head_process`), the head's start hook (`head_start`), Ray's cached auth settings
(`ray_auth`), this driver's connection to Ray at a teardown (`connection`), Ray's
notebook HTML sent to the log (`notebook_display`), and what PySpark's private handles
tell (`spark_jvm`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import ray

from raybricks.cluster import node_launcher
from raybricks.cluster.compat.agent_ports import AGENT_PORTS

if TYPE_CHECKING:
    from concurrent.futures import Future

    from raybricks.cluster.compat.fast_start import Attempt

logger = logging.getLogger(__name__)

READ_FOR_RAY = "2.60.0"

# Every private name fast start replaces or calls, by module (`Class.attr` for methods).
NEEDED: dict[str, tuple[str, ...]] = {
    "ray.util.spark.cluster_init": (
        "_RAY_HEAD_STARTUP_TIMEOUT",
        "_RAY_CLUSTER_STARTUP_PROGRESS_CHECKING_INTERVAL",
        "_RAY_CONNECT_CLUSTER_POLL_PROGRESS_TIMEOUT",
        "_active_ray_cluster",
        "is_port_in_use",
        "_preallocate_ray_worker_port_range",
        "get_random_unused_port",
        "exec_cmd",
        node_launcher.COLLECT_LOG_TO_PATH,
        node_launcher.START_RAY_PARENT_PID,
    ),
    "ray.util.spark.utils": ("get_random_unused_port", "exec_cmd"),
    node_launcher.RAYS_LAUNCHER: (),
    "ray.autoscaler._private.spark.spark_job_server": (
        "_start_ray_worker_nodes",
        "_start_spark_job_server",
        "SparkJobServer.shutdown",
    ),
    "ray._private.node": (
        "Node.start_api_server",
        "Node.start_ray_processes",
        "Node.start_raylet",
    ),
    "ray._raylet": ("persist_port", *AGENT_PORTS),
}

# The modules a head runs as its autoscaler monitor, which the launcher knows by their
# scripts' paths (`node_launcher.AUTOSCALER_MONITORS`, in order).
MONITORS = ("ray.autoscaler._private.monitor", "ray.autoscaler.v2.monitor")


def unavailable_reason() -> str | None:
    """Why fast start cannot run on this Ray, or None when it can."""
    if ray.__version__ != READ_FOR_RAY:
        return f"it was written for Ray {READ_FOR_RAY}, this is Ray {ray.__version__}"
    for module_name, names in NEEDED.items():
        try:
            module: Any = importlib.import_module(module_name)
        except ImportError:
            return f"{module_name} cannot be imported"
        for dotted in names:
            owner = module
            for part in dotted.split("."):
                if not hasattr(owner, part):
                    return f"{module_name}.{dotted} is missing"
                owner = getattr(owner, part)
    for module_name, script in zip(MONITORS, node_launcher.AUTOSCALER_MONITORS, strict=True):
        found = importlib.util.find_spec(module_name)  # without running it
        if found is None or not str(found.origin).endswith(script):
            return f"{module_name} is not a script ending in {script}"
    return None


def fast_start_status(enabled: bool) -> str:
    """What a start will be, for the report's `cluster.fast_start`: "on", "off" or
    "unavailable: <why>" (then Ray's own start, with one log line saying why)."""
    if not enabled:
        return "off"
    why = unavailable_reason()
    if why is not None:
        logger.info("fast start is unavailable (%s): using Ray's own start-up", why)
        return f"unavailable: {why}"
    return "on"


# What a worker node's Spark task imports as it starts: fast start's task function names
# this module (Ray's own, Ray on Spark's).
FAST_WORKER_TASK_IMPORTS = "raybricks.cluster.compat.fast_start"


@contextmanager
def fast_start_attempt(executors: Future[str | None]) -> Iterator[Attempt]:
    """Within this block `setup_ray_cluster` skips its fixed waits (where
    `fast_start_status` said "on") and launches worker nodes once `executors` says each
    can; the attempt tells why to start again with Ray's own start if it fails."""
    from raybricks.cluster.compat import fast_start as fast

    with fast.faster_setup(fast.Attempt(executors)) as attempt:
        yield attempt


@contextmanager
def fast_shutdown_if(enabled: bool) -> Iterator[None]:
    """Within this block `shutdown_ray_cluster` skips Ray's closing sleep (fast start on)."""
    if not enabled:
        yield
        return
    from raybricks.cluster.compat import fast_start as fast

    with fast.faster_shutdown():
        yield


def known_ray() -> bool:
    """Whether this is the Ray whose private shapes were read for this layer."""
    return ray.__version__ == READ_FOR_RAY
