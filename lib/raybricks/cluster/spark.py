"""The SparkSession a run uses: the one this process has (the platform's on Databricks),
else one made from spark-submit's conf, else a local one that raybricks starts itself,
bound to loopback. Spark belongs to whoever made it: raybricks stops only a session it
made, and never the platform's on Databricks.

    spark = get_or_create_spark(platform, settings.cluster)
    ...  # spark.session
    spark.stop(run_dir)   # stops it only if it was made here
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

from raybricks.cluster.arguments import LOOPBACK
from raybricks.cluster.compat.spark_jvm import (
    driver_jvm,
    end_driver_jvm,
    existing_session,
    registered_executors,
    spark_home,
    stop_session,
)
from raybricks.cluster.gpus import discovery_script, spark_gpu_conf
from raybricks.cluster.jvm_archive import KINDS, ClassArchives, class_archives, trained
from raybricks.data.routes import arrow_unavailable
from raybricks.platform import Platform
from raybricks.platform.master import SparkMaster, spark_master
from raybricks.settings import ClusterSettings

logger = logging.getLogger(__name__)

# A local Spark is only a host for Ray: its JVMs run little code for long, so the
# quick first-tier JIT alone starts them in about half the time (13 s -> 7 s here).
QUICK_START_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
# Nothing in /tmp that a JVM killed outright would leave there: no monitoring file
# (hsperfdata, for jps), and Java's own sockets, as Netty's native ones (Spark 4.1's
# default) are a library each JVM writes there as it starts. Netty's switch, not Spark's:
# an executor connects to the driver before the driver's conf reaches it, and Spark
# refuses its options among the executors' Java options.
NOTHING_IN_TMP = "-XX:-UsePerfData -Dio.netty.transport.noNative=true"
LOCAL_SPARK_JVM = f"{QUICK_START_JVM} {NOTHING_IN_TMP}"  # every JVM of a Spark started here
JVM_EXIT_SECONDS = 60.0  # for a training JVM to write its class archive and exit
EXECUTORS_SECONDS = 30.0  # as Spark's own spark.scheduler.maxRegisteredResourcesWaitingTime
# A row of each kind of column a run hands between Spark and Ray. The struct's fields are
# nullable, as a table's are: Spark 4.2 fails to make a DataFrame of an Arrow table whose
# struct of non-null fields holds a timestamp (a literal struct's fields are non-null).
TRAINING_TABLE = """select id, timestamp'2026-01-01 00:00:00' as at,
    timestamp_ntz'2026-01-01 00:00:00' as local_at, date'2026-01-01' as day,
    cast(id as decimal(38, 18)) as amount, cast(id as decimal(10, 2)) as price,
    cast('x' as binary) as blob, array('a', null) as tags, map('w', 1.5d) as weights,
    cast(named_struct('name', 'n', 'at', timestamp'2026-01-01 00:00:00')
        as struct<name: string, at: timestamp>) as nested,
    cast(id as double) as ratio, cast(id as float) as small, 'text' as text, true as flag,
    cast(id as tinyint) as tiny, cast(id as smallint) as short, cast(id as int) as count
    from range(4)"""
PYTHON_DAEMON = "raybricks.cluster.python_daemon"  # its executors run this venv
EXECUTOR_LOGS = "spark-executors"  # in the run folder: a local cluster's executors' output


@dataclass
class Spark:
    """A run's Spark session, whether this run started it, and the class archives of
    the JVMs it started (if any)."""

    session: SparkSession
    started_here: bool
    archives: ClassArchives | None = None
    master: SparkMaster = field(init=False)  # the master Spark reports, parsed once

    def __post_init__(self) -> None:
        self.master = spark_master(str(self.session.sparkContext.master))

    def stop(self, log_dir: Path | None = None) -> None:
        """Stop Spark if this run started it. A local cluster's executors write their
        output (a worker node's `ray start` among it) under Spark's own install: it
        moves to `log_dir`. A run that trained class archives also ends the driver JVM,
        waits for the JVMs to write their archives as they exit, and keeps those that map."""
        if not self.started_here:
            return
        executor_logs = local_executor_logs(self.session.sparkContext, self.master)
        self._stop_jvms()
        if executor_logs is not None and log_dir is not None and executor_logs.is_dir():
            shutil.move(executor_logs, log_dir / EXECUTOR_LOGS)

    def _stop_jvms(self) -> None:
        if self.archives is None or not self.archives.training:
            stop_session(self.session)
            return
        jvms = jvm_processes(self.session.sparkContext)
        commands = {kind: processes[0].cmdline() for kind, processes in jvms.items() if processes}
        stop_session(self.session)
        end_driver_jvm()
        psutil.wait_procs([p for processes in jvms.values() for p in processes], JVM_EXIT_SECONDS)
        self.archives.keep(commands)


def train_class_archives(cluster: ClusterSettings, temp_root: Path) -> bool:
    """Start the local Spark that `cluster` asks for, run a job on every executor and
    stop it, so that its JVMs write their class archives: what a first run would do at
    its end. Whether every kind of JVM has its archive now."""
    master = spark_master(cluster.spark_master)
    spark = _start_local(master, cluster, temp_root)
    try:
        _what_a_run_does(spark.session, temp_root)
    finally:
        spark.stop()
    return trained(LOCAL_SPARK_JVM)


def _what_a_run_does(session: SparkSession, temp_root: Path) -> None:
    """What a run's Spark does (a job on every executor; a table of every kind of column
    to Arrow and back, to Parquet and back), so that the archives hold the classes it
    loads and a run's first hand-over does not load them anew."""
    slots = session.sparkContext.defaultParallelism
    session.sparkContext.parallelize(range(slots), slots).count()
    table = session.sql(TRAINING_TABLE).repartition(slots)
    if arrow_unavailable() is None:
        session.createDataFrame(table.toArrow(), table.schema).count()
    folder = f"file://{temp_root / 'class-archive-training'}"
    table.write.parquet(folder)
    session.read.schema(table.schema).parquet(folder).collect()


def get_or_create_spark(platform: Platform, cluster: ClusterSettings) -> Spark:
    """The session to use. A local Spark starts on the platform's master, as `cluster`
    says (its JVMs' class archives, its workers' GPUs); spark-submit's keeps its own
    `--master`."""
    existing = existing_session()
    if existing is not None:
        logger.debug("using this process's Spark session (master %s)", existing.sparkContext.master)
        return Spark(existing, started_here=False)
    if platform.spark_master is None:
        _executors_find_the_interpreter()
        builder = SparkSession.builder.appName("raybricks")
        if _no_log_level_asked(SparkConf()):  # spark-submit's conf, as its JVM holds it
            builder = builder.config("spark.log.level", "WARN")
        session = builder.getOrCreate()
        logger.debug(
            "made a session from spark-submit's conf (master %s)", session.sparkContext.master
        )
        return Spark(session, started_here=not platform.on_databricks)
    return _start_local(platform.spark_master, cluster, platform.temp_root)


def _start_local(master: SparkMaster, cluster: ClusterSettings, temp_root: Path) -> Spark:
    sets_kept = cluster.spark_class_archive_sets_kept
    archives = class_archives(LOCAL_SPARK_JVM, sets_kept) if cluster.spark_class_archive else None
    archive = {kind: archives.java_options(kind) if archives else "" for kind in KINDS}
    jvm = {kind: f"{LOCAL_SPARK_JVM} {archive[kind]}" for kind in KINDS}
    logger.debug(
        "starting a local Spark (master %s) on %s%s",
        master.url,
        LOOPBACK,
        " (training its JVMs' class archives)" if archives and archives.training else "",
    )
    os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # executors run our venv
    builder = (
        SparkSession.builder.master(master.url)
        .appName("raybricks")
        .config("spark.driver.host", LOOPBACK)
        .config("spark.driver.bindAddress", LOOPBACK)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.executorEnv.SPARK_LOCAL_IP", LOOPBACK)
        .config("spark.driver.extraJavaOptions", jvm["driver"])
        .config("spark.executor.extraJavaOptions", jvm["executor"])
    )
    if master.is_local:  # its executors run this virtualenv, raybricks installed
        builder = builder.config("spark.python.daemon.module", PYTHON_DAEMON)
    with _worker_gpus(cluster, master, temp_root) as gpu_conf:
        for key, value in gpu_conf.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("WARN")
        _wait_for_executors(spark.sparkContext, master)  # each worker found its GPUs
    return Spark(spark, started_here=True, archives=archives)


@contextmanager
def _worker_gpus(
    cluster: ClusterSettings, master: SparkMaster, temp_root: Path
) -> Iterator[dict[str, str]]:
    """Spark conf giving each worker `cluster.spark_worker_gpus` GPUs (none: no conf)."""
    if not cluster.spark_worker_gpus:
        yield {}
        return
    per_worker, workers = cluster.spark_worker_gpus, master.workers or 1
    with discovery_script(cluster.gpu_discovery, per_worker, workers, temp_root) as script:
        yield spark_gpu_conf(per_worker, script)


def _no_log_level_asked(conf: SparkConf) -> bool:
    """Whether the user left Spark's log level alone (no `spark.log.level`, no log4j
    configuration of their own): then Spark's INFO log (hundreds of lines a run) is off."""
    java_options = conf.get("spark.driver.extraJavaOptions") or ""
    conf_dir = os.environ.get("SPARK_CONF_DIR")
    own_log4j = "log4j" in java_options or bool(conf_dir and list(Path(conf_dir).glob("log4j2.*")))
    return conf.get("spark.log.level") is None and not own_log4j


def _executors_find_the_interpreter() -> None:
    """`PYSPARK_PYTHON=.venv/bin/python spark-submit ...` names the executors' Python
    relative to this folder, where an executor (in a folder of its own) finds nothing:
    made absolute before the SparkContext hands it on."""
    python = os.environ.get("PYSPARK_PYTHON")
    if python and os.sep in python and not os.path.isabs(python) and os.path.exists(python):
        os.environ["PYSPARK_PYTHON"] = os.path.abspath(python)


def local_executor_logs(context: SparkContext, master: SparkMaster) -> Path | None:
    """Where a local cluster's executors write their stdout and stderr, a folder per
    executor: `$SPARK_HOME/work/<app id>`, as the driver JVM's workers see it."""
    if master.workers is None:
        return None
    home = spark_home(context)
    return home / "work" / context.applicationId if home else None


def _wait_for_executors(context: SparkContext, master: SparkMaster) -> None:
    """A local cluster's executors register after the context is up; Ray on Spark needs
    them all, so Spark is ready once they are (or after Spark's own limit)."""
    workers = master.workers
    if workers is None:
        return
    deadline = time.monotonic() + EXECUTORS_SECONDS
    while (registered_executors(context) or 0) < workers:
        if time.monotonic() > deadline:
            logger.warning(
                "not all %d Spark executors registered in %.0f s", workers, EXECUTORS_SECONDS
            )
            return
        time.sleep(0.05)


def jvm_processes(context: SparkContext) -> dict[str, list[psutil.Process]]:
    """This Spark's JVM processes by kind: the driver PySpark started, the executors.
    An executor is this Spark's if it names this driver's address and application: two
    local clusters started in the same second have the same application id."""
    driver = [jvm] if (jvm := driver_jvm()) is not None else []
    conf = context.getConf()
    address = f"{conf.get('spark.driver.host')}:{conf.get('spark.driver.port')}"
    ours = [
        ["--driver-url", f"spark://CoarseGrainedScheduler@{address}"],
        ["--app-id", context.applicationId],
    ]
    executors = [
        p
        for p in psutil.process_iter(["cmdline"])
        if "org.apache.spark.executor.CoarseGrainedExecutorBackend" in (p.info["cmdline"] or [])
        and all(_holds(p.info["cmdline"], part) for part in ours)
    ]
    return {"driver": driver, "executor": executors}


def _holds(command: list[str], part: list[str]) -> bool:
    return any(command[i : i + len(part)] == part for i in range(len(command)))


def put_interpreter_on_path(spark: SparkSession) -> Callable[[], None]:
    """Ray on Spark starts nodes with `shutil.which("ray")`: without an activated venv
    that finds nothing (or another Ray). Put this interpreter's bin folder first on the
    PATH of the driver and of every Spark task; the returned call puts the Spark tasks'
    back as they were (the session may be the platform's, used after the run)."""
    bin_dir = os.path.dirname(sys.executable)
    task_env = spark.sparkContext.environment
    before = task_env.get("PATH")
    task_env["PATH"] = _prepend(bin_dir, before or os.environ.get("PATH", ""))
    os.environ["PATH"] = _prepend(bin_dir, os.environ.get("PATH", ""))

    def restore() -> None:
        if before is None:
            task_env.pop("PATH", None)
        else:
            task_env["PATH"] = before

    return restore


def _prepend(folder: str, path: str) -> str:
    parts = [part for part in path.split(os.pathsep) if part and part != folder]
    return os.pathsep.join([folder, *parts])
