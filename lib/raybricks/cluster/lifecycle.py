"""The Ray-on-Spark lifecycle: one context manager starts the cluster inside Spark,
connects this driver, and always shuts both down. It knows nothing of stages.

    platform = Platform.of(settings.cluster)
    with ray_on_spark(settings.cluster, platform, namespace="demo", log_dir=run_dir) as cluster:
        ...  # ray.* calls go to the cluster; cluster.address is for other drivers
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, fields
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import ray
from pyspark.sql import SparkSession
from ray.util.spark import setup_ray_cluster, shutdown_ray_cluster

import raybricks
from raybricks.cluster import compat, signals
from raybricks.cluster.arguments import check_room, minimum_workers, setup_arguments
from raybricks.cluster.auth import auth_environment, clear_auth, configure_auth
from raybricks.cluster.compat.agent_ports import AGENTS_WAIT_SECONDS, wait_for_agents
from raybricks.cluster.compat.connection import (
    left_connected,
    stop_auto_connect,
    without_crash_handler,
)
from raybricks.cluster.compat.head_process import end_head_processes, head_temp_dir
from raybricks.cluster.compat.head_start import head_start_hook
from raybricks.cluster.compat.notebook_display import notebook_html_to_log
from raybricks.cluster.compat.spark_jvm import activate_in_this_thread
from raybricks.cluster.executors import executors_checked, settled
from raybricks.cluster.head import Head
from raybricks.cluster.leftovers import remove_leftovers
from raybricks.cluster.leftovers_watch import LeftoversWatch
from raybricks.cluster.spark import Spark, get_or_create_spark, put_interpreter_on_path
from raybricks.errors import ClusterLost, ClusterStartError, root_cause
from raybricks.platform import Platform
from raybricks.settings import ClusterSettings

logger = logging.getLogger(__name__)

HEAD_RESOURCE = "node:__internal_head__"
RAY_WORKER_TASK_IMPORTS = "ray.util.spark.cluster_init"  # what Ray's worker-node task needs
CHECK_WAIT_SECONDS = 30.0  # for the executors' check, before this driver connects


@dataclass(frozen=True)
class ClusterInfo:
    """What a run reports about its cluster (no secrets: the token stays out)."""

    platform: str
    spark_master: str
    address: str
    dashboard_url: str
    max_worker_nodes: int
    min_worker_nodes: int
    num_cpus_worker_node: int | None
    gpus_per_worker_node: int
    total_cpus: float  # of the worker nodes up when the cluster was ready
    total_gpus: float
    namespace: str
    auth_mode: str
    fast_start: str  # "on", "off" or "unavailable: <why>"
    spark_startup_seconds: float  # to have its session (0 where the platform's existed)
    startup_seconds: float  # Ray's
    head: Head = field(repr=False)
    spark: SparkSession | None = field(default=None, repr=False)  # the run's session

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.repr}


def live_worker_nodes() -> set[str]:
    """IDs of the connected cluster's live worker nodes (the head excluded)."""
    return {
        node["NodeID"]
        for node in ray.nodes()
        if node["Alive"] and HEAD_RESOURCE not in node["Resources"]
    }


def check_joined(arguments: dict[str, Any]) -> None:
    """Ray's start returns with fewer worker nodes than asked for after two minutes
    without progress, with only a warning: that is a failed start here."""
    needed = minimum_workers(arguments)
    joined = len(live_worker_nodes())
    if joined < needed:
        raise ClusterStartError(
            f"cluster.min_worker_nodes: only {joined} of {needed} worker nodes joined; "
            "Spark has too few free task slots for them: lower cluster.min_worker_nodes "
            "or free or add Spark workers"
        )


@dataclass
class _Started:
    """How far a start got, for the teardown: Ray's start was called (a half-started
    cluster may need shutting down), the address it reached, whether it was fast, and
    each attempt's cluster temp folder (what its nodes leave goes with it, also should
    this driver be killed: `watch`)."""

    watch: LeftoversWatch
    spark: Spark | None = None
    restore_path: Callable[[], None] | None = None
    ray: bool = False
    address: str = ""
    fast: str = "off"
    temp_folders: list[str] = field(default_factory=list)

    def keep(self, temp_dir: str) -> None:
        """A cluster temp folder to remove at the end, however the run ends."""
        folder = Path(temp_dir).name
        self.temp_folders.append(folder)
        self.watch.add(folder)


@contextmanager
def ray_on_spark(
    cluster: ClusterSettings,
    platform: Platform,
    namespace: str,
    log_dir: Path,
    stream_worker_logs: bool = True,
    on_started: Callable[[ClusterInfo], None] = lambda _: None,
) -> Iterator[ClusterInfo]:
    """Start Ray inside the platform's Spark, connect this driver in `namespace`, yield
    what was started; on exit disconnect, shut the cluster down and stop a Spark made
    here. `stream_worker_logs`: whether drivers may get their workers' output (see
    `setup_arguments`); their logs land in `log_dir` either way. `on_started` hears of
    the cluster as soon as it is up, also when a cancel then ends the start.

    Ray's nodes copy their logs into `log_dir` as they exit, and a local cluster's Spark
    executors' output moves there once Spark stops. Start-up failures raise
    `ClusterStartError`; cleanup errors are logged, never raised over the original."""
    started = _Started(LeftoversWatch(platform.temp_root))
    without_crash_handler()
    try:
        if platform.spark_master is not None:  # its size is known without starting it
            own = platform.spark_master
            check_room(own, setup_arguments(cluster, own, log_dir, stream_worker_logs))
        # Cut short, a start leaves processes behind, so a cancel waits for it (and
        # lands inside this try). SparkContext() sets its own SIGINT handler, and
        # `deferred` restores the caller's.
        spark_clock = time.monotonic()
        with (
            signals.deferred("starting Spark"),
            started.watch.python_temp_files_in("raybricks-spark-start-"),
        ):
            try:
                started.spark = spark = get_or_create_spark(platform, cluster)
            except Exception as exc:
                raise ClusterStartError(f"Spark could not start: {exc}") from exc
        spark_seconds = round(time.monotonic() - spark_clock, 2)
        training = spark.archives is not None and spark.archives.training
        logger.info(
            "Spark up: %s in %.1f s%s",
            spark.master.url,
            spark_seconds,
            "; its JVMs write their class archives as it stops (once per Spark install, "
            "some seconds more at the end; `make setup` does it up front)"
            if training
            else "",
        )
        started.restore_path = put_interpreter_on_path(spark.session)
        configure_auth(cluster.auth, platform.start_hook)
        arguments = setup_arguments(cluster, spark.master, log_dir, stream_worker_logs)
        check_room(spark.master, arguments)
        logger.debug("starting Ray on Spark: %s", arguments)
        clock = time.monotonic()
        # As for Spark. The start runs in a thread of its own: setup_ray_cluster
        # installs a SIGTERM handler of its own (shut down, re-raise) and its inner
        # ray.init one that calls sys.exit, both only from the main thread; there,
        # they would take a cancel from the run's own deferral and cleanup.
        with signals.deferred("starting the Ray cluster"), notebook_html_to_log():
            try:
                context = _start_ray(
                    spark, arguments, namespace, cluster, platform, log_dir, started
                )
            except ClusterStartError:
                raise
            except Exception as exc:
                raise ClusterStartError(
                    f"the Ray cluster could not start: {root_cause(exc)}"
                ) from exc
            resources = ray.cluster_resources()
            info = ClusterInfo(
                platform=platform.name,
                spark_master=spark.master.url,
                address=started.address,
                dashboard_url=platform.dashboard_url(context.dashboard_url)
                if context.dashboard_url
                else "",
                max_worker_nodes=cluster.max_worker_nodes,
                min_worker_nodes=minimum_workers(arguments),
                num_cpus_worker_node=arguments.get("num_cpus_worker_node"),
                gpus_per_worker_node=arguments.get("num_gpus_worker_node") or 0,
                total_cpus=resources.get("CPU", 0.0),
                total_gpus=resources.get("GPU", 0.0),
                namespace=namespace,
                auth_mode=auth_environment().get("RAY_AUTH_MODE", "disabled"),
                fast_start=started.fast,
                spark_startup_seconds=spark_seconds,
                startup_seconds=round(time.monotonic() - clock, 2),
                head=Head.at(started.address),
                spark=spark.session,
            )
            on_started(info)
        logger.info(
            "Ray %s cluster ready at %s in %.1f s (fast start %s): %d worker nodes, %g CPUs%s%s",
            metadata.version("ray"),
            info.address,
            info.startup_seconds,
            info.fast_start,
            len(live_worker_nodes()),
            info.total_cpus,
            f", {info.total_gpus:g} GPUs" if info.total_gpus else "",
            f"; dashboard {info.dashboard_url}" if info.dashboard_url else "",
        )
        yield info
    finally:
        # A cancel arriving now (a second one, say) waits for the teardown.
        with signals.deferred("shutting down"):
            _tear_down(started, log_dir, platform.temp_root)


def _start_ray(
    spark: Spark,
    arguments: dict[str, Any],
    namespace: str,
    cluster: ClusterSettings,
    platform: Platform,
    log_dir: Path,
    started: _Started,
) -> Any:
    """Start the cluster and connect to it; Ray's `ray.init` context. A fast start that
    fails once its head is up is torn down, and Ray's own start runs instead."""
    started.fast = compat.fast_start_status(cluster.fast_start)
    warm = compat.FAST_WORKER_TASK_IMPORTS if started.fast == "on" else RAY_WORKER_TASK_IMPORTS
    with executors_checked(spark.session.sparkContext, warm) as executors:
        if started.fast == "on":
            with compat.fast_start_attempt(executors) as attempt:
                try:
                    return _start_once(spark.session, arguments, namespace, executors, started)
                except Exception as exc:
                    if (why := attempt.retry_reason(exc)) is None:
                        raise
                    if attempt.cluster_temp_dir:
                        started.keep(attempt.cluster_temp_dir)
            logger.warning("fast start did not work (%s): starting with Ray's own start-up", why)
            _shut_down(log_dir, fast=True, head=None)
            _remove_leftovers(started.temp_folders, platform.temp_root)
            started.fast, started.address = f"unavailable: {why}", ""
        return _start_once(spark.session, arguments, namespace, executors, started)


def _start_once(
    session: SparkSession,
    arguments: dict[str, Any],
    namespace: str,
    executors: Future[str | None],
    started: _Started,
) -> Any:
    started.ray = True  # from here a half-started cluster may need shutting down
    with head_start_hook(fast=started.fast == "on"):
        started.address, context = signals.off_the_main_thread(
            partial(_start_and_connect, session, arguments, namespace, executors)
        )
    port = int(started.address.rsplit(":", 1)[1])
    if (temp_dir := head_temp_dir(port)) is not None:
        started.keep(temp_dir)
    try:
        check_joined(arguments)
    except ClusterStartError:
        ray.shutdown()  # connected: a retry, or the teardown, starts from a clean slate
        raise
    if started.fast == "on" and (late := wait_for_agents()):
        logger.warning(
            "the agents of %d node(s) were not up within %g s: their metrics start late (%s)",
            len(late),
            AGENTS_WAIT_SECONDS,
            ", ".join(late),
        )
    return context


def _tear_down(started: _Started, log_dir: Path, temp_root: Path) -> None:
    if started.ray:
        head = Head.at(started.address) if started.address else None
        _shut_down(log_dir, fast=started.fast == "on", head=head)
    clear_auth()
    if started.restore_path is not None:
        _quietly("restoring Spark tasks' PATH", started.restore_path)
    if started.spark is not None:
        _quietly("stopping Spark", partial(started.spark.stop, log_dir))
    # Once the nodes have exited: each holds its lock until then.
    _remove_leftovers(started.temp_folders, temp_root)
    started.temp_folders.clear()
    started.watch.cleaned_up()


def _remove_leftovers(temp_folders: list[str], temp_root: Path) -> None:
    for folder in temp_folders:
        _quietly("removing Ray's leftovers", partial(remove_leftovers, temp_root, folder))


def _start_and_connect(
    session: SparkSession, arguments: dict[str, Any], namespace: str, executors: Future[str | None]
) -> tuple[str, Any]:
    activate_in_this_thread(session)
    address, _ = setup_ray_cluster(**arguments)
    runtime_env = None
    if (unable := settled(executors, CHECK_WAIT_SECONDS)) is not None:
        logger.warning("%s: Ray's workers get raybricks from this driver", unable)
        runtime_env = {"py_modules": [raybricks]}  # Ray prepends it to their Python path
    context = ray.init(
        address=address, namespace=namespace, log_to_driver=False, runtime_env=runtime_env
    )
    return address, context


def _shut_down(log_dir: Path, fast: bool, head: Head | None = None) -> None:
    """Disconnect and shut the cluster down; safe to call twice, never raises."""
    logger.debug("shutting the Ray cluster down")
    stop_auto_connect()
    head_gone = not _disconnected(head)
    signals.reinstall()
    with compat.fast_shutdown_if(fast), left_connected() if head_gone else nullcontext():
        _quietly("shutting the Ray cluster down", _shutdown_active_cluster)
    logger.debug("Ray cluster shut down; its logs go to %s", log_dir)


def _disconnected(head: Head | None) -> bool:
    """Disconnect this driver, unless its head has gone (before, or while it
    disconnects): then Ray's disconnect would end this process, or hang."""
    if head is None:
        _quietly("disconnecting from Ray", ray.shutdown)
        return True
    try:
        head.check()
        head.wait_for(ray.shutdown)
    except ClusterLost:
        logger.debug("the head is gone: leaving Ray connected (disconnecting would end us)")
        return False
    except Exception:
        logger.warning("error while disconnecting from Ray (ignored)", exc_info=True)
    return True


def _shutdown_active_cluster() -> None:
    try:
        shutdown_ray_cluster()  # ends the head, which copies its logs as it exits
    except Exception as exc:
        # Ray no longer knows its cluster (a start that failed halfway, Ray's own SIGTERM
        # hook) or could not shut it down: a head it launched would run on, and Ray's
        # thread reading its output would keep this process from ever exiting.
        if ended := end_head_processes():
            logger.warning("ended %d Ray head process(es) left running", ended)
        if "No active ray cluster" not in str(exc):
            raise
        logger.debug("no active Ray cluster left to shut down")
    os.environ.pop("RAY_ADDRESS", None)


def _quietly(what: str, step: Any) -> None:
    try:
        step()
    except Exception:
        logger.warning("error while %s (ignored so cleanup can go on)", what, exc_info=True)
