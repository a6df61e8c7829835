"""Run a function as another Ray driver, in its own process: "somewhere else" for real.

Named actors, namespaces and detached lifetimes are about what *other* drivers see, so a
stage proves them from a second process, not from its own. The function runs in a new
Python process connected to the same cluster (address and auth come from this driver's
environment) in the namespace given, and its JSON-able result comes back:

    seen = run_elsewhere(lookup_counter, namespace="other", name="Counter1")
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from raybricks.stages.base import StageFailed

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def run_elsewhere(
    function: Callable[..., Any], namespace: str, timeout: float = 90, **kwargs: Any
) -> Any:
    """Call `function(**kwargs)` in a new driver process in `namespace`; its result."""
    target = f"{function.__module__}:{function.__qualname__}"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            __name__,
            str(os.getpid()),
            target,
            namespace,
            json.dumps(kwargs),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0 or not done.stdout.strip():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise StageFailed(f"driver {target} in namespace {namespace!r} failed: {last}")
    return json.loads(done.stdout)


def _main(parent: str, target: str, namespace: str, arguments: str) -> None:
    _end_with(int(parent))
    # The result is all this process writes to its stdout (no temp file: a killed run
    # would leave it); whatever Ray or the function prints goes to stderr.
    result_out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    import ray

    module, name = target.split(":")
    function = getattr(importlib.import_module(module), name)
    ray.init(address=os.environ["RAY_ADDRESS"], namespace=namespace, log_to_driver=False)
    try:
        result = function(**json.loads(arguments))
    finally:
        ray.shutdown()
    with result_out:
        json.dump(result, result_out)


def _end_with(parent: int) -> None:
    """Be killed when the driver that started this one ends, however it ends (with its
    head lost, Ray ends it outright): a run leaves nothing behind. Linux's parent-death
    signal, which comes when the starting *thread* ends: here the stage thread, waiting
    in `run_elsewhere` until this process ends or the run's process does. Elsewhere
    this driver may outlive a killed parent."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before the signal was asked for
        sys.exit(1)


if __name__ == "__main__":
    _main(*sys.argv[1:])
