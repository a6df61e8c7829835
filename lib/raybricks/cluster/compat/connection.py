"""This driver's connection to Ray: without Ray's crash handler, and at a teardown
(Ray 2.60).

Ray's native crash handler is left out of this driver process, and only of it (Ray
advises that beside a JVM; the nodes and the users' actors keep theirs): each `ray.init`
of a driver would install it for SIGTERM, and each disconnect put SIGTERM back to the
default action. A cancel in between ended the process by that action (-15), or went
through Ray's handler to raybricks' and the process aborted some 3 s later (-6), before
its report was written.

Ray connects a process on its first Ray call if it is not connected yet
(`ray._private.auto_init_hook`, switched by RAY_ENABLE_AUTO_CONNECT, read once at
import). Once a run disconnects, a stage thread still inside a Ray call would connect
again: to a lost head, a 20 s wait that holds up the teardown; with RAY_ADDRESS gone, to
a new local Ray of its own that would outlive the run.

Without its head, `ray.shutdown()` ends the process (exit 1, or a segfault while a stage
thread waits in Ray), and Ray on Spark's `shutdown_ray_cluster` calls it first thing; a
process left connected crashes as Python finalizes Ray, so it ends before that.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import ray

from raybricks.cluster.processes import exit_now

logger = logging.getLogger(__name__)

CRASH_HANDLER_VAR = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"  # Ray reads it as it is imported


def without_crash_handler() -> None:
    """This process's `ray.init` installs no crash handler, unless the user chose with
    `RAY_DISABLE_FAILURE_SIGNAL_HANDLER` (which every Ray process would inherit)."""
    if CRASH_HANDLER_VAR in os.environ:
        return
    from ray._private import ray_constants

    if not hasattr(ray_constants, CRASH_HANDLER_VAR):
        logger.debug("this Ray reads no %s: its crash handler stays", CRASH_HANDLER_VAR)
        return
    setattr(ray_constants, CRASH_HANDLER_VAR, True)


def stop_auto_connect() -> None:
    """From now on, a Ray call in this process that is not connected raises instead of
    connecting (raybricks itself always connects explicitly)."""
    try:
        from ray._private import auto_init_hook
    except ImportError as exc:
        logger.debug("Ray's auto-connect cannot be switched off here (%s)", exc)
        return
    if not hasattr(auto_init_hook, "enable_auto_connect"):
        logger.debug("this Ray has no auto-connect switch to turn off")
        return
    auto_init_hook.enable_auto_connect = False


_left_connected: list[bool] = []


@contextmanager
def left_connected() -> Iterator[None]:
    """Within this block `ray.shutdown()` does nothing, and it no longer runs at exit:
    for shutting down a cluster whose head is gone."""
    _left_connected.append(True)
    disconnect = ray.shutdown
    atexit.unregister(disconnect)
    setattr(ray, "shutdown", lambda *args, **kwargs: None)  # noqa: B010 (mypy: a module)
    try:
        yield
    finally:
        setattr(ray, "shutdown", disconnect)  # noqa: B010


def exit_if_left_connected(code: int) -> None:
    """End this process now with `code`, its output flushed, if it was left connected
    to a lost head (Python's own exit would crash)."""
    if _left_connected:
        exit_now(code)
