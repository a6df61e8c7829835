"""The stage registry. A new stage is one module plus one line here; the order of this
registry is the order in which the stages run by default."""

from __future__ import annotations

from raybricks.stages.base import Stage
from raybricks.stages.options_override import OptionsOverride

STAGES: dict[str, type[Stage]] = {stage.name: stage for stage in (OptionsOverride,)}
