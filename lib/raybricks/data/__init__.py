"""Spark tables through Ray and back, for stages:

    from raybricks.data import to_ray, to_spark

    def run(self, ctx, params):
        table = ctx.spark.table("events")
        ds = to_ray(table)                                   # a Ray Dataset
        scored = ds.map_batches(Scorer, compute=ray.data.ActorPoolStrategy(size=2))
        out = to_spark(scored, schema="id bigint, score double")
        ctx.record(rows=out.count())                         # use it within the stage

Every Spark SQL type a table holds comes back as it went, 0 rows included, every
field nullable as Spark's file reads make it (`raybricks.data.schema` says how; a type
that cannot travel is refused before anything moves). A small table goes through Arrow
in the driver's memory; a large one through Parquet files in the stage's handoff
folder, which every node sees (on Databricks a Unity Catalog volume);
`raybricks.data.routes` says which and why. Each handoff records its route, rows, bytes
and seconds in the stage's evidence (`handoffs`), and the stage's console line names
them. What a handoff wrote goes when the stage ends, unless `data.keep_handoff` keeps
it.

`to_spark` computes the dataset into Ray's object store first (which spills to the
nodes' disks past its capacity), then takes the route its exact size allows. Without
`schema`, the Spark schema is read off the dataset's Arrow one; with pandas batches,
pass it: pandas holds timestamps as nanoseconds, dates and decimals as Python objects,
maps as lists of pairs, and a column of all nulls as no type at all, and `to_spark`
casts each block back to the schema given.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import ray
import ray.experimental
from pyspark.sql import types as T

from raybricks.cluster.compat.spark_jvm import estimated_bytes
from raybricks.data import routes
from raybricks.data.parquet_files import ParquetFiles, write_parts
from raybricks.data.routes import Choice
from raybricks.data.schema import CannotHandOver, arrow_schema, conform, nullable, spark_schema
from raybricks.data.slots import spark_job_that_starts
from raybricks.data.spark_parquet import READ_OPTIONS, proleptic_writes
from raybricks.platform.facts import ClusterFacts
from raybricks.stages.base import StageContext

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["CannotHandOver", "to_ray", "to_spark"]

logger = logging.getLogger(__name__)

BLOCK_BYTES = 16 * 1024 * 1024  # an Arrow handoff's blocks: about this size, or smaller
# The schema of each dataset to_ray made: Ray keeps none for a dataset of 0 rows.
_handed_schemas: weakref.WeakKeyDictionary[ray.data.Dataset, pa.Schema] = (
    weakref.WeakKeyDictionary()
)


def to_ray(
    df: DataFrame,
    *,
    route: str | None = None,
    rows_per_block: int | None = None,
    num_cpus: float = 0.25,
) -> ray.data.Dataset:
    """The Spark DataFrame `df` as a Ray Dataset of the same schema, every field
    nullable. `route` (auto, arrow, parquet, databricks) overrides `data.route`;
    `rows_per_block` cuts the Arrow route's blocks (by default about 16 MB, at least one
    per CPU of the cluster; the Parquet route's blocks are Spark's files); `num_cpus` is
    what each Ray task reading Parquet holds."""
    ctx = StageContext.current()
    # Refuses a column that cannot travel, first. Nullable all the way down, as it comes
    # back: pandas batches cannot hold a null struct of non-null fields.
    schema = arrow_schema(nullable(df.schema))
    clock = time.monotonic()
    choice = routes.to_ray_route(
        route or ctx.handoff_route,
        estimated_bytes(df),
        ctx.to_ray_arrow_max_bytes,
        routes.arrow_unavailable(),
        routes.databricks_unavailable(dict(df.sparkSession.sparkContext.getConf().getAll())),
    )
    what = "Spark's computation of the table to hand to Ray"
    with spark_job_that_starts(df.sparkSession.sparkContext, what):
        if choice.route == "arrow":
            ds, size = _arrow_to_ray(df, schema, rows_per_block)
        elif choice.route == "parquet":
            ds, size = _parquet_to_ray(ctx, df, schema, num_cpus)
        else:
            ds, size = _databricks_to_ray(df), None
    _record(ctx, "to_ray", choice, ds.count(), size, clock)
    _handed_schemas[ds] = schema
    return ds


def to_spark(
    data: ray.data.Dataset | Sequence[ray.ObjectRef],
    *,
    schema: T.StructType | str | None = None,
    route: str | None = None,
    num_cpus: float = 0.25,
) -> DataFrame:
    """`data` as a DataFrame of the run's Spark session: a Ray Dataset, or Arrow tables
    in Ray's object store (the ObjectRefs a pool of actors returned). `schema` (a
    StructType or a DDL string such as "id bigint, score double") is what each block is
    cast to (every field of it nullable); without it, the data's own. `route` (auto,
    arrow, parquet) overrides `data.route`; `num_cpus` is what each Ray task writing
    Parquet holds."""
    ctx = StageContext.current()
    clock = time.monotonic()
    blocks, size, found = _computed(data)
    computed = time.monotonic() - clock
    # Nullable all the way down on every route: Spark's Parquet reader makes it so, and
    # Spark 4.2's createDataFrame of Arrow fails on a struct of non-null fields.
    target = nullable(_target_schema(ctx.spark, schema, found, blocks))
    clock = time.monotonic()
    choice = routes.to_spark_route(
        route or ctx.handoff_route, size, ctx.to_spark_arrow_max_bytes, routes.arrow_unavailable()
    )
    if choice.route == "arrow":
        out, rows = _arrow_to_spark(ctx.spark, blocks, target)
    else:
        out, rows, writer = _parquet_to_spark(ctx, blocks, size, target, num_cpus)
        choice = Choice(choice.route, f"{choice.why}; written by {writer}")
    _record(ctx, "to_spark", choice, rows, size, clock, compute_seconds=computed)
    return out


def _arrow_to_ray(
    df: DataFrame, schema: pa.Schema, rows_per_block: int | None
) -> tuple[ray.data.Dataset, int]:
    """Spark's Arrow batches, collected by the driver, cut into blocks for Ray (their
    metadata read here: no Ray task needs a CPU for it)."""
    table = conform(df.toArrow(), schema)
    return ray.data.from_blocks(_blocks(table, rows_per_block)), table.nbytes


def _blocks(table: pa.Table, rows_per_block: int | None) -> list[pa.Table]:
    """`table` in slices of `rows_per_block` rows, or of about BLOCK_BYTES and at least
    one per CPU of the cluster where it has the rows: each is a task's or an actor
    call's worth."""
    if not table.num_rows:
        return [table]
    if rows_per_block is None:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = min(table.num_rows, max(cpus, math.ceil(table.nbytes / BLOCK_BYTES)))
        rows_per_block = math.ceil(table.num_rows / count)
    step = rows_per_block
    return [table.slice(start, step) for start in range(0, table.num_rows, step)]


def _parquet_to_ray(
    ctx: StageContext, df: DataFrame, schema: pa.Schema, num_cpus: float
) -> tuple[ray.data.Dataset, int]:
    """Spark writes Parquet; a Ray task reads each file Spark wrote (nothing listed)."""
    folder, uri = _handoff(ctx, "to-ray")
    with proleptic_writes(df.sparkSession):
        df.write.parquet(uri)
    files = sorted(folder.glob("*.parquet"))
    if not files:
        return ray.data.from_blocks([schema.empty_table()]), 0
    ds = ray.data.read_datasource(ParquetFiles(files, schema), num_cpus=num_cpus)
    return ds, sum(path.stat().st_size for path in files)


def _databricks_to_ray(df: DataFrame) -> ray.data.Dataset:
    """The runtime's in-memory route; an autoscaling Spark cluster cannot use Spark's
    chunk API (Databricks' docs)."""
    scale = ClusterFacts.of_session(df.sparkSession).autoscale
    fixed = scale is None or scale[0] == scale[1]
    return ray.data.from_spark(df, use_spark_chunk_api=fixed)  # type: ignore[call-arg]


def _computed(
    data: ray.data.Dataset | Sequence[ray.ObjectRef],
) -> tuple[list[ray.ObjectRef], int, pa.Schema | None]:
    """The data's Arrow blocks in Ray's object store, computed; their bytes; and the
    dataset's schema, where Ray knows it."""
    if isinstance(data, ray.data.Dataset):
        computed = data.materialize()
        found = computed.schema()
        schema = found.base_schema if found and found.names else _handed_schemas.get(data)
        return computed.to_arrow_refs(), computed.size_bytes(), schema
    blocks = list(data)
    ray.wait(blocks, num_returns=len(blocks), fetch_local=False)
    places = ray.experimental.get_object_locations(blocks)
    return blocks, sum(place.get("object_size") or 0 for place in places.values()), None


def _target_schema(
    spark: SparkSession,
    given: T.StructType | str | None,
    found: pa.Schema | None,
    blocks: list[ray.ObjectRef],
) -> T.StructType:
    if isinstance(given, T.StructType):
        return given
    if isinstance(given, str):
        return spark.createDataFrame([], given).schema  # Spark parses the DDL
    if found is None and blocks:
        found = ray.get(blocks[0]).schema
    if found is None:
        raise CannotHandOver(
            "the dataset has no rows and Ray knows no schema for it: pass to_spark the "
            "schema it should have (schema=...)"
        )
    return spark_schema(found)


def _arrow_to_spark(
    spark: SparkSession, blocks: list[ray.ObjectRef], target: T.StructType
) -> tuple[DataFrame, int]:
    schema = arrow_schema(target)
    tables = [conform(table, schema) for table in ray.get(blocks) if table.num_rows]
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    # One Spark partition per Arrow batch of Spark's (10,000 rows): one per block instead.
    frame = spark.createDataFrame(table, target).coalesce(max(1, len(blocks)))
    return frame, table.num_rows


def _parquet_to_spark(
    ctx: StageContext,
    blocks: list[ray.ObjectRef],
    size: int,
    target: T.StructType,
    num_cpus: float,
) -> tuple[DataFrame, int, str]:
    """Each block written as a Parquet file; Spark reads the files written."""
    folder, uri = _handoff(ctx, "to-spark")
    writer, parts = write_parts(blocks, size, folder, arrow_schema(target), num_cpus)
    rows = sum(count for _, count in parts)
    if not parts:
        return ctx.spark.createDataFrame([], target), rows, writer
    files = (f"{uri}/{name}" for name, _ in parts)
    return ctx.spark.read.schema(target).options(**READ_OPTIONS).parquet(*files), rows, writer


def _handoff(ctx: StageContext, direction: str) -> tuple[Path, str]:
    """A new folder in the stage's handoff folder: as this process names it, and as
    Spark does."""
    if ctx.handoff is None or ctx.handoff_uri is None or ctx.spark is None:
        raise LookupError("this stage has no Spark session or handoff folder (run it in a run)")
    name = f"{direction}-{uuid.uuid4().hex[:8]}"
    return ctx.handoff / name, f"{ctx.handoff_uri}/{name}"


def _record(
    ctx: StageContext,
    direction: str,
    choice: Choice,
    rows: int,
    size: int | None,
    clock: float,
    **more: float,
) -> None:
    handoff = {
        "direction": direction,
        "route": choice.route,
        "why": choice.why,
        "rows": rows,
        "bytes": size,
        "seconds": round(time.monotonic() - clock, 3),
        **{key: round(value, 3) for key, value in more.items()},
    }
    ctx.evidence.setdefault("handoffs", []).append(handoff)
    logger.debug("handoff %s", handoff)
