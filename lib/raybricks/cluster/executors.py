"""Can each Spark executor's Python run raybricks? Asked by a Spark job on every task
slot while Ray's head starts, which also warms each executor's Python worker (it imports
what a worker node's task imports: about 2.5 s here, which the cluster would otherwise
wait for).

Fast start launches worker nodes with raybricks' node launcher, and the stages' actors
are raybricks' classes: where an executor cannot import raybricks (a user's multi-host
cluster, an executor environment of its own), fast start gives way to Ray's own start,
and this driver ships raybricks to Ray's workers (`runtime_env` `py_modules`).

    with executors_checked(spark_context, warm="ray.util.spark.cluster_init") as answer:
        ...
        why_not = answer.result(timeout=30)   # None: every executor can run raybricks
"""

from __future__ import annotations

import concurrent.futures
import importlib
import importlib.util
import logging
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager

from pyspark import SparkContext

from raybricks.cluster import node_launcher
from raybricks.errors import root_cause

logger = logging.getLogger(__name__)

JOIN_SECONDS = 10.0  # for the check's thread, once its job is cancelled

Check = Callable[[Iterable[int]], Iterator[tuple[str, str, str | None]]]


@contextmanager
def executors_checked(context: SparkContext, warm: str) -> Iterator[Future[str | None]]:
    """Within this block a Spark job on every task slot answers: why an executor cannot
    run raybricks, or None. Each imports `warm` as it answers. On exit the job is
    cancelled if it still runs (on a busy cluster it may queue behind others)."""
    answer: Future[str | None] = Future()
    group = f"raybricks-check-{uuid.uuid4().hex[:8]}"
    checking = threading.Thread(
        target=_check, args=(context, group, warm, answer), name=group, daemon=True
    )
    checking.start()
    try:
        yield answer
    finally:
        if checking.is_alive():
            context.cancelJobGroup(group)
        checking.join(JOIN_SECONDS)


def _check(context: SparkContext, group: str, warm: str, answer: Future[str | None]) -> None:
    slots = context.defaultParallelism
    clock = time.monotonic()
    try:
        context.setJobGroup(group, "raybricks: can each executor run raybricks?")
        found = context.parallelize(range(slots), slots).mapPartitions(launcher_check(warm))
        unable = [answer for answer in found.collect() if answer[2] is not None]
    except Exception as exc:
        answer.set_result(f"the executors' check failed: {root_cause(exc)}")
        return
    if unable:
        host, python, problem = unable[0]
        answer.set_result(f"executor {host} cannot import raybricks ({python}: {problem})")
        return
    answer.set_result(None)
    logger.debug(
        "every executor can run raybricks (%d task slots, warmed in %.1f s)",
        slots,
        time.monotonic() - clock,
    )


def launcher_check(warm: str, launcher: str = node_launcher.__name__) -> Check:
    """The check's task: whether this Python finds `launcher` (host, Python, problem or
    None), and, where it does, `warm` imported. A closure, so pickled by value: it runs
    where raybricks is missing."""

    def check(_: Iterable[int]) -> Iterator[tuple[str, str, str | None]]:
        try:
            problem = None if importlib.util.find_spec(launcher) else f"no module {launcher}"
        except ImportError as exc:  # a parent package missing
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            importlib.import_module(warm)
        yield socket.gethostname(), sys.executable, problem

    return check


def settled(answer: Future[str | None], seconds: float) -> str | None:
    """The check's answer, waited for up to `seconds`; None (go on as if every executor
    could) when it has not come."""
    try:
        return answer.result(timeout=seconds)
    except concurrent.futures.TimeoutError:  # not the built-in one before Python 3.11
        logger.debug("the executors' check did not answer in %.0f s: going on", seconds)
        return None
