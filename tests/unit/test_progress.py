"""A long stage's progress: a line at most every 30 s, a live line on a terminal."""

from __future__ import annotations

import logging

from rich.status import Status

from raybricks.console import _RunningStages
from raybricks.stages.progress import LINE_EVERY, Progress, is_live_only


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_line_at_most_every_30_s_and_none_in_a_stage_s_first_30(caplog):
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    progress = Progress("batch_inference", clock=clock)
    for now, done in [(0.5, 1), (10, 2), (29.9, 3), (30.1, 4), (45, 5), (60.0, 6), (61, 7)]:
        clock.now = now
        progress.report(done * 100_000, 1_000_000, "rows")
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert lines == [
        "stage batch_inference: 400,000 of 1,000,000 rows (40%)",
        "stage batch_inference: 700,000 of 1,000,000 rows (70%)",  # 30 s after 30.1
    ]
    assert LINE_EVERY == 30.0


def test_the_live_line_is_fed_at_most_once_a_second_and_always_at_the_end(caplog):
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    progress = Progress("actor_pool", clock=clock)
    for now, done in [(1.0, 1), (1.5, 2), (2.1, 3), (2.2, 6)]:
        clock.now = now
        progress.report(done, 6, "items")
    live = [r for r in caplog.records if is_live_only(r)]
    assert [(r.__dict__["done"], r.__dict__["total"]) for r in live] == [(1, 6), (3, 6), (6, 6)]
    assert {r.__dict__["stage"] for r in live} == {"actor_pool"}


def test_a_stage_s_context_names_the_stage_in_its_progress(caplog):
    caplog.set_level(logging.DEBUG)
    from raybricks.stages.base import StageContext

    ctx = StageContext("ns", "/tmp/run", "127.0.0.1:1", stage="actor_pool")  # type: ignore[arg-type]
    ctx.progress(6, 6, "items")  # the end is always said to the live line
    (record,) = caplog.records
    assert record.__dict__["stage"] == "actor_pool" and is_live_only(record)


def _record(level: int, stage: str, event: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("raybricks", level, __file__, 1, "m", (), None)
    record.__dict__.update(stage=stage, event=event, **extra)
    return record


def test_the_terminal_s_live_line_says_how_far_each_running_stage_is():
    status = Status("")
    running = _RunningStages(status)
    running.emit(_record(logging.INFO, "actor_pool", "started"))
    running.emit(_record(logging.INFO, "batch_inference", "started"))
    progress = {"done": 250_000, "total": 1_000_000, "unit": "rows"}
    running.emit(_record(logging.DEBUG, "batch_inference", "progress", **progress))
    assert str(status.status) == "running: actor_pool, batch_inference 25%, 250,000/1,000,000 rows"
    running.emit(_record(logging.INFO, "actor_pool", "ended"))
    assert str(status.status) == "running: batch_inference 25%, 250,000/1,000,000 rows"
    running.emit(_record(logging.INFO, "batch_inference", "ended"))
    status.stop()
