"""Stages: Ray actor patterns that prove themselves. The public API for stages of one's
own (registered by a package under the entry-point group `raybricks.stages`):

    from raybricks.stages import Stage, StageContext, StageParams, expect

Importing this package imports neither Ray nor Spark; each stage module does.
"""

from raybricks.stages.base import (
    Stage,
    StageContext,
    StageFailed,
    StageParams,
    StageSkipped,
    expect,
)

__all__ = ["Stage", "StageContext", "StageFailed", "StageParams", "StageSkipped", "expect"]
