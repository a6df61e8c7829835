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
Worker nodes are launched only once the executors' check (`raybricks.cluster.executors`,
run beside the head's start) has shown that each executor can run raybricks' node
launcher; where one cannot, or worker nodes make no progress joining within
`JOIN_PROGRESS_SECONDS` (Ray: two minutes), the attempt says why, and the run starts
again with Ray's own start (`Attempt.retry_reason`).
And the head's raylet starts beside its dashboard, not after it (`head_start`).
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
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from typing import Any

from ray.autoscaler._private.spark import spark_job_server
from ray.util.spark import cluster_init, utils

from raybricks.cluster import node_launcher
from raybricks.cluster.compat.head_process import head_process_running, head_temp_dir
from raybricks.cluster.compat.ports import claim_worker_port_range, reserve_unused_port
from raybricks.cluster.executors import settled
from raybricks.cluster.sockets import listening
from raybricks.errors import root_cause

logger = logging.getLogger(__name__)

HEAD_PORT_TIMEOUT_SECONDS = 20.0  # Ray's own limit for the head to open its port
READY_CHECK_SECONDS = 0.1
# Ray waits two minutes for worker nodes that make no progress joining, then starts the
# run with fewer or fails it: here a fast-started node that has not joined by then
# never will, and the run starts again with Ray's own start.
JOIN_PROGRESS_SECONDS = 30.0
CHECK_WAIT_SECONDS = 30.0  # for the executors' check, before a worker node is launched
JOB_SERVER_POLL_SECONDS = 0.05


class ExecutorsCannotLaunchNodes(RuntimeError):
    """An executor's Python cannot run raybricks' node launcher."""


class Attempt:
    """One fast start, as it goes: the executors' answer to their check, whether the
    head came up, and the cluster's temp folder."""

    def __init__(self, executors: Future[str | None]) -> None:
        self.executors = executors  # why an executor cannot run raybricks, or None
        self.head_up = False
        self.cluster_temp_dir: str | None = None

    def retry_reason(self, error: BaseException) -> str | None:
        """Why Ray's own start should be tried after `error` ended this attempt; None
        where the head itself did not come up (Ray's own start would fail the same way)."""
        if not self.head_up:
            return None
        if self.executors.done() and (unable := self.executors.result()) is not None:
            return unable
        return (
            f"fast-started worker nodes did not join within {JOIN_PROGRESS_SECONDS:g} s "
            f"({root_cause(error)})"
        )


# Ray's own, kept before any patch: their replacements call them.
_start_ray_worker_nodes = spark_job_server._start_ray_worker_nodes
_exec_cmd = utils.exec_cmd


@contextmanager
def faster_setup(attempt: Attempt) -> Iterator[Attempt]:
    """Within this block, `setup_ray_cluster` skips its fixed waits and starts worker
    nodes side by side, once the executors' check has shown they can; Ray's modules are
    restored on exit.

    Worker nodes start in Spark tasks, which get the port-range claim and the port
    reservation through the pickled task function (it names `claim_worker_port_range`
    and `reserve_unused_port` by module)."""
    with _patched(_patches(attempt)):
        yield attempt


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


def _patches(attempt: Attempt) -> list[tuple[Any, str, Any]]:
    """(module, name, value): what is replaced in Ray while the block runs."""

    def wait_until_head_is_up(host: str, port: int) -> bool:
        attempt.head_up = _wait_until_port_in_use(host, port)
        attempt.cluster_temp_dir = head_temp_dir(port)
        return attempt.head_up

    def start_worker_node(**arguments: Any) -> Any:
        if (unable := settled(attempt.executors, CHECK_WAIT_SECONDS)) is not None:
            _fail_the_start(ExecutorsCannotLaunchNodes(unable))
            return unable  # Ray's job server logs it as the launch's error
        return _start_worker_node_in_own_dir(**arguments)

    return [
        (cluster_init, "_RAY_HEAD_STARTUP_TIMEOUT", 0),
        (cluster_init, "_RAY_CLUSTER_STARTUP_PROGRESS_CHECKING_INTERVAL", READY_CHECK_SECONDS),
        (cluster_init, "_RAY_CONNECT_CLUSTER_POLL_PROGRESS_TIMEOUT", JOIN_PROGRESS_SECONDS),
        (cluster_init, "is_port_in_use", wait_until_head_is_up),
        (cluster_init, "_preallocate_ray_worker_port_range", claim_worker_port_range),
        (cluster_init, "get_random_unused_port", reserve_unused_port),
        (spark_job_server, "_start_ray_worker_nodes", start_worker_node),
        (spark_job_server, "_start_spark_job_server", _start_job_server),
        (cluster_init, "exec_cmd", _exec_with_own_launcher),  # pickled into Spark tasks
    ]


def _fail_the_start(error: Exception) -> None:
    """End the start that waits for worker nodes with `error`: Ray's wait for them
    looks at its cluster's background error at every check."""
    deadline = time.monotonic() + HEAD_PORT_TIMEOUT_SECONDS
    while (cluster := cluster_init._active_ray_cluster) is None and time.monotonic() < deadline:
        time.sleep(READY_CHECK_SECONDS)  # Ray sets it as the head is up
    if cluster is not None:
        cluster.background_job_exception = error


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
        if listening(host, port):
            return True
        if not head_process_running(port):
            return False  # Ray then reports the head's exit code and its output
        time.sleep(0.1)
    return False
