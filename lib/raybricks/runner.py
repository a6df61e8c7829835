"""Runs the selected stages in order, times each, and keeps what each proved.

A failing stage is recorded and the next one still runs. Results start out as
`skipped`, so whatever stops the run, the report lists every selected stage truthfully.

Each stage runs in its own thread while the main thread waits for it, for two reasons:
a stage that hangs can be given up on after its timeout, and a signal handler that
raises (cancellation) does so in the main thread's plain-Python wait, never inside
Ray's compiled calls, which turn such an exception into a `SystemError`. Either way the
stage is then asked to stop and given a grace period to leave Ray and clean up: the
cluster must not be disconnected while a stage thread is inside a Ray call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from raybricks.report import StageResult
from raybricks.stages import STAGES
from raybricks.stages.base import StageContext, StageFailed

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 15.0  # for a stopped stage to leave Ray and kill its actors


class Runner:
    def __init__(
        self,
        names: list[str],
        params_for: Callable[[str], Any],
        timeout_seconds: float | None = None,
        worker_nodes: Callable[[], set[str]] = set,
    ) -> None:
        """`worker_nodes` gives the cluster's live worker nodes: any lost or joined
        during a stage are logged and recorded in its evidence."""
        self.params_for = params_for
        self.timeout_seconds = timeout_seconds
        self.worker_nodes = worker_nodes
        self.results = [StageResult(name) for name in names]

    @property
    def passed(self) -> bool:
        return all(result.status == "passed" for result in self.results)

    def run(self, make_context: Callable[[], StageContext]) -> list[StageResult]:
        for number, result in enumerate(self.results, 1):
            logger.debug("stage %d/%d %s: started", number, len(self.results), result.name)
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
        params = self.params_for(result.name)
        failure: list[BaseException] = []

        def body() -> None:
            try:
                stage.run(ctx, params)
            except BaseException as exc:
                failure.append(exc)

        nodes_before = self.worker_nodes()
        clock = time.monotonic()
        worker = threading.Thread(target=body, name=f"stage-{result.name}", daemon=True)
        try:
            worker.start()
            worker.join(self.timeout_seconds)
        except BaseException as exc:  # cancelled while waiting: record how far it got
            result.status, result.error = "failed", f"interrupted ({exc})"
            _stop(worker, ctx, result.name)
            raise
        finally:
            result.seconds = round(time.monotonic() - clock, 2)
            result.evidence = dict(ctx.evidence)
            self._record_node_changes(result, nodes_before)
        if worker.is_alive():
            result.status = "failed"
            result.error = f"timed out after {self.timeout_seconds:g} s"
            logger.error("stage %s %s", result.name, result.error)
            _stop(worker, ctx, result.name)
        elif not failure:
            result.status = "passed"
        else:
            self._record_failure(result, failure[0])

    def _record_node_changes(self, result: StageResult, before: set[str]) -> None:
        after = self.worker_nodes()
        for change, nodes in (("lost", before - after), ("joined", after - before)):
            if nodes:
                logger.warning("stage %s: worker nodes %s: %s", result.name, change, sorted(nodes))
                result.evidence[f"worker_nodes_{change}"] = sorted(nodes)

    @staticmethod
    def _record_failure(result: StageResult, exc: BaseException) -> None:
        result.status = "failed"
        if isinstance(exc, StageFailed):
            result.error = str(exc)
            logger.error("stage %s failed: %s", result.name, exc, exc_info=exc)
        else:
            result.error = f"{type(exc).__name__}: {exc}"
            logger.error("stage %s raised", result.name, exc_info=exc)


def _stop(worker: threading.Thread, ctx: StageContext, name: str) -> None:
    """Ask a stage to stop and wait a bounded time for it to leave Ray."""
    ctx.stop.set()
    worker.join(STOP_GRACE_SECONDS)
    if worker.is_alive():
        logger.warning("stage %s did not stop within %.0f s", name, STOP_GRACE_SECONDS)
