"""The SparkSession a run uses: the active one (Databricks, spark-submit), else a local
one that raybricks starts itself, bound to loopback.

    spark = get_or_create_spark("local-cluster[2,1,1024]")
    ...  # spark.session
    spark.stop()   # stops it only if it was started here
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass

from pyspark import SparkContext
from pyspark.sql import SparkSession

from raybricks.jvm_archive import DriverArchive, driver_archive

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# A local Spark is only a host for Ray: its JVMs run little code for long, so the
# quick first-tier JIT alone starts them in about half the time (13 s -> 7 s here).
QUICK_START_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
JVM_EXIT_SECONDS = 60.0  # for a training JVM to write its class archive and exit
EXECUTORS_SECONDS = 30.0  # as Spark's own spark.scheduler.maxRegisteredResourcesWaitingTime
_LOCAL_CLUSTER = re.compile(r"local-cluster\[(\d+),\s*(\d+),\s*\d+\]")


@dataclass
class Spark:
    """A run's Spark session, whether this run started it, and the class archive of
    the driver JVM it started (if any)."""

    session: SparkSession
    started_here: bool
    archive: DriverArchive | None = None

    def stop(self) -> None:
        """Stop Spark if this run started it. A run that trained the class archive
        also ends the driver JVM, which writes the archive as it exits."""
        if not self.started_here:
            return
        self.session.stop()
        if self.archive is not None and self.archive.training:
            self.archive.keep(_end_driver_jvm())


def launched_by_spark_submit() -> bool:
    # spark-submit starts the JVM first and hands its gateway port to the Python driver.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_or_create_spark(master: str, class_archive: bool = True) -> Spark:
    """The session to use. `master` applies only to a session created here from nothing
    (a spark-submit launch keeps its own `--master`); so does `class_archive`."""
    active = SparkSession.getActiveSession()
    if active is not None:
        logger.info("using the active Spark session (master %s)", active.sparkContext.master)
        return Spark(active, started_here=False)
    if launched_by_spark_submit():
        spark = SparkSession.builder.appName("raybricks").getOrCreate()
        logger.info("using spark-submit's Spark (master %s)", spark.sparkContext.master)
        return Spark(spark, started_here=True)
    archive = driver_archive(QUICK_START_JVM) if class_archive else None
    driver_jvm = f"{QUICK_START_JVM} {archive.java_options()}" if archive else QUICK_START_JVM
    logger.info(
        "starting a local Spark (master %s) on %s%s",
        master,
        LOOPBACK,
        " (training its JVM's class archive)" if archive and archive.training else "",
    )
    os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # executors run our venv
    spark = (
        SparkSession.builder.master(master)
        .appName("raybricks")
        .config("spark.driver.host", LOOPBACK)
        .config("spark.driver.bindAddress", LOOPBACK)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.executorEnv.SPARK_LOCAL_IP", LOOPBACK)
        .config("spark.driver.extraJavaOptions", driver_jvm)
        .config("spark.executor.extraJavaOptions", QUICK_START_JVM)
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    _wait_for_executors(spark.sparkContext, master)
    return Spark(spark, started_here=True, archive=archive)


def local_cluster_shape(master: str) -> tuple[int, int] | None:
    """`(workers, cores per worker)` of a `local-cluster[W,C,MB]` master, else None."""
    match = _LOCAL_CLUSTER.fullmatch(master)
    return (int(match[1]), int(match[2])) if match else None


def _wait_for_executors(context: SparkContext, master: str) -> None:
    """A local cluster's executors register after the context is up; Ray on Spark needs
    them all, so Spark is ready once they are (or after Spark's own limit)."""
    shape = local_cluster_shape(master)
    if shape is None:
        return
    deadline = time.monotonic() + EXECUTORS_SECONDS
    # the status tracker lists the driver too
    while len(context._jsc.sc().statusTracker().getExecutorInfos()) <= shape[0]:
        if time.monotonic() > deadline:
            logger.warning(
                "not all %d Spark executors registered in %.0f s", shape[0], EXECUTORS_SECONDS
            )
            return
        time.sleep(0.05)


def _end_driver_jvm() -> int | None:
    """End the JVM that PySpark started for this process (it exits when its stdin
    closes) and wait for it; its exit code. The next session starts a new one."""
    gateway = SparkContext._gateway
    process = getattr(gateway, "proc", None)
    if gateway is None or process is None:
        return None
    gateway.shutdown()
    if process.stdin is not None:
        process.stdin.close()
    SparkContext._gateway = SparkContext._jvm = None
    try:
        return int(process.wait(JVM_EXIT_SECONDS))
    except subprocess.TimeoutExpired:
        logger.warning("Spark's driver JVM did not exit within %.0f s", JVM_EXIT_SECONDS)
        return None


def put_interpreter_on_path(spark: SparkSession) -> None:
    """Ray on Spark starts nodes with `shutil.which("ray")`: without an activated venv
    that finds nothing (or another Ray). Put this interpreter's bin folder first on the
    PATH of the driver and of every Spark task."""
    bin_dir = os.path.dirname(sys.executable)
    task_env = spark.sparkContext.environment
    task_env["PATH"] = _prepend(bin_dir, task_env.get("PATH") or os.environ.get("PATH", ""))
    os.environ["PATH"] = _prepend(bin_dir, os.environ.get("PATH", ""))


def _prepend(folder: str, path: str) -> str:
    parts = [part for part in path.split(os.pathsep) if part and part != folder]
    return os.pathsep.join([folder, *parts])
