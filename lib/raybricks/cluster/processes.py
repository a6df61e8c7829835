"""Ending processes this run is responsible for: others politely first, then for
sure; this one at once, when Python's own exit would do harm or take too long."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import psutil


def end(processes: list[psutil.Process], grace: float) -> None:
    """TERM each of `processes`, then KILL those still running after `grace` seconds."""
    # Imported here: `exit_now` is on the path of a process's first line (`raybricks.entry`).
    import psutil

    for proc in processes:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def exit_now(code: int) -> NoReturn:
    """End this process with `code`, its log and output flushed, skipping Python's exit
    (atexit hooks, finalizing Ray's and Spark's modules)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
