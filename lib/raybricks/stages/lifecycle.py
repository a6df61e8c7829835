"""Waiting for an actor's lifecycle to catch up. `ray.kill` and crashes take effect
asynchronously: right after one, the old process may still answer, or the actor may be
briefly unavailable while Ray decides to restart it. So poll, with a deadline.

`pid_after_restart` and `died` call the actor's `pid()` method.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError

from raybricks.stages.base import StageContext, StageFailed

POLL_SECONDS = 0.1


def when_available(ctx: StageContext, call: Callable[[], Any], timeout: float) -> Any:
    """`ray.get(call())`, tried again while the actor is restarting (unavailable);
    fails the stage if the actor died for good or stays unavailable past `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ray.get(call(), timeout=timeout)
        except ActorDiedError:
            raise StageFailed("the actor died instead of restarting") from None
        except (RayActorError, GetTimeoutError):
            if time.monotonic() >= deadline:
                raise StageFailed(f"the actor stayed unavailable for {timeout:g} s") from None
            ctx.wait(POLL_SECONDS)


def pid_after_restart(ctx: StageContext, actor: Any, old_pid: int, timeout: float) -> int:
    """The actor's pid once it answers from a process other than `old_pid`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid: int = when_available(ctx, actor.pid.remote, timeout)
        if pid != old_pid:
            return pid
        ctx.wait(POLL_SECONDS)
    raise StageFailed(f"the actor did not restart within {timeout:g} s")


def died(ctx: StageContext, actor: Any, timeout: float) -> bool:
    """Whether the actor is dead for good within `timeout` (calls raise ActorDiedError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ray.get(actor.pid.remote(), timeout=timeout)
        except ActorDiedError:
            return True
        except (RayActorError, GetTimeoutError):
            pass  # unavailable for a moment, e.g. restarting
        ctx.wait(POLL_SECONDS)
    return False
