"""The tree of actors: a supervisor actor owns worker actors and answers for them.

Ray Tune, Train and RLlib are built this way: the driver talks to one supervisor, the
supervisor starts one worker per model, inspects them, notices when one dies, and ends
them all. Done truthfully:

- each worker really trains (gradient descent on its own data) within a time budget, and
  its state follows its work: RUNNING (made, waiting), TRAINING, DONE; never at random;
- workers are threaded actors (`max_concurrency=2`), so `state()` answers while
  `train()` runs; a plain actor would queue the question behind the work;
- the driver polls the supervisor at an interval with an overall timeout, never in a
  busy loop, and keeps the timeline of states it saw;
- a worker that dies mid-training (`max_restarts=1`) is noticed by the supervisor,
  which starts its training again on the restarted worker; the worker itself says
  whether it is a restart (a lost call alone does not prove one: under load Ray may
  also report a live actor unavailable for a moment).
"""

from __future__ import annotations

import itertools
import os
import random
import time
from typing import Any

import ray
from ray.exceptions import RayActorError

from raybricks.stages.base import Stage, StageContext, expect
from raybricks.stages.params import TreeOfActorsParams

STATES = ("RUNNING", "TRAINING", "DONE")
RESTARTING = "RESTARTING"  # what the supervisor says of a worker Ray is restarting


class Model:
    """Fits y = a*x + b to noisy points by gradient descent; `kind` sets the data."""

    def __init__(self, kind: str) -> None:
        rng = random.Random(kind)
        self.kind = kind
        self.truth = (rng.uniform(-3, 3), rng.uniform(-3, 3))
        self.points = [
            (x, self.truth[0] * x + self.truth[1] + rng.gauss(0, 0.1))
            for x in (rng.uniform(-1, 1) for _ in range(64))
        ]
        self.a = self.b = 0.0
        self.steps = 0
        self.first_loss = self.loss()

    def loss(self) -> float:
        return sum((self.a * x + self.b - y) ** 2 for x, y in self.points) / len(self.points)

    def step(self, learning_rate: float = 0.1) -> float:
        n = len(self.points)
        grad_a = sum(2 * (self.a * x + self.b - y) * x for x, y in self.points) / n
        grad_b = sum(2 * (self.a * x + self.b - y) for x, y in self.points) / n
        self.a -= learning_rate * grad_a
        self.b -= learning_rate * grad_b
        self.steps += 1
        return self.loss()


@ray.remote(num_cpus=0, max_concurrency=2, max_restarts=1)  # type: ignore[call-overload]
class Worker:
    def __init__(self, kind: str, crash_at_step: int | None) -> None:
        self.model = Model(kind)
        self.state_now = "RUNNING"
        self.restarted = ray.get_runtime_context().was_current_actor_reconstructed
        self.crash_at_step = None if self.restarted else crash_at_step  # crash once only

    def state(self) -> str:
        return self.state_now

    def train(self, steps: int, step_seconds: float, budget_seconds: float) -> dict[str, Any]:
        self.state_now = "TRAINING"
        deadline = time.monotonic() + budget_seconds
        while self.model.steps < steps and time.monotonic() < deadline:
            if self.model.steps == self.crash_at_step:
                os._exit(1)  # the process dies mid-training
            self.model.step()
            time.sleep(step_seconds)  # stands for a heavier step
        self.state_now = "DONE"
        return self.inspect()

    def inspect(self) -> dict[str, Any]:
        model = self.model
        return {
            "steps": model.steps,
            "first_loss": round(model.first_loss, 5),
            "loss": round(model.loss(), 5),
            "pid": os.getpid(),
            "restarted": self.restarted,
        }


@ray.remote(num_cpus=0, max_concurrency=4)  # type: ignore[call-overload]
class Supervisor:
    def __init__(self, kinds: list[str], crash_kind: str | None, crash_at_step: int) -> None:
        self.workers = {
            kind: Worker.remote(kind, crash_at_step if kind == crash_kind else None)  # type: ignore[attr-defined]
            for kind in kinds
        }
        self.training: dict[str, Any] = {}
        self.retrained: list[str] = []  # kinds whose training call was lost and re-sent
        self.work: tuple[int, float, float] = (0, 0.0, 0.0)

    def start_workers(self, steps: int, step_seconds: float, budget_seconds: float) -> None:
        self.work = (steps, step_seconds, budget_seconds)
        self.training = {kind: w.train.remote(*self.work) for kind, w in self.workers.items()}

    def state(self) -> dict[str, str]:
        self._retrain_lost()
        return {kind: self._state_of(worker) for kind, worker in self.workers.items()}

    @staticmethod
    def _state_of(worker: Any) -> str:
        try:
            return ray.get(worker.state.remote())
        except RayActorError:  # unavailable while Ray restarts it
            return RESTARTING

    def inspect(self) -> dict[str, Any]:
        return {
            "models": {kind: ray.get(w.inspect.remote()) for kind, w in self.workers.items()},
            "retrained": self.retrained,
        }

    def terminate(self) -> None:
        for worker in self.workers.values():
            ray.kill(worker, no_restart=True)

    def _retrain_lost(self) -> None:
        finished, _ = ray.wait(
            list(self.training.values()), num_returns=len(self.training), timeout=0
        )
        for kind, ref in list(self.training.items()):
            if ref not in finished:
                continue
            try:
                ray.get(ref)
            except RayActorError:  # died (and restarted by Ray), or unreachable for a moment
                self.retrained.append(kind)
                self.training[kind] = self.workers[kind].train.remote(*self.work)


class TreeOfActors(Stage[TreeOfActorsParams]):
    summary = "a supervisor trains one worker per model, polls states, restarts a crash"
    Params = TreeOfActorsParams

    @staticmethod
    def headline(evidence: dict[str, Any]) -> str:
        states = evidence["final_states"]
        done = sorted(kind for kind, state in states.items() if state == "DONE")
        restarted = ", ".join(evidence.get("restarted") or []) or "none"
        return (
            f"{len(done)} of {len(states)} workers DONE ({', '.join(done)}) in "
            f"{evidence['polls']} polls; restarted and retrained: {restarted}"
        )

    def run(self, ctx: StageContext, params: TreeOfActorsParams) -> None:
        supervisor = Supervisor.remote(params.model_kinds, params.crash_kind, params.crash_at_step)  # type: ignore[attr-defined]
        try:
            made = ray.get(supervisor.state.remote())  # made, not yet working: RUNNING
            work = (params.steps, params.step_seconds, params.budget_seconds)
            ray.get(supervisor.start_workers.remote(*work))
            timeline = _poll_until_done(ctx, supervisor, params, made)
            report = ray.get(supervisor.inspect.remote())
            restarted = [kind for kind, model in report["models"].items() if model["restarted"]]
            ctx.record(models=report["models"], restarted=restarted, retrained=report["retrained"])
            _check(timeline, report, params)
        finally:
            ray.get(supervisor.terminate.remote())
            ray.kill(supervisor)


def _poll_until_done(
    ctx: StageContext, supervisor: Any, params: TreeOfActorsParams, made: dict[str, str]
) -> list[Any]:
    clock = time.monotonic()
    timeline: list[Any] = [[0.0, made]]
    polls = 0
    while True:
        states = ray.get(supervisor.state.remote())
        polls += 1
        elapsed = round(time.monotonic() - clock, 2)
        if not timeline or timeline[-1][1] != states:
            timeline.append([elapsed, states])
        ctx.record(polls=polls, timeline=timeline, final_states=states)
        if all(state == "DONE" for state in states.values()):
            return timeline
        expect(
            elapsed < params.timeout_seconds,
            f"not all DONE within {params.timeout_seconds} s: {states}",
        )
        ctx.wait(params.poll_seconds)


def _check(timeline: list[Any], report: dict[str, Any], params: TreeOfActorsParams) -> None:
    for kind in params.model_kinds:
        seen = [states[kind] for _, states in timeline]
        order = [STATES.index(state) for state in seen if state != RESTARTING]
        resets = sum(1 for before, after in itertools.pairwise(order) if after < before)
        model = report["models"][kind]
        expect(
            resets <= int(model["restarted"]), f"{kind} went {seen}: states must follow the work"
        )
        expect(model["steps"] >= 1, f"{kind} trained no step")
        expect(model["loss"] < model["first_loss"], f"{kind} did not learn: {model}")
    crashed = params.crash_kind
    if crashed in params.model_kinds:
        expect(report["models"][crashed]["restarted"], f"{crashed} crashed and never restarted")
        expect(crashed in report["retrained"], f"the crash of {crashed} went unnoticed")
