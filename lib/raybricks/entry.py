"""Where the `raybricks` process starts (its console script, `python -m raybricks`, the
bundle's job file): a cancel is answered from the first line.

The handlers are set before the command is imported: its imports take most of a second,
in which a cancel would end the process by the default action (exit -15, not 143).

Ray's native crash handler is left out of this process (`RAY_DISABLE_FAILURE_SIGNAL_HANDLER`,
read as Ray is imported; Ray advises it beside a JVM): each `ray.init` of a driver would
install it for SIGTERM, and each disconnect put SIGTERM back to the default action. A
cancel in between ended the process by that action (-15), or went through Ray's handler
to these and the process aborted some 3 s later (-6), in the sweep before its report
was written.
"""

from __future__ import annotations

import atexit
import os
import signal
from pathlib import Path

from raybricks.cluster import signals  # the standard library only


def entry(argv: list[str] | None = None, conf_dir: Path | None = None) -> int:
    """The `raybricks` command as a process: `cli.main`; a cancel before or after it ends
    the process at once with the cancel's code, or, once Python's exit is finalizing
    modules, is ignored."""
    for sig in signals.CANCEL_SIGNALS:
        signal.signal(sig, signals.exit_at_once)
    atexit.register(signals.ignore_cancels)  # before Ray's and Spark's own: it runs last
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    from raybricks.cli import main

    return main(argv, conf_dir)
