"""Spark tables through Ray and back, for stages: a Parquet handoff in the stage's
handoff folder, which every node sees (the run folder's `handoff/<stage>/` by default:
on Databricks a Unity Catalog volume; `data.handoff_root` puts it elsewhere). Spark
writes and Ray Data reads, or the other way round; the folder goes when the stage ends,
passed, failed or cancelled, unless `data.keep_handoff` keeps it.

    from raybricks.data import to_ray, to_spark

    def run(self, ctx, params):
        ds = to_ray(ctx.spark.table("events"))              # Spark writes, Ray reads
        scored = ds.map_batches(Scorer, compute=ray.data.ActorPoolStrategy(max_size=2))
        out = to_spark(scored)                              # Ray writes, Spark reads
        ctx.record(rows=out.count())                        # before the stage ends

A handoff is lazy on the reading side: Ray Data reads as it computes, Spark as its job
runs. Use what comes back within the stage. Ray Data's reads and writes are tasks of a
CPU each by default (`num_cpus` for `read_parquet`, `ray_remote_args` for
`write_parquet` give them less), and it lists files in a one-CPU task: an actor pool
beside them must leave a whole CPU free on some node (`raybricks.stages.batch_inference`
packs its pool for that). Ray Data can hold a few times a dataset's size in memory as
it streams (ray-project/ray#65544): choose `batch_size` with that in mind.
Open-source Ray's `ray.data.from_spark` needs RayDP (Ray 2.60's on Databricks too), so
every handoff here is Parquet; the stage's evidence says so.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray

from raybricks.stages.base import StageContext, StageFailed

if TYPE_CHECKING:
    from pyspark import SparkContext
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)

ROUTE = "parquet"
SLOT_WAIT_SECONDS = 30.0  # for a handoff's Spark job to start a task


def to_ray(df: DataFrame, **read_options: Any) -> ray.data.Dataset:
    """The Spark DataFrame `df` as a Ray Dataset: Spark writes it as Parquet into the
    running stage's handoff folder, and Ray Data reads it from there (`read_options`
    go to `ray.data.read_parquet`, e.g. `ray_remote_args={"num_cpus": 0.25}`)."""
    ctx, folder, uri = _handoff("to-ray")
    with _spark_job_that_starts(ctx, "Spark's write of the table to hand to Ray"):
        df.write.parquet(uri)
    _record(ctx, "to_ray")
    return ray.data.read_parquet(str(folder), **read_options)


def to_spark(ds: ray.data.Dataset, **write_options: Any) -> DataFrame:
    """The Ray Dataset `ds` as a Spark DataFrame of the run's session: Ray Data writes it
    (running whatever `ds` still has to compute) as Parquet into the running stage's
    handoff folder, and Spark reads it from there (`write_options` go to
    `Dataset.write_parquet`)."""
    ctx, folder, uri = _handoff("to-spark")
    ds.write_parquet(str(folder), **write_options)
    _record(ctx, "to_spark")
    return ctx.spark.read.parquet(uri)


def _handoff(direction: str) -> tuple[StageContext, Path, str]:
    """The running stage's context, and a new folder in its handoff folder: as this
    process names it, and as Spark does."""
    ctx = StageContext.current()
    if ctx.handoff is None or ctx.handoff_uri is None or ctx.spark is None:
        raise LookupError("this stage has no Spark session or handoff folder (run it in a run)")
    name = f"{direction}-{uuid.uuid4().hex[:8]}"
    return ctx, ctx.handoff / name, f"{ctx.handoff_uri}/{name}"


@contextmanager
def _spark_job_that_starts(ctx: StageContext, what: str) -> Iterator[None]:
    """Within this block, Spark's jobs of this thread are given up on (cancelled, and
    the stage failed saying why) if none of their tasks starts within
    `SLOT_WAIT_SECONDS`: Ray's worker nodes may hold every task slot Spark has."""
    context = ctx.spark.sparkContext
    group = f"raybricks-handoff-{uuid.uuid4().hex[:8]}"
    context.setJobGroup(group, f"raybricks: {what}")
    stalled = threading.Event()
    done = threading.Event()

    def watch() -> None:
        if not done.wait(SLOT_WAIT_SECONDS) and not _any_task_started(context, group):
            stalled.set()
            context.cancelJobGroup(group)

    watcher = threading.Thread(target=watch, name=group, daemon=True)
    watcher.start()
    try:
        yield
    except Exception as exc:
        if stalled.is_set():
            raise StageFailed(
                f"{what} started no task in {SLOT_WAIT_SECONDS:g} s: Ray's worker nodes hold "
                "every Spark task slot; leave Spark some (more executors or cores than "
                "max_worker_nodes x num_cpus_worker_node take)"
            ) from exc
        raise
    finally:
        done.set()
        context.setLocalProperty("spark.jobGroup.id", None)  # null: no group


def _any_task_started(context: SparkContext, group: str) -> bool:
    tracker = context.statusTracker()
    for job in tracker.getJobIdsForGroup(group):
        info = tracker.getJobInfo(job)
        for stage in info.stageIds if info else []:
            progress = tracker.getStageInfo(stage)
            if progress and progress.numActiveTasks + progress.numCompletedTasks > 0:
                return True
    return False


def _record(ctx: StageContext, direction: str) -> None:
    routes = ctx.evidence.setdefault("handoff", {"folder": str(ctx.handoff)})
    routes[direction] = ROUTE
    logger.debug("handed %s through %s in %s", direction.replace("_", " "), ROUTE, ctx.handoff)
