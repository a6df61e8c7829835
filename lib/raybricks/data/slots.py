"""A Spark job of a handoff that never starts: Ray's worker nodes may hold every task
slot Spark has. Such a job is cancelled after a wait, and the stage fails saying why."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark import SparkContext

from raybricks.stages.base import StageFailed

SLOT_WAIT_SECONDS = 30.0  # for a handoff's Spark job to start a task


@contextmanager
def spark_job_that_starts(context: SparkContext, what: str) -> Iterator[None]:
    """Within this block, Spark's jobs of this thread are given up on (cancelled, and
    the stage failed saying why) if none of their tasks starts within
    `SLOT_WAIT_SECONDS`."""
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
        context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]  # null: no group


def _any_task_started(context: SparkContext, group: str) -> bool:
    tracker = context.statusTracker()
    for job in tracker.getJobIdsForGroup(group):
        info = tracker.getJobInfo(job)
        for stage in info.stageIds if info else []:
            progress = tracker.getStageInfo(stage)
            if progress and progress.numActiveTasks + progress.numCompletedTasks > 0:
                return True
    return False
