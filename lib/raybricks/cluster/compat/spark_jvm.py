"""What the Python driver learns from Spark's JVM through PySpark's private handles
(`SparkContext._gateway`, `_jvm`, `_jsc`). Each answers None where they are gone."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import psutil
from pyspark import SparkConf, SparkContext
from pyspark.sql import DataFrame, SparkSession


def registered_executors(context: SparkContext) -> int | None:
    """Executors registered with the driver (the driver itself not counted)."""
    try:
        return len(context._jsc.sc().statusTracker().getExecutorInfos()) - 1
    except AttributeError:
        return None


def spark_home(context: SparkContext) -> Path | None:
    """SPARK_HOME as the driver JVM (and a local cluster's workers) see it."""
    jvm: Any = getattr(context, "_jvm", None)
    home = jvm.java.lang.System.getenv("SPARK_HOME") if jvm is not None else None
    return Path(home) if home else None


def driver_jvm() -> psutil.Process | None:
    """The JVM that PySpark started for this process (None under spark-submit, which
    started the JVM first)."""
    process = getattr(getattr(SparkContext, "_gateway", None), "proc", None)
    return psutil.Process(process.pid) if process is not None else None


def end_driver_jvm() -> None:
    """End the JVM that PySpark started for this process (it exits when its stdin
    closes); the next session starts a new one."""
    gateway = getattr(SparkContext, "_gateway", None)
    process = getattr(gateway, "proc", None)
    if gateway is None or process is None:
        return
    gateway.shutdown()
    if process.stdin is not None:
        process.stdin.close()
    SparkContext._gateway = SparkContext._jvm = None


def stop_session(session: SparkSession) -> None:
    """`session.stop()`, with PySpark's accumulator server shut down after it in a thread
    of its own: the server looks for a shutdown once a second, which `SparkContext.stop`
    waits for (half a second a run, on average). Ray on Spark uses no accumulators."""
    context = session.sparkContext
    server = getattr(context, "_accumulatorServer", None)
    if server is not None:
        context._accumulatorServer = None  # type: ignore[assignment]
    session.stop()
    if server is not None:
        threading.Thread(target=server.shutdown, name="accumulator-server", daemon=True).start()


def existing_session() -> SparkSession | None:
    """The session this process already has: its thread's active one, else one made from
    the SparkContext another thread made (the platform's, in a Databricks wheel task).
    Makes no SparkContext."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if SparkContext._active_spark_context is None:
        return None
    return SparkSession.builder.getOrCreate()  # wraps the context that exists


def existing_spark_conf() -> dict[str, str] | None:
    """The conf of the Spark this process already has (a session, or the JVM spark-submit
    and Databricks start before Python), without starting one; None where there is none,
    or no SparkContext can be had (Spark Connect)."""
    session = existing_session()
    if session is not None:
        try:
            return dict(session.sparkContext.getConf().getAll())
        except Exception:  # a Spark Connect session has no SparkContext
            return None
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return None
    SparkContext._ensure_initialized()  # connects to the running JVM
    return dict(SparkConf().getAll())


def activate_in_this_thread(session: SparkSession) -> None:
    """Make `session` the active one of the calling thread too: the JVM keeps the
    active session per thread, and Ray on Spark asks for it (`getActiveSession`)."""
    jvm: Any = session.sparkContext._jvm
    with contextlib.suppress(AttributeError):  # handles moved: Ray then finds none
        jvm.SparkSession.setActiveSession(session._jsparkSession)


def estimated_bytes(frame: DataFrame) -> int | None:
    """Spark's estimate of `frame`'s size, the one it decides broadcast joins by (from
    the optimized plan's statistics; no job runs). None where Spark has no estimate: a
    plan it cannot size says Long.MaxValue, and a Spark Connect frame has no plan here."""
    try:
        size = int(frame._jdf.queryExecution().optimizedPlan().stats().sizeInBytes())
    except Exception:  # the handles moved, or a Spark Connect DataFrame
        return None
    return size if 0 <= size < 2**63 - 1 else None


def spare_task_slots(context: SparkContext) -> int | None:
    """Spark's task slots no task holds now (Ray's worker nodes each hold theirs), or
    None where Spark may grow (dynamic allocation) or its handles moved."""
    if context.getConf().get("spark.dynamicAllocation.enabled", "false").lower() == "true":
        return None
    try:
        running = sum(
            e.numRunningTasks() for e in context._jsc.sc().statusTracker().getExecutorInfos()
        )
    except AttributeError:
        return None
    return context.defaultParallelism - running
