"""Runs the selected stages in order, times each, and keeps what each proved.

A failing stage is recorded and the next one still runs. Results start out as
`skipped`, so whatever stops the run, the report lists every selected stage truthfully.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from raybricks.report import StageResult
from raybricks.stages import STAGES
from raybricks.stages.base import StageContext, StageFailed

logger = logging.getLogger(__name__)


class Runner:
    def __init__(self, names: list[str], params_for: Callable[[str], Any]) -> None:
        self.names = names
        self.params_for = params_for
        self.results = [StageResult(name) for name in names]

    @property
    def passed(self) -> bool:
        return all(result.status == "passed" for result in self.results)

    def run(self, make_context: Callable[[], StageContext]) -> list[StageResult]:
        for number, result in enumerate(self.results, 1):
            self._run_one(result, make_context())
            logger.info(
                "stage %d/%d %s: %s in %.1f s%s",
                number,
                len(self.results),
                result.name,
                result.status,
                result.seconds,
                f" ({result.error})" if result.error else "",
            )
        return self.results

    def _run_one(self, result: StageResult, ctx: StageContext) -> None:
        stage = STAGES[result.name]()
        clock = time.monotonic()
        try:
            stage.run(ctx, self.params_for(result.name))
            result.status = "passed"
        except StageFailed as exc:
            result.status, result.error = "failed", str(exc)
            logger.error("stage %s failed: %s", result.name, exc, exc_info=True)
        except Exception as exc:
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
            logger.exception("stage %s raised", result.name)
        except BaseException as exc:  # cancelled: record how far it got, then stop
            result.status, result.error = "failed", f"interrupted ({exc})"
            raise
        finally:
            result.seconds = round(time.monotonic() - clock, 2)
            result.evidence = ctx.evidence
