"""Where the `raybricks` process starts (its console script, `python -m raybricks`, the
bundle's job file, and the bundle's `python_wheel_task`, which may call `entry` in a
process of the platform's): a cancel is answered from the first line, and a run that
did not pass ends as a process does, with `SystemExit(code)`, however it was called.

The handlers are set before the command is imported: its imports take most of a second,
in which a cancel would end the process by the default action (exit -15, not 143).
"""

from __future__ import annotations

import atexit
import signal
from pathlib import Path

from raybricks.cluster import signals  # the standard library only


def entry(argv: list[str] | None = None, conf_dir: Path | None = None) -> int:
    """The `raybricks` command as a process: `cli.main`, 0 returned, any other code
    raised as `SystemExit`; a cancel before or after it ends the process at once with
    the cancel's code, or, once Python's exit is finalizing modules, is ignored. A
    process that had cancel handlers of its own (a platform calling this in-process)
    gets them back."""
    hosts = {sig: signal.getsignal(sig) for sig in signals.CANCEL_SIGNALS}
    for sig in signals.CANCEL_SIGNALS:
        signal.signal(sig, signals.exit_at_once)
    atexit.register(signals.ignore_cancels)  # before Ray's and Spark's own: it runs last
    try:
        from raybricks.cli import main

        code = main(argv, conf_dir)
    finally:
        signals.give_back(hosts)
    if code != 0:
        raise SystemExit(int(code))
    return int(code)
