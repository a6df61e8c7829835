"""What a stage is: a named pattern with typed parameters that proves itself.

A stage records what it measured with `ctx.record(...)` as it goes, so evidence
survives a failure, and raises `StageFailed` (via `expect`) when the pattern does not
behave as the lesson says. Stages know nothing of the runner or the CLI.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict


class StageFailed(Exception):
    """The pattern did not behave as the lesson says it does."""


def expect(condition: bool, message: str) -> None:
    """Fail the stage with `message` unless `condition` holds."""
    if not condition:
        raise StageFailed(message)


class StageParams(BaseModel):
    """Base of every stage's parameters: unknown keys are typos, so they are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class StageContext:
    """What a stage gets from the run: where it is, and where its evidence goes."""

    namespace: str
    run_dir: Path
    ray_address: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def record(self, **values: Any) -> None:
        self.evidence.update(values)


P = TypeVar("P", bound=StageParams)


class Stage(ABC, Generic[P]):
    name: ClassVar[str]
    summary: ClassVar[str]  # one line for `raybricks stages`
    Params: ClassVar[type[StageParams]] = StageParams

    @abstractmethod
    def run(self, ctx: StageContext, params: P) -> None:
        """Run the pattern on the connected Ray cluster; clean up every actor made."""
