"""Where the `raybricks` process starts (its console script, `python -m raybricks`, the
bundle's job file): a cancel is answered from the first line.

This module imports nothing of its own until its handlers are set: the CLI's imports
take most of a second, in which a cancel would end the process by the default action
(exit -15, not 143).
"""

from __future__ import annotations

import atexit
import os
import signal
from pathlib import Path

_CANCEL_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _exit_before_main(signum: int, _frame: object) -> None:
    os._exit(128 + signum)  # nothing started, logged or printed yet


def entry(argv: list[str] | None = None, conf_dir: Path | None = None) -> int:
    """The `raybricks` command as a process: `cli.main`; a cancel before or after it ends
    the process at once with the cancel's code, or, once Python's exit is finalizing
    modules, is ignored."""
    for sig in _CANCEL_SIGNALS:
        signal.signal(sig, _exit_before_main)
    from raybricks.cli import main
    from raybricks.cluster import signals

    for sig in _CANCEL_SIGNALS:
        signal.signal(sig, signals.exit_at_once)
    atexit.register(signals.ignore_cancels)  # before Ray's and Spark's own: it runs last
    return main(argv, conf_dir)
