"""The parameters of the lesson's stages (`stage_params.<stage>` in a conf file).

Kept apart from the stages themselves, which import Ray: settings are validated, and
bad input refused, before Ray or Spark is imported.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from raybricks.stages.base import StageParams


class NamespacesParams(StageParams):
    actor_name: str = Field("probe", min_length=1)
    other_namespace_suffix: str = Field(
        "-elsewhere", description="the second namespace is the job's plus this"
    )


class DetachedActorsParams(StageParams):
    calls: int = Field(100, ge=1, description="next() calls per counter, as in the lesson")
    lifetime: str | None = Field(
        "detached", description="the counters' lifetime; None ties them to their creator"
    )


class FaultToleranceParams(StageParams):
    max_restarts: int = Field(2, ge=0, description="restarts allowed to the fragile actor")
    max_task_retries: int = Field(2, ge=0)
    unlimited_crashes: int = Field(3, ge=1, description="crashes shown with max_restarts=-1")
    call_timeout_seconds: float = Field(60.0, gt=0)


class OptionsOverrideParams(StageParams):
    override_num_cpus: int = Field(1, ge=0, description="num_cpus given through .options()")
    pending_check_seconds: float = Field(
        2.0, gt=0, description="how long, at least, the declared Foo is watched staying pending"
    )
    placement_timeout_seconds: float = Field(
        30.0, gt=0, description="how long a placeable actor may take to start (a new process)"
    )


class ActorPoolParams(StageParams):
    pool_size: int = Field(5, ge=1, description="actors in the pool, as in the lesson")
    slow_call_seconds: float = Field(0.5, gt=0)
    get_next_timeout_seconds: float = Field(0.2, gt=0)
    throughput_items: int = Field(1000, ge=1)
    pipeline_depth: int | None = Field(
        None, ge=1, description="calls in flight per actor, pipelined (None: the pool's default)"
    )

    @model_validator(mode="after")
    def _timeout_well_inside_the_slow_call(self) -> ActorPoolParams:
        # Near equal lengths, whether get_next times out is a race the stage cannot judge.
        if 2 * self.get_next_timeout_seconds > self.slow_call_seconds:
            raise ValueError(
                f"get_next_timeout_seconds ({self.get_next_timeout_seconds}) is over half of "
                f"slow_call_seconds ({self.slow_call_seconds}), so whether get_next times out "
                "is a race; make the slow call at least twice the timeout"
            )
        return self


class TreeOfActorsParams(StageParams):
    model_kinds: list[str] = Field(["lr", "cl", "nn"], min_length=1)
    steps: int = Field(8, ge=1)
    step_seconds: float = Field(0.1, ge=0)
    budget_seconds: float = Field(10.0, gt=0, description="a worker's training time budget")
    crash_kind: str | None = Field("cl", description="this worker dies once mid-training")
    crash_at_step: int = Field(3, ge=0)
    poll_seconds: float = Field(0.2, gt=0)
    timeout_seconds: float = Field(60.0, gt=0, description="all workers DONE within this")


class BatchInferenceParams(StageParams):
    rows: int = Field(200_000, ge=1, description="rows of the Spark table scored")
    partitions: int = Field(8, ge=1, description="the table's Spark partitions")
    actors: int = Field(2, ge=1, description="scorer actors, each loading the model once")
    num_cpus: float = Field(0.5, gt=0, description="CPUs each scorer actor holds")
    io_num_cpus: float = Field(
        0.25, gt=0, description="CPUs each Ray task reading or writing a Parquet handoff holds"
    )
    num_gpus: float = Field(0.0, ge=0, description="GPUs each scorer holds")
    batch_size: int = Field(
        25_000, ge=1, description="rows per scoring call (a block of the Arrow route)"
    )
    load_seconds: float = Field(0.5, ge=0, description="the model's load, once per actor")
    crash_after_batches: int | None = Field(
        None, ge=1, description="a scorer's process dies once, after this many calls"
    )


class GpuActorsParams(StageParams):
    pending_check_seconds: float = Field(
        2.0, gt=0, description="how long, at least, an actor is watched staying pending"
    )
    placement_timeout_seconds: float = Field(
        30.0, gt=0, description="how long a placeable actor may take to start (a new process)"
    )
