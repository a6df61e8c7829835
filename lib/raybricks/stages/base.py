"""What a stage is: a named pattern with typed parameters that proves itself.

A stage records what it measured with `ctx.record(...)` as it goes, so evidence
survives a failure, and raises `StageFailed` (via `expect`) when the pattern does not
behave as the lesson says. It waits with `ctx.wait(seconds)`, never `time.sleep`, so a
cancelled or timed-out run can stop it between Ray calls: disconnecting from Ray while
a stage is inside a Ray call ends the whole process. Stages know nothing of the runner
or the CLI.
"""

from __future__ import annotations

import contextvars
import shutil
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from raybricks.stages.progress import Progress


class StageFailed(Exception):
    """The pattern did not behave as the lesson says it does."""


class StageSkipped(Exception):
    """The stage cannot run on this cluster (a GPU stage where there is no GPU): it is
    recorded as skipped, saying why, and does not fail the run."""


class StageStopped(Exception):
    """The run asked the stage to stop (cancelled, or past its timeout)."""


def expect(condition: bool, message: str) -> None:
    """Fail the stage with `message` unless `condition` holds."""
    if not condition:
        raise StageFailed(message)


def side_by_side(*parts: Callable[[], None]) -> None:
    """Run independent parts of a stage at once, each in a thread; once all have ended,
    raise the first one's error, if any."""
    with ThreadPoolExecutor(len(parts), thread_name_prefix="stage-part") as pool:
        # Each part sees the stage's context (`StageContext.current`), as its thread does.
        ended = [pool.submit(contextvars.copy_context().run, part) for part in parts]
    for part in ended:
        part.result()


class StageParams(BaseModel):
    """Base of every stage's parameters: unknown keys are typos, so they are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class StageContext:
    """What a stage gets from the run: where it is, the run's SparkSession (`spark`), a
    folder of its own for handing Spark data to Ray and back (`handoff`, as this process
    names it, and `handoff_uri`, as Spark does; see `raybricks.data`), and where its
    evidence goes."""

    namespace: str
    run_dir: Path
    ray_address: str
    spark: Any = None  # a pyspark.sql.SparkSession: the stage API itself imports no Spark
    handoff: Path | None = None  # made when first used; removed as the stage ends
    handoff_uri: str | None = None
    keep_handoff: bool = False
    handoff_route: str = "auto"  # raybricks.data's route: auto, arrow, parquet, databricks
    # The largest table the arrow route takes, each way (data.*_arrow_max_mb).
    to_ray_arrow_max_bytes: int = 128 * 1024 * 1024
    to_spark_arrow_max_bytes: int = 4 * 1024 * 1024
    evidence: dict[str, Any] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    stage: str = ""  # its name, for its progress lines
    _progress: Progress = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._progress = Progress(self.stage)  # its clock starts with the stage

    def record(self, **values: Any) -> None:
        self.evidence.update(values)

    def progress(self, done: int, total: int, unit: str) -> None:
        """How far the stage is (`done` of `total` `unit`s), for the console: a line at
        most every 30 s, a live line on a terminal. Call it as often as work is done."""
        self._progress.report(done, total, unit)

    def wait(self, seconds: float) -> None:
        """Sleep, unless the run asks the stage to stop: then raise `StageStopped`."""
        if self.stop.wait(seconds):
            raise StageStopped("asked to stop")

    @contextmanager
    def current_here(self) -> Iterator[StageContext]:
        """Within this block (in this thread, and the parts `side_by_side` runs),
        `StageContext.current()` is this context."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    @staticmethod
    def current() -> StageContext:
        """The context of the stage this code runs for; LookupError outside a stage."""
        context = _current.get(None)
        if context is None:
            raise LookupError("no stage is running here: call this from a stage's run()")
        return context

    def close(self) -> None:
        """The stage has ended: its handoff folder goes, unless kept for debugging."""
        if self.handoff is not None and not self.keep_handoff:
            shutil.rmtree(self.handoff, ignore_errors=True)


_current: contextvars.ContextVar[StageContext] = contextvars.ContextVar("raybricks_stage")


P = TypeVar("P", bound=StageParams)


class Stage(ABC, Generic[P]):
    """A pattern that proves itself. Its name is the one it is registered under."""

    summary: ClassVar[str]  # one line for `raybricks stages`
    Params: ClassVar[type[StageParams]] = StageParams

    @abstractmethod
    def run(self, ctx: StageContext, params: P) -> None:
        """Run the pattern on the connected Ray cluster; clean up every actor made."""

    @staticmethod
    def headline(evidence: dict[str, Any]) -> str:
        """What the stage proved, in one line built from its evidence (the report and the
        console show it). Called only for a stage that passed."""
        return ""
