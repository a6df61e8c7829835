"""The Ray-on-Spark lifecycle: one context manager starts the cluster inside Spark,
connects this driver, and always shuts both down. It knows nothing of stages.

    with ray_on_spark(settings.cluster, namespace="demo", log_dir=run_dir) as cluster:
        ...  # ray.* calls go to the cluster; cluster.address is for other drivers
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import ray
from pyspark.sql import SparkSession
from ray.util.spark import setup_ray_cluster, shutdown_ray_cluster
from ray.util.spark.start_hook_base import RayOnSparkStartHook
from ray.util.spark.utils import is_in_databricks_runtime

from raybricks.cluster import compat, signals
from raybricks.cluster.arguments import check_room, minimum_workers, setup_arguments
from raybricks.cluster.auth import auth_environment, clear_auth, configure_auth
from raybricks.cluster.compat.connection import left_connected, stop_auto_connect
from raybricks.cluster.compat.head_process import end_head_processes
from raybricks.cluster.compat.notebook_display import notebook_html_to_log
from raybricks.cluster.compat.spark_jvm import activate_in_this_thread
from raybricks.cluster.head import Head
from raybricks.cluster.leftovers import lock_files, remove_new_leftovers
from raybricks.cluster.spark import (
    Spark,
    get_or_create_spark,
    put_interpreter_on_path,
    starts_its_own,
)
from raybricks.databricks.facts import ClusterFacts
from raybricks.databricks.job_hook import JobStartHook, dashboard_proxy_url
from raybricks.errors import ClusterLost, ClusterStartError
from raybricks.settings import ClusterSettings

logger = logging.getLogger(__name__)

HEAD_RESOURCE = "node:__internal_head__"


@dataclass(frozen=True)
class ClusterInfo:
    """What a run reports about its cluster (no secrets: the token stays out)."""

    spark_master: str
    address: str
    dashboard_url: str
    max_worker_nodes: int
    min_worker_nodes: int
    num_cpus_worker_node: int | None
    namespace: str
    auth_mode: str
    fast_start: str  # "on", "off" or "unavailable: <why>"
    startup_seconds: float
    head: Head = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "head"}


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


@contextmanager
def ray_on_spark(
    cluster: ClusterSettings,
    namespace: str,
    log_dir: Path,
    stream_worker_logs: bool = True,
    on_started: Callable[[ClusterInfo], None] = lambda _: None,
) -> Iterator[ClusterInfo]:
    """Start Ray inside Spark, connect this driver in `namespace`, yield what was
    started; on exit disconnect, shut the cluster down and stop a Spark started here.
    `stream_worker_logs`: whether drivers may get their workers' output (see
    `setup_arguments`); their logs land in `log_dir` either way. `on_started` hears of
    the cluster as soon as it is up, also when a cancel then ends the start.

    Ray's nodes copy their logs into `log_dir` as they exit, and a local cluster's Spark
    executors' output moves there once Spark stops. Start-up failures raise
    `ClusterStartError`; cleanup errors are logged, never raised over the original."""
    spark: Spark | None = None
    started = False
    address = ""
    fast = "off"
    locks: tuple[Path, set[Path]] = (Path("/tmp"), set())
    try:
        if starts_its_own(cluster.spark_master):  # its size is known without starting it
            own = cluster.spark_master
            check_room(own, setup_arguments(cluster, own, log_dir, stream_worker_logs))
        # Cut short, a start leaves processes behind, so a cancel waits for it (and
        # lands inside this try). SparkContext() sets its own SIGINT handler, and
        # `deferred` restores the caller's.
        with signals.deferred("starting Spark"):
            try:
                spark = get_or_create_spark(
                    cluster.spark_master,
                    cluster.spark_class_archive,
                    cluster.spark_class_archive_sets_kept,
                )
            except Exception as exc:
                raise ClusterStartError(f"Spark could not start: {exc}") from exc
        logger.info("Spark up: %s", spark.session.sparkContext.master)
        put_interpreter_on_path(spark.session)
        configure_auth(cluster.auth)
        master = str(spark.session.sparkContext.master)
        arguments = setup_arguments(cluster, master, log_dir, stream_worker_logs)
        check_room(master, arguments)
        logger.debug("starting Ray on Spark: %s", arguments)
        clock = time.monotonic()
        # Ray leaves each node's lock file beside its temp folder: what this start adds
        # goes once its nodes have exited.
        temp_root = _temp_root(cluster)
        locks = (temp_root, lock_files(temp_root))
        try:
            started = True  # from here a half-started cluster may need shutting down
            # As for Spark. The start runs in a thread of its own: setup_ray_cluster
            # installs a SIGTERM handler of its own (shut down, re-raise) and its inner
            # ray.init one that calls sys.exit, both only from the main thread; there,
            # they would take a cancel from the run's own deferral and cleanup.
            with (
                signals.deferred("starting the Ray cluster"),
                notebook_html_to_log(),
                compat.fast_start_if(cluster.fast_start, spark.session.sparkContext) as fast,
            ):
                address, context = signals.off_the_main_thread(
                    partial(_start_and_connect, spark.session, arguments, namespace)
                )
                info = ClusterInfo(
                    spark_master=master,
                    address=address,
                    dashboard_url=_dashboard_url(context.dashboard_url, spark),
                    max_worker_nodes=cluster.max_worker_nodes,
                    min_worker_nodes=minimum_workers(arguments),
                    num_cpus_worker_node=arguments.get("num_cpus_worker_node"),
                    namespace=namespace,
                    auth_mode=auth_environment().get("RAY_AUTH_MODE", "disabled"),
                    fast_start=fast,
                    startup_seconds=round(time.monotonic() - clock, 2),
                    head=Head.at(address),
                )
                on_started(info)
        except Exception as exc:
            raise ClusterStartError(f"the Ray cluster could not start: {_root_cause(exc)}") from exc
        check_joined(arguments)
        logger.info(
            "Ray cluster ready at %s in %.1f s (fast start %s)%s",
            address,
            info.startup_seconds,
            fast,
            f"; dashboard {info.dashboard_url}" if info.dashboard_url else "",
        )
        yield info
    finally:
        # A cancel arriving now (a second one, say) waits for the teardown.
        with signals.deferred("shutting down"):
            if started:
                shutdown(log_dir, fast=fast == "on", head=Head.at(address) if address else None)
            if spark is not None:
                _quietly("stopping Spark", partial(spark.stop, log_dir))
            if started:  # once the nodes have exited: each holds its lock until then
                ours = f"ray-{address.rsplit(':', 1)[1]}-" if address else ""
                leftovers = partial(remove_new_leftovers, *locks, ours)
                _quietly("removing Ray's leftovers", leftovers)


def _start_and_connect(
    session: SparkSession, arguments: dict[str, Any], namespace: str
) -> tuple[str, Any]:
    activate_in_this_thread(session)
    address, _ = setup_ray_cluster(**arguments)
    return address, ray.init(address=address, namespace=namespace, log_to_driver=False)


def shutdown(log_dir: Path, fast: bool, head: Head | None = None) -> None:
    """Disconnect and shut the cluster down; safe to call twice, never raises."""
    logger.debug("shutting the Ray cluster down")
    stop_auto_connect()
    head_gone = not _disconnected(head)
    signals.reinstall()
    with compat.fast_shutdown_if(fast), left_connected() if head_gone else nullcontext():
        _quietly("shutting the Ray cluster down", _shutdown_active_cluster)
    clear_auth()
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


def _temp_root(cluster: ClusterSettings) -> Path:
    """Where Ray's nodes on this machine keep their temp folders: the setting, else the
    start hook's default (as Ray itself chooses)."""
    if cluster.temp_root:
        return Path(cluster.temp_root)
    hook = JobStartHook() if is_in_databricks_runtime() else RayOnSparkStartHook(False)
    return Path(hook.get_default_temp_root_dir())


def _dashboard_url(address: str | None, spark: Spark) -> str:
    """The dashboard as a person reaches it: on a Databricks cluster through the
    driver proxy, elsewhere directly."""
    if not address:
        return ""
    facts = ClusterFacts.of_session(spark.session)
    if facts.cluster_id is None:
        return f"http://{address}"
    return dashboard_proxy_url(int(address.rsplit(":", 1)[1]), facts)


def _quietly(what: str, step: Any) -> None:
    try:
        step()
    except Exception:
        logger.warning("error while %s (ignored so cleanup can go on)", what, exc_info=True)


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    first_line = str(exc).strip().splitlines()[:1]
    return f"{type(exc).__name__}: {first_line[0] if first_line else ''}"
