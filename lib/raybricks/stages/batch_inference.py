"""Batch inference: a Spark table scored by long-lived Ray actors, back as a Spark table.

The everyday reason to start Ray inside Spark. A model (here a small numeric one, with
`load_seconds` standing for a real model's load) is expensive to load, so it should be
loaded once per actor, not once per Spark partition as a `mapInPandas` UDF would:

    ds = to_ray(table)                                      # Spark writes Parquet
    scored = ds.map_batches(
        Scorer,                                             # a class: one per actor
        compute=ray.data.ActorPoolStrategy(min_size=2, max_size=2),
        num_cpus=0.5,                                       # leave reads and writes room
        scheduling_strategy=PlacementGroupSchedulingStrategy(packed),
        batch_size=10_000,
    )
    result = to_spark(scored)                               # Spark reads Parquet

The stage proves, from the table Spark reads back: every input id is there exactly once,
every score is what Spark computes from the same formula, and each actor's process
loaded the model once (counted by pid). It records the seconds of each leg and rows/s.

Traps: an actor pool that holds every CPU leaves Ray Data's read and write tasks none,
and the pipeline stalls; so does one that leaves CPUs spread over nodes in pieces too
small for a task (Ray Data lists files in a one-CPU task): here the pool's resources are
reserved packed, in a placement group; `concurrency=` is
deprecated (Ray 2.51) for `compute=`; Ray Data holds a few times a dataset's size in
memory as it streams: size `batch_size` for it; what a handoff wrote goes when the stage
ends, so use the result within the stage.
A scorer whose process dies is replaced, and its batch retried (Ray Data restarts pool
actors and retries their calls): the table stays exactly-once.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import ray
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from raybricks.data import to_ray, to_spark
from raybricks.stages.base import Stage, StageContext, expect
from raybricks.stages.params import BatchInferenceParams

# The model: a logistic score of three features.
WEIGHTS = (0.8, -1.3, 0.45)
BIAS = 0.2
TOLERANCE = 1e-12  # numpy's and the JVM's exp may differ in the last bit
PLACEMENT_TIMEOUT_SECONDS = 60.0
SCORERS = "scorers"  # in the handoff folder: a file per model load, and the crash marker
CRASHED = "crashed"


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


class Model:
    """The model: a logistic score of three features. Loading it takes `load_seconds`,
    as a real model's load does."""

    def __init__(self, load_seconds: float) -> None:
        time.sleep(load_seconds)
        self.weights = np.array(WEIGHTS)

    def score(self, x0: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        """Term by term, in the order Spark's `expected_score` adds them."""
        w0, w1, w2 = self.weights
        linear = x0 * w0 + x1 * w1 + x2 * w2 + BIAS
        return np.asarray(1.0 / (1.0 + np.exp(-linear)))


class Scorer:
    """One per actor: loads the model once, then scores batches. Each load leaves a
    file `<pid>-<load id>` in `records` (a folder every node sees), and each row it
    returns names the process and the load that scored it, and its call."""

    def __init__(self, load_seconds: float, records: str, crash_after: int | None):
        self.model = Model(load_seconds)
        self.load_id = uuid.uuid4().hex
        self.records, self.crash_after = Path(records), crash_after
        (self.records / f"{os.getpid()}-{self.load_id}").touch()
        self.calls = 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        self._crash_once_if_asked()
        rows = len(batch["id"])
        return {
            "id": batch["id"],
            "score": self.model.score(batch["x0"], batch["x1"], batch["x2"]),
            "actor_pid": np.full(rows, os.getpid()),
            "load_id": np.full(rows, self.load_id),
            "call_id": np.full(rows, uuid.uuid4().hex),
        }

    def _crash_once_if_asked(self) -> None:
        """The first scorer past `crash_after` calls dies mid-call, as a process does."""
        if self.crash_after is None or self.calls <= self.crash_after:
            return
        try:
            os.close(os.open(self.records / CRASHED, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # another scorer died already
        os._exit(1)


class BatchInference(Stage[BatchInferenceParams]):
    summary = "a Spark table scored by a pool of Ray actors (model loaded once each), back in Spark"
    Params = BatchInferenceParams
    scorer: type = Scorer  # the actors' class (a test breaks it on purpose)

    @staticmethod
    def headline(evidence: dict[str, Any]) -> str:
        legs = evidence["seconds"]
        return (
            f"{evidence['rows']:,} rows scored exactly once by {evidence['actors']} actor "
            f"process(es), one model load each, {evidence['calls']} calls; "
            f"{evidence['rows_per_second']:,.0f} rows/s (Spark to Ray {legs['spark_to_ray']} s, "
            f"actors {legs['actors']} s, Ray to Spark {legs['ray_to_spark']} s)"
        )

    def run(self, ctx: StageContext, params: BatchInferenceParams) -> None:
        self._check_room(params)
        ray.data.DataContext.get_current().enable_progress_bars = False  # driver.log stays readable
        table = features(ctx.spark, params.rows, params.partitions)
        seconds: dict[str, float] = {}
        clock = time.monotonic()
        ds = to_ray(table, num_cpus=params.io_num_cpus)
        seconds["spark_to_ray"] = _since(clock)
        ctx.wait(0)  # a cancel stops the stage between its legs
        with packed_pool(params) as placement:
            clock = time.monotonic()
            scored = ds.map_batches(
                self.scorer,
                fn_constructor_kwargs=self._scorer_arguments(ctx, params),
                compute=ray.data.ActorPoolStrategy(
                    min_size=params.min_actors, max_size=params.max_actors
                ),
                num_cpus=params.num_cpus,
                num_gpus=params.num_gpus or None,
                scheduling_strategy=placement,
                batch_size=params.batch_size,
                batch_format="numpy",
            )
            result = to_spark(scored, ray_remote_args={"num_cpus": params.io_num_cpus})
            seconds["actors"] = _since(clock)  # Ray Data read, scored and wrote as it streamed
        ctx.wait(0)
        clock = time.monotonic()
        rows_out = result.count()  # the table out, as Spark has it
        seconds["ray_to_spark"] = _since(clock)
        result = result.cache()  # the proof reads it several times
        try:
            self._prove(ctx, params, table, result, rows_out, seconds)
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
    ) -> None:
        repeated = result.groupBy("id").count().where("count > 1").count()
        missing = table.join(result, "id", "left_anti").count()
        unknown = result.join(table, "id", "left_anti").count()
        checked = result.join(table.withColumn("expected", expected_score()), "id")
        wrong = checked.where(F.abs(F.col("score") - F.col("expected")) > TOLERANCE).count()
        scoring = result.groupBy("actor_pid").agg(F.countDistinct("load_id").alias("loads"))
        loads_seen = {str(row["actor_pid"]): row["loads"] for row in scoring.collect()}
        loads_by_pid = Counter(path.name.split("-")[0] for path in _records(ctx).glob("*-*"))
        calls = result.select("call_id").distinct().count()
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
            calls=calls,
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
            calls > len(loads_by_pid),
            f"{calls} scoring calls for {len(loads_by_pid)} model loads: not one load per batch "
            "is shown only with more batches than actors; lower batch_size",
        )

    @staticmethod
    def _check_room(params: BatchInferenceParams) -> None:
        """Packed, the pool must leave a whole CPU for Ray Data's own tasks (its file
        listing takes one)."""
        cpus = ray.cluster_resources().get("CPU", 0.0)
        pool = params.max_actors * params.num_cpus
        expect(
            cpus - pool >= 1,
            f"max_actors x num_cpus = {pool:g} of the cluster's {cpus:g} CPUs leaves Ray "
            "Data's reads and writes less than a CPU: the pipeline would stall; lower "
            "max_actors or num_cpus",
        )


@contextmanager
def packed_pool(params: BatchInferenceParams) -> Iterator[PlacementGroupSchedulingStrategy]:
    """The scorers' resources reserved together, on as few nodes as they fit: spread one
    to a node, they would leave each a piece of CPU too small for Ray Data's one-CPU
    tasks, and the pipeline would stall. A replaced scorer takes its dead one's place."""
    bundle = {"CPU": params.num_cpus, **({"GPU": params.num_gpus} if params.num_gpus else {})}
    group = placement_group([bundle] * params.max_actors, strategy="PACK")
    try:
        ready, _ = ray.wait([group.ready()], timeout=PLACEMENT_TIMEOUT_SECONDS)
        expect(
            bool(ready),
            f"the scorer pool ({params.max_actors} x {bundle}) found no room in "
            f"{PLACEMENT_TIMEOUT_SECONDS:g} s; lower max_actors, num_cpus or num_gpus",
        )
        yield PlacementGroupSchedulingStrategy(group)
    finally:
        remove_placement_group(group)


def _records(ctx: StageContext) -> Path:
    """Where the scorers record their loads and their crash: the handoff folder, which
    every node sees (and which goes with the stage)."""
    return Path(ctx.handoff or ctx.run_dir) / SCORERS


def _since(clock: float) -> float:
    return time.monotonic() - clock
