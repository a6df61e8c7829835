"""Runs the selected stages, times each, and keeps what each proved.

Stages start in the order given, up to `parallel` at once (1: one after another). A
failing stage is recorded and the others still run. Results start out as `skipped`,
so whatever stops the run, the report lists every selected stage truthfully.

Each stage runs in its own thread while the main thread waits for them, for three
reasons: a stage that hangs can be given up on after its timeout; a signal handler
that raises (cancellation) does so in the main thread's plain-Python wait, never inside
Ray's compiled calls, which turn such an exception into a `SystemError`; and the wait
looks every second whether the cluster's head still runs, since calls into a cluster
without one hang until Ray ends the process a minute later. Either way the stage is
then asked to stop and given a grace period to leave Ray and clean up: the cluster
must not be disconnected while a stage thread is inside a Ray call.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ray import exceptions as ray_errors

from raybricks.cluster import signals
from raybricks.cluster.head import CHECK_SECONDS, Head
from raybricks.errors import ClusterLost
from raybricks.report.model import StageResult, StageStatus
from raybricks.stages.base import Stage, StageContext, StageFailed, StageSkipped

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 15.0  # for a stopped stage to leave Ray and kill its actors
HEADLESS_GRACE_SECONDS = 1.0
# Ray marks a lost node dead once its health checks have missed, seconds after its
# actors became unreachable: a stage failing for want of one waits for that, this long.
NODE_TABLE_CATCH_UP_SECONDS = 30.0
NODE_TROUBLE = (
    ray_errors.ActorUnavailableError,
    ray_errors.ActorDiedError,
    ray_errors.NodeDiedError,
    ray_errors.WorkerCrashedError,
    ray_errors.ObjectLostError,
)


@dataclass(eq=False)
class _Running:
    """One stage in its thread."""

    number: int
    result: StageResult
    pattern: Stage
    ctx: StageContext
    thread: threading.Thread
    nodes_before: set[str]
    deadline: float
    clock: float = field(default_factory=time.monotonic)
    failure: list[BaseException] = field(default_factory=list)


class Runner:
    def __init__(
        self,
        stages: Iterable[tuple[str, type[Stage]]],
        params_for: Callable[[str], Any],
        timeout_seconds: float | None = None,
        worker_nodes: Callable[[], set[str]] = set,
        parallel: int = 1,
        autoscaling: bool = False,
        on_stage_end: Callable[[], None] = lambda: None,
        on_stage_said: Callable[[], None] = lambda: None,
        clock: float | None = None,
    ) -> None:
        """`stages`: the selected stages, (name, class) in order. `worker_nodes` gives the
        cluster's live worker nodes: any lost or joined while a stage runs are logged
        and recorded in its evidence: as a fault, unless the cluster `autoscaling`.
        `on_stage_end` is called as each stage's result is recorded, before its end is
        logged, and `on_stage_said` after (their errors are logged: a stage's result
        stands). `clock`: the run's start (monotonic), from
        which stages' start times count (default: now)."""
        self.stages = list(stages)
        self.params_for = params_for
        self.timeout_seconds = timeout_seconds
        self.worker_nodes = worker_nodes
        self.parallel = parallel
        self.node_change_level = logging.INFO if autoscaling else logging.WARNING
        self.on_stage_end, self.on_stage_said = on_stage_end, on_stage_said
        self.results = [StageResult(name) for name, _ in self.stages]
        self.head: Head | None = None
        self.clock = clock or time.monotonic()  # the run's start, for each stage's start
        self.node_counts: list[list[float]] = []  # [seconds since the start, live nodes]

    @property
    def passed(self) -> bool:
        """Every stage passed, or found it cannot run on this cluster."""
        return all(r.status == "passed" or r.reason is not None for r in self.results)

    def run(
        self,
        make_context: Callable[[str], StageContext],
        head: Head | None = None,
    ) -> list[StageResult]:
        """Run the stages, each with `make_context(its name)`; raises `ClusterLost` once
        the cluster's `head` has gone (the stages running then are failed and stopped)."""
        self.head = head
        waiting = list(enumerate(self.results, 1))
        running: list[_Running] = []
        ended: queue.SimpleQueue[_Running] = queue.SimpleQueue()
        try:
            while waiting or running:
                while waiting and len(running) < self.parallel:
                    number, result = waiting.pop(0)
                    stage = self._prepare(number, result, make_context(result.name), ended)
                    running.append(stage)  # before it starts: a cancel may come at once
                    stage.thread.start()
                self._wait_for_one(running, ended)
        except BaseException as exc:  # cancelled or head lost: record how far each got
            ended_as: StageStatus = "failed" if isinstance(exc, ClusterLost) else "cancelled"
            for stage in running:
                if stage.thread.is_alive():
                    stage.result.status, stage.result.error = ended_as, f"interrupted ({exc})"
            # Calls into a cluster without its head hang: their stages get no long grace.
            headless = isinstance(exc, ClusterLost)
            # A second cancel (a platform's repeated SIGTERM) waits: the stopping is bounded
            # by the grace, and cut short it would leave the stages' ends unrecorded.
            with signals.deferred("stopping the stages"):
                _stop(running, HEADLESS_GRACE_SECONDS if headless else STOP_GRACE_SECONDS)
                for stage in running:
                    self._end(stage)
                    self._say_ended(stage)
            raise
        return self.results

    def _prepare(
        self, number: int, result: StageResult, ctx: StageContext, ended: queue.SimpleQueue
    ) -> _Running:
        """The stage in a thread, not yet started, that puts itself in `ended` at its end."""
        pattern = self.stages[number - 1][1]()
        params = self.params_for(result.name)

        def body() -> None:
            try:
                with ctx.current_here():
                    pattern.run(ctx, params)
            except BaseException as exc:
                this.failure.append(exc)
            finally:
                ended.put(this)

        logger.info(
            "stage %d/%d %s: started",
            number,
            len(self.results),
            result.name,
            extra={"stage": result.name, "event": "started"},
        )
        result.started_at_seconds = round(time.monotonic() - self.clock, 2)
        thread = threading.Thread(target=body, name=f"stage-{result.name}", daemon=True)
        deadline = time.monotonic() + (self.timeout_seconds or float("inf"))
        this = _Running(number, result, pattern, ctx, thread, self._nodes_now(), deadline)
        return this

    def _wait_for_one(self, running: list[_Running], ended: queue.SimpleQueue) -> None:
        """Wait until a running stage ends or passes its deadline; record it."""
        while True:
            deadline = min(stage.deadline for stage in running)
            try:
                wait = max(0.0, min(deadline - time.monotonic(), CHECK_SECONDS))
                done = ended.get(timeout=wait)
            except queue.Empty:
                if self.head is not None:
                    self.head.check()
                if time.monotonic() < deadline:
                    continue
                done = next(stage for stage in running if stage.deadline == deadline)
                done.result.status = "failed"
                done.result.error = f"timed out after {self.timeout_seconds:g} s"
                logger.error("stage %s %s", done.result.name, done.result.error)
                _stop([done])
            if done in running:  # not a stage given up on earlier that ended since
                break
        running.remove(done)
        self._end(done)
        _tell(self.on_stage_end, done)
        self._say_ended(done)  # once recorded: a driver killed at this line keeps the stage
        _tell(self.on_stage_said, done)

    def _end(self, stage: _Running) -> None:
        result = stage.result
        result.seconds = round(time.monotonic() - stage.clock, 2)
        stage.ctx.close()
        result.evidence = dict(stage.ctx.evidence)
        failure = stage.failure[0] if stage.failure else None
        self._record_node_changes(result, stage.nodes_before, failure)
        if result.status == "skipped":  # neither interrupted nor timed out: it ended
            if isinstance(failure, StageSkipped):
                result.reason = str(failure)
            elif failure is not None:
                self._record_failure(result, failure)
            else:
                result.status = "passed"
                result.headline = _headline(stage.pattern, result.evidence)
        lost = result.evidence.get("worker_nodes_lost")
        if result.status == "failed" and lost:
            result.error = f"{result.error} (worker node(s) lost meanwhile: {', '.join(lost)})"

    def _say_ended(self, stage: _Running) -> None:
        result = stage.result
        logger.info(
            "stage %d/%d %s: %s in %.1f s%s%s",
            stage.number,
            len(self.results),
            result.name,
            result.status,
            result.seconds,
            f" ({result.error or result.reason})" if result.error or result.reason else "",
            _handed_over(result.evidence),
            extra={"stage": result.name, "event": "ended"},
        )

    def _record_node_changes(
        self, result: StageResult, before: set[str], failure: BaseException | None
    ) -> None:
        if self.head is not None and not self.head.alive():
            return  # nobody to ask: the cluster's node table lives with its head
        after = self._nodes_now()
        if after == before and before and isinstance(failure, NODE_TROUBLE):
            after = self._nodes_once_changed(before)
        for change, nodes in (("lost", before - after), ("joined", after - before)):
            if nodes:
                logger.log(
                    self.node_change_level,
                    "stage %s: worker nodes %s: %s",
                    result.name,
                    change,
                    sorted(nodes),
                )
                result.evidence[f"worker_nodes_{change}"] = sorted(nodes)

    def _nodes_once_changed(self, before: set[str]) -> set[str]:
        deadline = time.monotonic() + NODE_TABLE_CATCH_UP_SECONDS
        after = before
        while after == before and time.monotonic() < deadline:
            time.sleep(CHECK_SECONDS)
            if self.head is not None and not self.head.alive():
                break
            after = self._nodes_now()
        return after

    def _nodes_now(self) -> set[str]:
        nodes = self.worker_nodes()
        self.node_counts.append([round(time.monotonic() - self.clock, 2), len(nodes)])
        return nodes

    @staticmethod
    def _record_failure(result: StageResult, exc: BaseException) -> None:
        result.status = "failed"
        result.traceback = "".join(traceback.format_exception(exc)).rstrip()
        if isinstance(exc, StageFailed):
            result.error = str(exc)
            logger.error("stage %s failed: %s", result.name, exc, exc_info=exc)
        else:
            result.error = f"{type(exc).__name__}: {exc}"
            logger.error("stage %s raised", result.name, exc_info=exc)


def _tell(callback: Callable[[], None], stage: _Running) -> None:
    """Call `callback` for `stage`'s end; its error is logged, the stage's result stands."""
    try:
        callback()
    except Exception:
        logger.warning("recording stage %s's end failed", stage.result.name, exc_info=True)


def _headline(pattern: Stage, evidence: dict[str, Any]) -> str:
    """The stage's own one line, or nothing where building it fails: evidence is
    the stage's to shape, and a headline never fails a run."""
    try:
        return pattern.headline(evidence)
    except Exception:
        logger.debug("stage %s built no headline", type(pattern).__name__, exc_info=True)
        return ""


def _handed_over(evidence: dict[str, Any]) -> str:
    """What the stage handed between Spark and Ray (`raybricks.data`), each handoff's
    rows, MB, route and seconds; nothing for a stage that handed nothing."""
    try:
        legs = [_handoff(h) for h in evidence.get("handoffs", [])]
    except (KeyError, TypeError):  # evidence is the stage's to shape
        return ""
    return f"; handed over {'; '.join(legs)}" if legs else ""


def _handoff(handoff: dict[str, Any]) -> str:
    size = handoff["bytes"]
    return (
        f"{'to Ray' if handoff['direction'] == 'to_ray' else 'to Spark'} {handoff['rows']:,} "
        f"rows{'' if size is None else f', {size / 2**20:,.1f} MB'} by {handoff['route']} "
        f"in {handoff['seconds']:.1f} s"
    )


def _stop(stages: list[_Running], grace: float = STOP_GRACE_SECONDS) -> None:
    """Ask stages to stop and wait up to `grace` seconds for them to leave Ray."""
    for stage in stages:
        stage.ctx.stop.set()
    grace_ends = time.monotonic() + grace
    for stage in stages:
        stage.thread.join(max(0.0, grace_ends - time.monotonic()))
        if stage.thread.is_alive():
            logger.warning("stage %s did not stop within %.0f s", stage.result.name, grace)
