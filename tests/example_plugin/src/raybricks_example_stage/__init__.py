"""An example raybricks stage: a named actor answers `calls` greetings, and is found
again by its name from the stage's namespace. It proves its pattern (`expect`), records
what it measured (`ctx.record`), and cleans up the actor it made."""

from __future__ import annotations

import os

import ray
from pydantic import Field

from raybricks.stages import Stage, StageContext, StageParams, expect


@ray.remote(num_cpus=0)
class Greeting:
    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    def greet(self, who: str) -> str:
        return f"{self.greeting}, {who}"

    def pid(self) -> int:
        return os.getpid()


class GreeterParams(StageParams):
    greeting: str = Field("hello", min_length=1)
    calls: int = Field(3, ge=1)


class Greeter(Stage[GreeterParams]):
    summary = "a named actor greets, and is found again by its name"
    Params = GreeterParams

    def run(self, ctx: StageContext, params: GreeterParams) -> None:
        actor = Greeting.options(name="greeter").remote(params.greeting)  # type: ignore[attr-defined]
        try:
            answers = ray.get([actor.greet.remote(f"caller {i}") for i in range(params.calls)])
            ctx.record(answers=answers, actor_pid=ray.get(actor.pid.remote()))
            expect(
                answers[0] == f"{params.greeting}, caller 0", f"unexpected answer {answers[0]!r}"
            )
            found = ray.get_actor("greeter", namespace=ctx.namespace)
            expect(ray.get(found.pid.remote()) == ctx.evidence["actor_pid"], "found another actor")
        finally:
            ray.kill(actor)
