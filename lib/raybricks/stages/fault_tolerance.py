"""Restarts and retries: what Ray does when an actor's process dies.

- `max_restarts=N` restarts a dead actor up to N times (its constructor runs again and
  its state starts over); `-1` means without limit. Past N, calls raise `RayActorError`.
- `max_task_retries=M` re-sends a call that was in flight when the process died (a
  *system* failure) to the restarted actor, up to M times.
- A Python exception raised by a method is an *application* error: it is not retried,
  and the actor stays alive, unless the method asks with `retry_exceptions=True`.
- `ray.kill(actor, no_restart=False)` counts as a crash (the actor restarts if it may);
  `no_restart=True` ends it for good, restarts left or not.

The actor's own state is lost on restart, so the constructor counts its starts in a
separate `Tally` actor; that count, and the changing pid, are the evidence. One actor
runs out of restarts; another may always restart, and shows what does not restart it:
a Python exception, and `ray.kill(no_restart=True)`.

Ray answers a call that was in flight at a crash only after a fixed wait (1 s in Ray
2.60), retried or not. So the retry is shown once; the other crashes are calls nobody
waits for, and the restart is seen when the new process counts itself in the tally.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from raybricks.stages.base import (
    Stage,
    StageContext,
    StageFailed,
    expect,
    side_by_side,
)
from raybricks.stages.lifecycle import died, pid_after_restart, when_available
from raybricks.stages.params import FaultToleranceParams


@ray.remote(num_cpus=0)
class Tally:
    """Counts starts of other actors; outlives their restarts."""

    def __init__(self) -> None:
        self.starts: dict[str, int] = {}

    def started(self, key: str) -> int:
        self.starts[key] = self.starts_of(key) + 1
        return self.starts[key]

    def starts_of(self, key: str) -> int:
        return self.starts.get(key, 0)


EXCEPTION_RETRIES = 1  # of fail_and_retry (each retry waits 1 s in Ray 2.60)
POLL_SECONDS = 0.05


@ray.remote(num_cpus=0)
class Fragile:
    def __init__(self, tally: Any, key: str) -> None:
        self.generation = ray.get(tally.started.remote(key))  # 1, then 2 after a restart...
        self.failures = 0

    def whoami(self) -> tuple[int, int]:
        return os.getpid(), self.generation

    def pid(self) -> int:
        return os.getpid()

    def double_surviving_a_crash(self, x: int) -> tuple[int, int, int]:
        """The first start dies mid-call (a system failure); Ray re-sends the call to
        the restarted actor, which answers `(2 * x, its pid, its start count)`."""
        if self.generation == 1:
            os._exit(1)
        return 2 * x, os.getpid(), self.generation

    @ray.method(max_task_retries=0)  # a crash on purpose must not be re-sent
    def crash(self) -> None:
        os._exit(1)

    def fail(self) -> None:
        self.failures += 1
        raise ValueError(f"application error {self.failures}")

    @ray.method(retry_exceptions=True, max_task_retries=EXCEPTION_RETRIES)
    def fail_and_retry(self) -> None:
        self.failures += 1
        raise ValueError(f"application error {self.failures}")

    def failures_seen(self) -> int:
        return self.failures


@dataclass(frozen=True)
class Crashable:
    """A fragile actor, the tally its starts are counted in, and its key there."""

    actor: Any
    tally: Any
    key: str


class FaultTolerance(Stage[FaultToleranceParams]):
    summary = "max_restarts and max_task_retries under real crashes; exceptions not retried"
    Params = FaultToleranceParams

    @staticmethod
    def headline(evidence: dict[str, Any]) -> str:
        before, after = evidence["pids_across_crash"]
        return (
            f"restarted after a crash (pid {before} -> {after}), the call in flight answered; "
            f"dead past max_restarts; exceptions retried only with retry_exceptions "
            f"({evidence['runs_with_retry_exceptions']} runs)"
        )

    def run(self, ctx: StageContext, params: FaultToleranceParams) -> None:
        tally = Tally.remote()  # type: ignore[attr-defined]
        made: list[Any] = [tally]

        def fragile(key: str, max_restarts: int) -> Crashable:
            actor = Fragile.options(  # type: ignore[attr-defined]
                max_restarts=max_restarts, max_task_retries=params.max_task_retries
            ).remote(tally, key)
            made.append(actor)
            return Crashable(actor, tally, key)

        timeout = params.call_timeout_seconds
        try:
            limited = fragile("limited", params.max_restarts)
            unlimited = fragile("unlimited", max_restarts=-1)

            def limited_restarts() -> None:
                ctx.record(**_crash_is_retried(limited.actor, timeout))
                ctx.record(**_restarts_run_out(ctx, limited, params.max_restarts - 1, timeout))

            def unlimited_restarts() -> None:
                ctx.record(**_exceptions_are_not_retried(unlimited.actor, timeout))
                ctx.record(**_unlimited_restarts(ctx, unlimited, params.unlimited_crashes, timeout))
                ctx.record(**_kill_with_and_without_restart(ctx, unlimited.actor, timeout))

            side_by_side(limited_restarts, unlimited_restarts)  # two actors, two stories
        finally:
            for actor in made:
                ray.kill(actor, no_restart=True)


def _crash_is_retried(actor: Any, timeout: float) -> dict[str, Any]:
    pid, generation = ray.get(actor.whoami.remote(), timeout=timeout)
    try:
        answer, new_pid, new_generation = ray.get(
            actor.double_surviving_a_crash.remote(21), timeout=timeout
        )
    except RayActorError as exc:
        raise StageFailed(
            f"the call in flight at the crash was not retried: {type(exc).__name__}"
        ) from None
    expect(answer == 42, f"the retried call answered {answer}")
    expect(new_pid != pid and new_generation == generation + 1, "no restart was observed")
    return {
        "retried_call_answer": answer,
        "pids_across_crash": [pid, new_pid],
        "starts_after_crash": new_generation,
    }


def _restarts_run_out(
    ctx: StageContext, fragile: Crashable, restarts_left: int, timeout: float
) -> dict[str, Any]:
    """Crash it until no restart is left: then it stays dead."""
    generations = [_restarted_after_crash(ctx, fragile, timeout)[1] for _ in range(restarts_left)]
    fragile.actor.crash.remote()
    dead = died(ctx, fragile.actor, timeout)
    expect(dead, "the actor answered after its last allowed restart")
    return {"generations_until_limit": generations, "dead_past_max_restarts": dead}


def _exceptions_are_not_retried(actor: Any, timeout: float) -> dict[str, Any]:
    pid, _ = ray.get(actor.whoami.remote(), timeout=timeout)
    try:
        ray.get(actor.fail.remote(), timeout=timeout)
        raise StageFailed("fail() raised nothing")
    except RayTaskError as exc:
        expect(isinstance(exc.cause, ValueError), f"unexpected error {exc.cause!r}")
    plain = ray.get(actor.failures_seen.remote(), timeout=timeout)
    still_pid, _ = ray.get(actor.whoami.remote(), timeout=timeout)
    expect(plain == 1, f"a Python exception was retried: fail() ran {plain} times")
    expect(still_pid == pid, "the actor restarted after a Python exception")
    with contextlib.suppress(RayTaskError):
        ray.get(actor.fail_and_retry.remote(), timeout=timeout)
    retried = ray.get(actor.failures_seen.remote(), timeout=timeout) - plain
    runs = 1 + EXCEPTION_RETRIES
    expect(retried == runs, f"retry_exceptions=True ran {retried} times, not {runs}")
    return {
        "runs_of_failing_call": plain,
        "runs_with_retry_exceptions": retried,
        "alive_after_exceptions": True,
    }


def _kill_with_and_without_restart(ctx: StageContext, actor: Any, timeout: float) -> dict[str, Any]:
    pid = ray.get(actor.pid.remote(), timeout=timeout)
    ray.kill(actor, no_restart=False)
    restarted_pid = pid_after_restart(ctx, actor, pid, timeout)
    ray.kill(actor, no_restart=True)  # restarts are left, and not used
    dead = died(ctx, actor, timeout)
    expect(dead, "ray.kill(no_restart=True) left the actor alive")
    return {"kill_restarted_pids": [pid, restarted_pid], "kill_no_restart_dead": dead}


def _unlimited_restarts(
    ctx: StageContext, fragile: Crashable, crashes: int, timeout: float
) -> dict[str, Any]:
    generations = [when_available(ctx, fragile.actor.whoami.remote, timeout)[1]]
    generations += [_restarted_after_crash(ctx, fragile, timeout)[1] for _ in range(crashes)]
    expect(generations == list(range(1, crashes + 2)), f"restarts went {generations}")
    return {"unlimited_generations": generations}


def _restarted_after_crash(
    ctx: StageContext, fragile: Crashable, timeout: float
) -> tuple[int, int]:
    """Crash the actor's process and wait for its restart: `(pid, start count)` of the
    restarted actor. The crash call dies with the process, and nobody waits for it."""
    starts = ray.get(fragile.tally.starts_of.remote(fragile.key), timeout=timeout)
    fragile.actor.crash.remote()
    deadline = time.monotonic() + timeout
    while ray.get(fragile.tally.starts_of.remote(fragile.key), timeout=timeout) == starts:
        expect(time.monotonic() < deadline, f"the actor did not restart within {timeout:g} s")
        ctx.wait(POLL_SECONDS)
    whoami: tuple[int, int] = when_available(ctx, fragile.actor.whoami.remote, timeout)
    return whoami
