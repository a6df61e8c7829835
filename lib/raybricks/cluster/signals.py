"""SIGTERM and SIGINT handlers for the length of a block, the previous ones restored.

Only the main thread may set handlers; elsewhere these blocks change nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import TypeVar

from raybricks.cluster.processes import exit_now
from raybricks.errors import Cancelled

logger = logging.getLogger(__name__)

CANCEL_SIGNALS = (signal.SIGTERM, signal.SIGINT)
Handler = Callable[[int, FrameType | None], object]
T = TypeVar("T")


def cancel(signum: int, _frame: object) -> None:
    """SIGTERM (a Databricks cancel) and SIGINT become `Cancelled`, which unwinds
    through the cluster's cleanup like any error."""
    raise Cancelled(signum)


def exit_at_once(signum: int, _frame: object) -> None:
    """A cancel outside the command's own handling (while the process loads it, or once
    it is over: its cluster shut down, its report written) ends the process at once with
    the cancel's exit code. The default action would end it with no exit code of its own,
    and both moments take a while: the command's imports, and Python's exit finalizing
    Ray's and Spark's modules."""
    exit_now(128 + signum)


def ignore_cancels() -> None:
    """Run last at exit: Python's exit puts the handlers it runs back to the signals'
    default actions before it finalizes Ray's and Spark's modules, which takes a moment
    in which a cancel would end the process by that action. Ignored instead, the process
    ends with the command's own code."""
    for sig in CANCEL_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def give_back(hosts: Mapping[signal.Signals, Handler | int | None]) -> None:
    """Put back the handlers a host process had set itself (Python's defaults stay
    replaced: see `exit_at_once`)."""
    for sig, handler in hosts.items():
        if callable(handler) and handler is not signal.default_int_handler:
            signal.signal(sig, handler)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def handlers_kept() -> Iterator[None]:
    """Whatever replaces the SIGTERM/SIGINT handlers inside the block, restore them after."""
    if not _main_thread():
        yield
        return
    kept = {sig: signal.getsignal(sig) for sig in CANCEL_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in kept.items():
            if handler is not None:
                signal.signal(sig, handler)


@contextmanager
def handled_by(handler: Handler) -> Iterator[None]:
    """SIGTERM and SIGINT go to `handler` inside the block."""
    with handlers_kept():
        if _main_thread():
            for sig in CANCEL_SIGNALS:
                signal.signal(sig, handler)
        yield


def reinstall() -> None:
    """Set this process's SIGTERM/SIGINT handlers again. Ray's core resets SIGTERM to
    its default action when a driver disconnects, under the Python handler's feet:
    the next SIGTERM would end the process without cleanup or report."""
    if _main_thread():
        for sig in CANCEL_SIGNALS:
            handler = signal.getsignal(sig)
            if handler is not None:
                signal.signal(sig, handler)


REASSERT_SECONDS = 0.02


def off_the_main_thread(call: Callable[[], T]) -> T:
    """`call()` in a thread of its own, while the main thread waits in plain Python (where
    this process's signal handlers run, and Python code called cannot replace them).
    Native code can (Ray's core worker sets its own SIGTERM action as it connects, one
    that aborts the process): the handlers are set again as the main thread waits."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, name="raybricks-off-main", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(REASSERT_SECONDS)
        reinstall()
    if failure:
        raise failure[0]
    return outcome[0]


@contextmanager
def deferred(doing: str) -> Iterator[None]:
    """A SIGTERM or SIGINT arriving inside the block is held, logged, and delivered
    to the previous handler once the block ends: for steps that, cut short, would
    leave processes behind (starting and stopping Spark and Ray)."""
    held: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        logger.warning("%s while %s: finishing that first", signal.Signals(signum).name, doing)
        held.append(signum)

    try:
        with handled_by(hold):
            yield
    finally:
        if held:
            os.kill(os.getpid(), held[0])
