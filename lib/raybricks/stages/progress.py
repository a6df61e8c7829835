"""How far a long stage is, said as log records the entrypoint's console shows: a line
at most every 30 s (a Databricks job's log, a pipe), and a live line on a terminal fed
by quieter records at most once a second. Nothing is said in a stage's first 30 s, so
a short stage prints no progress line at all."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

LINE_EVERY = 30.0  # seconds between a stage's progress lines
LIVE_EVERY = 1.0  # seconds between the live line's updates

EVENT = "progress"  # the records' `event`, beside `stage`, `done`, `total` and `unit`


@dataclass
class Progress:
    """One stage's progress, throttled as the module says."""

    stage: str
    clock: Callable[[], float] = time.monotonic
    last_line: float = field(init=False)  # the stage's start, until a line is said
    last_live: float = float("-inf")

    def __post_init__(self) -> None:
        self.last_line = self.clock()

    def report(self, done: int, total: int, unit: str) -> None:
        now = self.clock()
        if now - self.last_line >= LINE_EVERY:
            self.last_line = self.last_live = now
            level = logging.INFO
        elif now - self.last_live >= LIVE_EVERY or done >= total:
            self.last_live = now
            level = logging.DEBUG
        else:
            return
        share = f" ({100 * done // total}%)" if total > 0 else ""
        extra = {"stage": self.stage, "event": EVENT, "done": done, "total": total, "unit": unit}
        logger.log(
            level,
            "stage %s: %s of %s %s%s",
            self.stage,
            f"{done:,}",
            f"{total:,}",
            unit,
            share,
            extra=extra,
        )


def is_live_only(record: logging.LogRecord) -> bool:
    """A progress record meant for a terminal's live line alone."""
    return getattr(record, "event", None) == EVENT and record.levelno < logging.INFO
