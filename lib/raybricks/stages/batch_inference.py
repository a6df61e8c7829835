"""Batch inference: a Spark table scored by long-lived Ray actors, back as a Spark table.

The everyday reason to start Ray inside Spark. A model (here a small numeric one, with
`load_seconds` standing for a real model's load) is expensive to load, so it is loaded
once per actor, not once per Spark task as a `mapInPandas` UDF would, and the actors
load it while Spark is still computing the table:

    scorers = [Scorer.remote(...) for _ in range(actors)]   # each starts loading now
    blocks = to_ray(table, rows_per_block=batch_size)       # Spark computes meanwhile
    scored = [scorers[i % actors].score.remote(block) for i, block in enumerate(...)]
    result = to_spark(scored, schema="id bigint, score double")   # from Ray's store

The stage proves, from the table Spark reads back: every input id is there exactly once,
every score is what Spark computes from the same formula, and each actor's process
loaded the model once (counted by pid). It records how many scorers had their model
loaded when the data arrived, the seconds of each leg, rows/s, and each handoff's route.

A scorer whose process dies is restarted (a new process, its own load) and the call it
had in flight sent again (`max_restarts`, `max_task_retries`): the table stays
exactly-once. What a handoff wrote goes when the stage ends: use the result within it.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import ray
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from raybricks.cluster.compat.spark_jvm import spare_task_slots
from raybricks.data import to_ray, to_spark
from raybricks.stages.base import Stage, StageContext, StageSkipped, expect
from raybricks.stages.params import BatchInferenceParams
from raybricks.stages.scorer import BIAS, CRASHED, WEIGHTS, Scorer

TOLERANCE = 1e-12  # numpy's and the JVM's exp may differ in the last bit
SCORED = "id bigint, score double"
SCORERS = "scorers"  # in the handoff folder: a file per model load, and the crash marker


def features(spark: SparkSession, rows: int, partitions: int) -> DataFrame:
    """The input table: ids and three features made from them."""
    table = spark.range(0, rows, 1, partitions)
    return table.select(
        "id",
        (F.col("id") % 97 / 97.0).alias("x0"),
        ((F.col("id") * 31) % 101 / 101.0 - 0.5).alias("x1"),
        (F.col("id") % 13 / 13.0).alias("x2"),
    )


def expected_score() -> Any:
    """The model as Spark computes it, term by term in the scorer's order."""
    (w0, w1, w2) = WEIGHTS
    linear = F.col("x0") * w0 + F.col("x1") * w1 + F.col("x2") * w2 + BIAS
    return F.lit(1.0) / (F.lit(1.0) + F.exp(-linear))


class BatchInference(Stage[BatchInferenceParams]):
    summary = "a Spark table scored by a pool of Ray actors (model loaded once each), back in Spark"
    Params = BatchInferenceParams
    scorer: type = Scorer  # the actors' class (a test breaks it on purpose)

    @staticmethod
    def headline(evidence: dict[str, Any]) -> str:
        legs = evidence["seconds"]
        routes = "/".join(handoff["route"] for handoff in evidence["handoffs"])
        return (
            f"{evidence['rows']:,} rows scored exactly once by {evidence['actors']} actor "
            f"process(es), one model load each ({evidence['warm_actors']} loaded before "
            f"the data came), {evidence['calls']} calls; {evidence['rows_per_second']:,.0f} "
            f"rows/s through {routes} (Spark to Ray {legs['spark_to_ray']} s, actors "
            f"{legs['actors']} s, Ray to Spark {legs['ray_to_spark']} s)"
        )

    def run(self, ctx: StageContext, params: BatchInferenceParams) -> None:
        _skip_without_a_spark_slot(ctx)
        self._check_room(params)
        scorers = self._start_scorers(ctx, params)  # they load while Spark computes
        loaded = [scorer.ready.remote() for scorer in scorers]
        try:
            self._score(ctx, params, scorers, loaded)
        finally:
            for scorer in scorers:
                ray.kill(scorer)

    def _start_scorers(self, ctx: StageContext, params: BatchInferenceParams) -> list[Any]:
        actor: Any = ray.remote(self.scorer).options(
            num_cpus=params.num_cpus,
            num_gpus=params.num_gpus or None,
            max_restarts=-1,
            max_task_retries=-1,
        )
        arguments = self._scorer_arguments(ctx, params)
        return [actor.remote(**arguments) for _ in range(params.actors)]

    def _score(
        self, ctx: StageContext, params: BatchInferenceParams, scorers: list[Any], loaded: list[Any]
    ) -> None:
        table = features(ctx.spark, params.rows, params.partitions)
        seconds: dict[str, float] = {}
        clock = time.monotonic()
        blocks = to_ray(table, rows_per_block=params.batch_size, num_cpus=params.io_num_cpus)
        seconds["spark_to_ray"] = _since(clock)
        warm, _ = ray.wait(loaded, num_returns=len(loaded), timeout=0)
        ctx.wait(0)  # a cancel stops the stage between its legs
        clock = time.monotonic()
        refs = blocks.to_arrow_refs()
        calls = [scorers[i % len(scorers)].score.remote(ref) for i, ref in enumerate(refs)]
        scored = [block for block, _ in calls]
        _wait_for_all(ctx, scored, params.rows)
        seconds["actors"] = _since(clock)
        clock = time.monotonic()
        result = to_spark(scored, schema=SCORED)
        rows_out = result.count()  # the table out, as Spark has it
        seconds["ray_to_spark"] = _since(clock)
        ctx.record(warm_actors=len(warm))
        result = result.cache()  # the proof reads it several times
        try:
            self._prove(
                ctx, params, table, result, rows_out, seconds, ray.get([c for _, c in calls])
            )
        finally:
            result.unpersist()

    @staticmethod
    def _scorer_arguments(ctx: StageContext, params: BatchInferenceParams) -> dict[str, Any]:
        records = _records(ctx)
        records.mkdir(parents=True, exist_ok=True)
        return {
            "load_seconds": params.load_seconds,
            "records": str(records),
            "crash_after": params.crash_after_batches,
        }

    def _prove(
        self,
        ctx: StageContext,
        params: BatchInferenceParams,
        table: DataFrame,
        result: DataFrame,
        rows_out: int,
        seconds: dict[str, float],
        calls: list[dict[str, int]],
    ) -> None:
        repeated = result.groupBy("id").count().where("count > 1").count()
        missing = table.join(result, "id", "left_anti").count()
        unknown = result.join(table, "id", "left_anti").count()
        checked = result.join(table.withColumn("expected", expected_score()), "id")
        wrong = checked.where(F.abs(F.col("score") - F.col("expected")) > TOLERANCE).count()
        loads_seen = {
            str(pid): len({c["load_id"] for c in calls if c["pid"] == pid})
            for pid in {c["pid"] for c in calls}
        }
        loads_by_pid = Counter(path.name.split("-")[0] for path in _records(ctx).glob("*-*"))
        total = sum(seconds.values())
        ctx.record(
            rows=params.rows,
            rows_out=rows_out,
            repeated_ids=repeated,
            missing_ids=missing,
            unknown_ids=unknown,
            wrong_scores=wrong,
            loads_by_pid=dict(loads_by_pid),
            actors=len(loads_by_pid),
            scoring_pids=sorted(loads_seen),
            calls=len(calls),
            scorer_crashed=(_records(ctx) / CRASHED).exists(),
            seconds={leg: round(value, 2) for leg, value in seconds.items()},
            rows_per_second=round(params.rows / total) if total else 0,
        )
        expect(
            (rows_out, repeated, missing, unknown) == (params.rows, 0, 0, 0),
            f"the scored table is not exactly once: {rows_out:,} rows for {params.rows:,} ids, "
            f"{repeated} repeated, {missing} missing, {unknown} unknown",
        )
        expect(wrong == 0, f"{wrong:,} scores differ from Spark's own by more than {TOLERANCE:g}")
        expect(
            all(count == 1 for count in loads_by_pid.values())
            and all(loads_seen[pid] == 1 and pid in loads_by_pid for pid in loads_seen),
            "an actor process loaded the model more than once, or scored without a load: "
            f"loads by pid {dict(loads_by_pid)}, scored by {sorted(loads_seen)}",
        )
        expect(
            len(calls) > len(loads_by_pid),
            f"{len(calls)} scoring calls for {len(loads_by_pid)} model loads: not one load per "
            "batch is shown only with more batches than actors; lower batch_size",
        )

    @staticmethod
    def _check_room(params: BatchInferenceParams) -> None:
        """The scorers hold their CPUs all along: a Parquet handoff's Ray tasks need
        room beside them."""
        cpus = ray.cluster_resources().get("CPU", 0.0)
        pool = params.actors * params.num_cpus
        expect(
            cpus - pool >= params.io_num_cpus,
            f"actors x num_cpus = {pool:g} of the cluster's {cpus:g} CPUs leaves a "
            f"handoff's tasks (io_num_cpus = {params.io_num_cpus:g}) no room: lower actors "
            "or num_cpus",
        )


def _records(ctx: StageContext) -> Path:
    """Where the scorers record their loads and their crash: the handoff folder, which
    every node sees (and which goes with the stage)."""
    return Path(ctx.handoff or ctx.run_dir) / SCORERS


def _skip_without_a_spark_slot(ctx: StageContext) -> None:
    """Spark's jobs of the handoff would never start: skipped at once, saying why."""
    spare = spare_task_slots(ctx.spark.sparkContext)
    if spare is not None and spare <= 0:
        raise StageSkipped(
            f"Ray's worker nodes hold every Spark task slot ({ctx.spark.sparkContext.master}): "
            "the table's Spark jobs could not run; leave Spark a core (fewer worker nodes, "
            "or more executors or cores)"
        )


def _wait_for_all(ctx: StageContext, refs: list[Any], rows: int) -> None:
    """Until every call has returned, a cancel stopping the stage between waits; the
    rows scored so far go to the console (by the share of blocks returned: blocks are
    of about equal size)."""
    pending = refs
    while pending:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5, fetch_local=False)
        ctx.progress(rows * (len(refs) - len(pending)) // len(refs), rows, "rows")
        ctx.wait(0)


def _since(clock: float) -> float:
    return time.monotonic() - clock
