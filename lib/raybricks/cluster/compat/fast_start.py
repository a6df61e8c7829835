"""A faster `setup_ray_cluster` (and shutdown), for the one Ray version whose waits we
have read.

Ray on Spark 2.60 spends most of its start-up in fixed waits:
- after launching the head it sleeps 20 s, then checks once that the head's port is open;
- it checks whether enough worker nodes joined every 3 s;
- every node claims its worker port range under a machine-wide file lock that it holds
  for 10 s (`RAY_ON_SPARK_RAY_WORKER_NODE_STARTUP_INTERVAL`), and a node that finds the
  lock taken sleeps 10 s before trying again, so two nodes on one machine start 10-20 s
  apart.
Ray needs the spacing: nodes of one cluster on one machine share a session folder, and
each picks its raylet's socket name there by looking for an unused one, so two nodes
starting together can pick the same name and one fails to bind it.

Here the head's port is polled instead (same 20 s limit, cut short if the head's
process ends), readiness is checked every 0.1 s, and worker nodes start at once, side
by side:
- each worker node gets a temp folder of its own (`node_temp_dir`), so its session
  folder and socket names are its own, as on a machine of its own.
- port ranges are claimed without Ray's 10 s hold of the lock, and the ports Ray picks
  at random (the head's, and each worker node's dashboard agent's) are kept from other
  raybricks clusters on the machine until bound: see `raybricks.cluster.compat.ports`.
Ray's probe job warms one Spark Python worker; every other worker node's task then
starts Python and imports Ray cold (about 2.5 s here) while the cluster waits, so
`warming_python_workers` warms one per task slot while Ray's start runs.
And the head's raylet starts beside its dashboard, not after it, and the head's temp
files stay in its temp folder (`head_start`, run by the head's `ray start` as its
`RAY_START_HOOK`).
Every node (the head and each worker node) is launched by `raybricks.cluster.node_launcher`
in place of Ray's `start_ray_node`, which imports Ray (a CPU-second per node) only to
run `ray start`; the node's processes poll its sockets every 0.1 s as they connect, not
every 1 s. The head gets its own process group without running Python in the
forked child, which would cut this driver's connections to Spark's JVM.

At shutdown, Ray's job server is stopped without Ray's closing 1 s sleep
(`faster_shutdown`), and it looks for that stop every 0.05 s, not every 0.5 s.

Imported only once `raybricks.cluster.compat` has checked that every name replaced
here exists in this Ray.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from typing import Any

from pyspark import SparkContext
from ray.autoscaler._private.spark import spark_job_server
from ray.util.spark import cluster_init, utils

from raybricks.cluster import node_launcher
from raybricks.cluster.compat.head_process import head_process_running
from raybricks.cluster.compat.ports import claim_worker_port_range, reserve_unused_port

logger = logging.getLogger(__name__)

HEAD_PORT_TIMEOUT_SECONDS = 20.0  # Ray's own limit for the head to open its port
READY_CHECK_SECONDS = 0.1
WARM_JOIN_SECONDS = 10.0
JOB_SERVER_POLL_SECONDS = 0.05
START_HOOK_VAR = "RAY_START_HOOK"  # read by `ray start`, which the head inherits it from
HEAD_START_HOOK = "raybricks.cluster.compat.head_start.start_head"


# Ray's own, kept before any patch: their replacements call them.
_start_ray_worker_nodes = spark_job_server._start_ray_worker_nodes
_exec_cmd = utils.exec_cmd


@contextmanager
def faster_setup() -> Iterator[None]:
    """Within this block, `setup_ray_cluster` skips its fixed waits and starts worker
    nodes side by side; Ray's modules are restored on exit.

    Worker nodes start in Spark tasks, which get the port-range claim and the port
    reservation through the pickled task function (it names `claim_worker_port_range`
    and `reserve_unused_port` by module)."""
    with _patched(_patches()), _head_start_hook():
        yield


@contextmanager
def faster_shutdown() -> Iterator[None]:
    """Within this block, `shutdown_ray_cluster` skips Ray's closing 1 s sleep, which
    keeps a notebook's process alive while the worker nodes' Spark jobs are cancelled:
    raybricks goes on to stop Spark itself, or leaves it running."""
    with _patched([(spark_job_server.SparkJobServer, "shutdown", _shut_down_job_server)]):
        yield


@contextmanager
def _patched(patches: list[tuple[Any, str, Any]]) -> Iterator[None]:
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, value in patches:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


@contextmanager
def _head_start_hook() -> Iterator[None]:
    """Within this block, a head started from this process starts its raylet beside its
    dashboard. A start hook of the user's own is kept (and the head waits as in Ray)."""
    if START_HOOK_VAR in os.environ:
        logger.info(
            "%s is set (%s): the head's raylet waits for the dashboard, as in Ray",
            START_HOOK_VAR,
            os.environ[START_HOOK_VAR],
        )
        yield
        return
    os.environ[START_HOOK_VAR] = HEAD_START_HOOK
    try:
        yield
    finally:
        os.environ.pop(START_HOOK_VAR, None)


@contextmanager
def warming_python_workers(context: SparkContext) -> Iterator[None]:
    """Within this block, a Spark job starts a Python worker that imports Ray on every
    task slot; Ray's worker-node tasks then reuse them. On exit the job is cancelled
    if it still runs (it may queue behind other jobs on a busy cluster)."""
    group = f"raybricks-warm-{uuid.uuid4().hex[:8]}"
    warming = threading.Thread(target=_warm, args=(context, group), name=group, daemon=True)
    warming.start()
    try:
        yield
    finally:
        if warming.is_alive():
            context.cancelJobGroup(group)
        warming.join(WARM_JOIN_SECONDS)


def _warm(context: SparkContext, group: str) -> None:
    slots = context.defaultParallelism
    clock = time.monotonic()
    try:
        context.setJobGroup(group, "raybricks: warm Python workers for Ray worker nodes")
        context.parallelize(range(slots), slots).foreach(import_ray_on_spark)
    except Exception as exc:  # it only saves time: the start goes on without it
        logger.debug("warming Spark's Python workers ended early: %s", str(exc).splitlines()[0])
        return
    logger.debug(
        "warmed Spark Python workers on %d task slots in %.1f s", slots, time.monotonic() - clock
    )


def import_ray_on_spark(_: int) -> None:
    """Runs in a Spark Python worker. Pickled by reference, so unpickling it imports
    this module, and with it Ray and Ray on Spark, as a worker node's task does."""


def _patches() -> list[tuple[Any, str, Any]]:
    """(module, name, value): what is replaced in Ray while the block runs."""
    return [
        (cluster_init, "_RAY_HEAD_STARTUP_TIMEOUT", 0),
        (cluster_init, "_RAY_CLUSTER_STARTUP_PROGRESS_CHECKING_INTERVAL", READY_CHECK_SECONDS),
        (cluster_init, "is_port_in_use", _wait_until_port_in_use),
        (cluster_init, "_preallocate_ray_worker_port_range", claim_worker_port_range),
        (cluster_init, "get_random_unused_port", reserve_unused_port),
        (spark_job_server, "_start_ray_worker_nodes", _start_worker_node_in_own_dir),
        (spark_job_server, "_start_spark_job_server", _start_job_server),
        (cluster_init, "exec_cmd", _exec_with_own_launcher),
    ]


def _exec_with_own_launcher(command: list[str], **options: Any) -> Any:
    """Ray's `exec_cmd`, a Ray node's launcher in `command` replaced by raybricks' (which
    does not import Ray). Both the head's start and the worker nodes' Spark tasks call it.
    The head's own process group is made without Python in the forked child: see
    `without_python_in_the_child`."""
    return _exec_cmd(with_own_launcher(command), **without_python_in_the_child(options))


def without_python_in_the_child(options: dict[str, Any]) -> dict[str, Any]:
    """Popen `options` with Ray's `preexec_fn` that only calls `os.setpgrp` replaced by
    `start_new_session` (a new session and process group, made in C).

    A `preexec_fn` runs Python in the forked child, so CPython first clears the other
    threads' states there. Their py4j connections to the driver JVM are dropped with
    them, and py4j's finalizer shuts each socket down, which the parent shares: the JVM
    closes the parent's connections of those threads, and their next calls are reset
    (an error, not a retry, when the reset comes while a call waits for its answer)."""
    code = getattr(options.get("preexec_fn"), "__code__", None)
    if code is None or code.co_names != ("os", "setpgrp"):
        return options
    return {**{k: v for k, v in options.items() if k != "preexec_fn"}, "start_new_session": True}


def with_own_launcher(command: list[str]) -> list[str]:
    """`command` with `-m ray.util.spark.start_ray_node` as `-m raybricks.cluster.node_launcher`."""
    own = node_launcher.__name__
    return [own if part == node_launcher.RAYS_LAUNCHER else part for part in command]


def _start_job_server(host: str, port: int, spark: Any, ray_node_custom_env: Any) -> Any:
    """Ray's Spark job server (worker nodes are asked of it), serving with a short poll:
    its shutdown waits for the serving loop's next look (Ray's: every 0.5 s)."""
    server = spark_job_server.SparkJobServer((host, port), spark, ray_node_custom_env)
    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": JOB_SERVER_POLL_SECONDS}
    )
    serving.daemon = True
    serving.start()
    return server


def _shut_down_job_server(server: Any) -> None:
    """Ray's `SparkJobServer.shutdown`, without its closing sleep."""
    ThreadingHTTPServer.shutdown(server)
    with server.node_registry_lock:
        job_groups = list(server.task_status_dict)
    for job_group in job_groups:
        server.spark.sparkContext.cancelJobGroup(job_group)


def node_temp_dir(cluster_temp_dir: str, node_id: str) -> str:
    """A worker node's own temp folder, beside the cluster's (where the head's is).

    Ray on Spark copies each folder's logs to `<log path>/<folder name>-logs` as
    the node exits, and removes the folder."""
    return f"{cluster_temp_dir}-node-{node_id}"


def _start_worker_node_in_own_dir(**arguments: Any) -> Any:
    """Ray's worker-node start (run by its Spark job server, in this process), with
    the node's temp folder its own."""
    if arguments.get("ray_temp_dir") is not None:  # None: Ray's global mode
        arguments["ray_temp_dir"] = node_temp_dir(arguments["ray_temp_dir"], arguments["node_id"])
    return _start_ray_worker_nodes(**arguments)


def _wait_until_port_in_use(host: str, port: int) -> bool:
    """Ray's one-shot check of the head's port, as a poll up to Ray's own limit that
    gives up at once when the head's process has ended."""
    deadline = time.monotonic() + HEAD_PORT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            if probe.connect_ex((host, port)) == 0:
                return True
        if not head_process_running(port):
            return False  # Ray then reports the head's exit code and its output
        time.sleep(0.1)
    return False
