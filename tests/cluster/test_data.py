"""Spark tables through Ray and back on the session's cluster: every type a table holds,
on each route, through Arrow and pandas batches, 0 rows, 1 and 200 partitions."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import ray
from packaging.version import Version
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from raybricks.data import CannotHandOver, to_ray, to_spark
from raybricks.data.routes import arrow_unavailable
from raybricks.data.schema import nullable
from raybricks.data.spark_parquet import WRITE_CONF
from raybricks.stages.base import StageContext

UTC = dt.timezone.utc
NESTED = T.StructType(
    [
        T.StructField("name", T.StringType()),
        T.StructField("inner", T.StructType([T.StructField("at", T.TimestampType())])),
    ]
)
# A struct of non-null fields holding a timestamp, as a Delta table's NOT NULL fields.
EVENT = T.StructType(
    [
        T.StructField("kind", T.StringType(), nullable=False),
        T.StructField("at", T.TimestampType(), nullable=False),
    ]
)
SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType(), nullable=False),
        T.StructField("at", T.TimestampType()),
        T.StructField("local_at", T.TimestampNTZType()),
        T.StructField("day", T.DateType()),
        T.StructField("amount", T.DecimalType(38, 18)),
        T.StructField("price", T.DecimalType(10, 2)),
        T.StructField("blob", T.BinaryType()),
        T.StructField("tags", T.ArrayType(T.StringType())),
        T.StructField("weights", T.MapType(T.StringType(), T.DoubleType())),
        T.StructField("nested", NESTED),
        T.StructField("matrix", T.ArrayType(T.ArrayType(T.IntegerType()))),
        T.StructField("ratio", T.DoubleType()),
        T.StructField("small", T.FloatType()),
        T.StructField("text", T.StringType()),
        T.StructField("flag", T.BooleanType()),
        T.StructField("tiny", T.ByteType()),
        T.StructField("short", T.ShortType()),
        T.StructField("count", T.IntegerType()),
        T.StructField("event", EVENT),
    ]
)
ROWS = [
    (
        1,
        dt.datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        dt.datetime(2100, 5, 5, 1, 2, 3, 1),
        dt.date(1850, 1, 1),
        Decimal("12345678901234567890.123456789012345678"),
        Decimal("-0.01"),
        b"\x00\xff\x10",
        ["a", None, ""],
        {"w": 1.5, "none": None},
        ("ü", (dt.datetime(1900, 1, 1, tzinfo=UTC),)),
        [[1, 2], [], None],
        float("nan"),
        float("inf"),
        "日本語 ✓",
        True,
        -128,
        -32768,
        -(2**31),
        ("click", dt.datetime(1960, 2, 29, 12, 0, 0, 1, tzinfo=UTC)),
    ),
    (2, *([None] * (len(SCHEMA) - 1))),
    (
        3,
        dt.datetime(2262, 4, 12, tzinfo=UTC),  # past pandas' nanoseconds
        dt.datetime(1677, 9, 21),
        dt.date(9999, 12, 31),
        Decimal("-0.000000000000000001"),
        Decimal("99999999.99"),
        b"",
        [],
        {},
        (None, None),
        [[None]],
        float("-inf"),
        -0.0,
        "",
        False,
        127,
        32767,
        2**31 - 1,
        ("", dt.datetime(2262, 4, 12, 0, 0, 1, tzinfo=UTC)),
    ),
    (
        4,
        dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
        dt.datetime(1970, 1, 1),
        dt.date(1, 1, 1),
        Decimal(0),
        Decimal("0.00"),
        bytes(range(256)),
        ["x"],
        {"": 0.0},
        ("", (None,)),
        [[0]],
        1e-300,
        float("nan"),
        " ",
        None,
        0,
        0,
        0,
        ("view", dt.datetime(1970, 1, 1, tzinfo=UTC)),
    ),
]


@pytest.fixture
def stage(ray_cluster, tmp_path) -> Iterator[StageContext]:
    """A stage's context, as a run makes it, current in this thread."""
    handoff = tmp_path / "handoff"
    ctx = StageContext(
        "raybricks-tests",
        tmp_path,
        ray_cluster.info.address,
        ray_cluster.info.spark,
        handoff,
        f"file://{handoff}",
    )
    with ctx.current_here():
        yield ctx
    ctx.close()
    assert not handoff.exists()


def table(stage: StageContext, rows: list[tuple] = ROWS, partitions: int = 2) -> DataFrame:
    return stage.spark.createDataFrame(rows, SCHEMA).repartition(partitions)


def same(left: Any, right: Any) -> bool:
    """Equal, NaN equal to NaN, all the way down."""
    if isinstance(left, float) and isinstance(right, float):
        return left == right or (math.isnan(left) and math.isnan(right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        return len(left) == len(right) and all(map(same, left, right))
    return bool(type(left) is type(right) and left == right)


@dataclass(frozen=True)
class Expected:
    """A source table's schema as it comes back, and its rows by id."""

    schema: T.StructType
    rows: list[dict[str, Any]]

    @classmethod
    def of(cls, source: DataFrame) -> Expected:
        return cls(nullable(source.schema), rows_by_id(source))


def rows_by_id(df: DataFrame) -> list[dict[str, Any]]:
    """Every row, as a dict, in id order (sorted here: no Spark job of its own)."""
    return sorted((row.asDict(recursive=True) for row in df.collect()), key=lambda r: r["id"])


def assert_same_table(out: DataFrame, expected: Expected, way: str) -> None:
    assert out.schema == expected.schema, way
    for mine, theirs in zip(rows_by_id(out), expected.rows, strict=True):
        wrong = {k: (mine[k], theirs[k]) for k in theirs if not same(mine[k], theirs[k])}
        assert not wrong, f"{way}, id {theirs['id']}: {wrong}"


# Both routes, where this Spark has both (make test-runtimes runs it on each runtime's).
NO_ARROW = arrow_unavailable()
ROUTES = [
    pytest.param("arrow", marks=pytest.mark.skipif(bool(NO_ARROW), reason=str(NO_ARROW))),
    "parquet",
]
IDENTITY: dict[str, Callable[[ray.data.Dataset], ray.data.Dataset]] = {
    "no batches": lambda ds: ds,
    "arrow batches": lambda ds: ds.map_batches(lambda b: b, batch_format="pyarrow"),
    "pandas batches": lambda ds: ds.map_batches(lambda b: b, batch_format="pandas"),
}
# Ray before 2.56 (2.52 seen) cannot turn a pandas batch of this table's lists and maps into
# Arrow (its own conversion fails; docs/stages.md says so): make test-ray-versions checks
# the other batches there.
if Version(ray.__version__) < Version("2.56"):
    del IDENTITY["pandas batches"]


@pytest.mark.parametrize("route", ROUTES)
def test_every_type_comes_back_as_it_went(stage, route):
    """One table to Ray, and back through no batches, Arrow and pandas batches, each cast
    to the schema given; Arrow batches also without one: the dataset's own Arrow schema
    is enough, with no pandas on the way."""
    source = table(stage)
    expected = Expected.of(source)
    rebase = {key: stage.spark.conf.get(key) for key in WRITE_CONF}
    ds = to_ray(source, route=route)
    assert ds.schema().names == source.columns
    assert {key: stage.spark.conf.get(key) for key in WRITE_CONF} == rebase  # put back
    for batches, identity in IDENTITY.items():
        out = to_spark(identity(ds), schema=source.schema, route=route)
        assert_same_table(out, expected, batches)
    out = to_spark(IDENTITY["arrow batches"](ds), route=route)
    assert_same_table(out, expected, "arrow batches, no schema given")
    assert [h["route"] for h in stage.evidence["handoffs"]] == [route] * (len(IDENTITY) + 2)


@pytest.mark.parametrize("route", ["arrow", "parquet"])
def test_an_empty_table_goes_and_comes_back_with_its_schema(stage, route):
    source = table(stage, rows=[])
    ds = to_ray(source, route=route)
    assert ds.count() == 0 and ds.schema().names == source.columns
    out = to_spark(ds, route=route)
    assert (out.count(), out.schema) == (0, nullable(source.schema))
    scored = ds.map_batches(lambda b: b, batch_format="pandas")
    out = to_spark(scored, schema="id bigint, at timestamp", route=route)
    assert (out.count(), out.columns) == (0, ["id", "at"])
    assert [h["rows"] for h in stage.evidence["handoffs"]] == [0, 0, 0]


def test_an_empty_result_whose_schema_ray_lost_is_refused_saying_what_to_pass(stage):
    """Ray keeps no schema for a dataset of 0 rows: only the one to_ray made is known."""
    ds = to_ray(table(stage, rows=[])).map_batches(lambda b: b, batch_format="pandas")
    with pytest.raises(CannotHandOver, match=r"no rows and Ray knows no schema.*schema="):
        to_spark(ds)
    with pytest.raises(CannotHandOver, match=r"no rows and Ray knows no schema.*schema="):
        to_spark([])


@pytest.mark.parametrize("partitions", [1, pytest.param(200, marks=pytest.mark.slow)])
def test_one_partition_and_two_hundred_small_ones_work_the_same(stage, partitions, tmp_path):
    """A table as users have them, Parquet files Spark sized, on the auto route."""
    rows = [(i, *ROWS[i % len(ROWS)][1:]) for i in range(1_000)]
    written = f"file://{tmp_path}/events"
    table(stage, rows, partitions).write.parquet(written)
    source = stage.spark.read.parquet(written)
    assert len(source.inputFiles()) == partitions
    out = to_spark(to_ray(source))
    assert_same_table(out, Expected.of(source), "the auto route")
    to_ray_leg, to_spark_leg = stage.evidence["handoffs"]
    assert (to_ray_leg["route"], to_spark_leg["route"]) == ("arrow", "arrow")
    assert "within the bound" in to_ray_leg["why"]


def test_a_table_spark_cannot_size_takes_parquet_saying_why(stage):
    out = to_spark(to_ray(table(stage)))  # rows from Python: Spark has no estimate
    assert_same_table(out, Expected.of(table(stage)), "the auto route")
    assert stage.evidence["handoffs"][0]["why"] == "Spark has no size estimate for the table"


def test_a_table_above_the_bound_takes_parquet_both_ways_saying_why(stage):
    stage.to_ray_arrow_max_bytes = stage.to_spark_arrow_max_bytes = 1_000
    source = stage.spark.range(0, 50_000, 1, 4).selectExpr("id", "id * 0.5 as x")
    out = to_spark(to_ray(source))
    assert out.count() == 50_000
    to_ray_leg, to_spark_leg = stage.evidence["handoffs"]
    assert (to_ray_leg["route"], to_spark_leg["route"]) == ("parquet", "parquet")
    assert "above the bound" in to_ray_leg["why"] and "above the bound" in to_spark_leg["why"]
    assert to_ray_leg["rows"] == to_spark_leg["rows"] == 50_000
    assert to_spark_leg["bytes"] >= 50_000 * 16


def test_a_column_that_cannot_travel_is_refused_before_anything_moves(stage):
    source = stage.spark.sql("select 1L as id, interval '2' year as tenure")
    with pytest.raises(CannotHandOver, match=r"column 'tenure' is interval year.*cast it"):
        to_ray(source)
    assert "handoffs" not in stage.evidence and not stage.handoff.exists()
