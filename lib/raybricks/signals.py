"""SIGTERM and SIGINT handlers for the length of a block, the previous ones restored.

Only the main thread may set handlers; elsewhere these blocks change nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

CANCEL_SIGNALS = (signal.SIGTERM, signal.SIGINT)
Handler = Callable[[int, FrameType | None], object]


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
