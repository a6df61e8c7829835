"""Ending processes this run is responsible for: politely first, then for sure."""

from __future__ import annotations

import contextlib

import psutil


def end(processes: list[psutil.Process], grace: float) -> None:
    """TERM each of `processes`, then KILL those still running after `grace` seconds."""
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
