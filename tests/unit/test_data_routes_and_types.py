"""Which Spark types travel and as what, and which route a table takes: no cluster."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import types as T
from ray.data.extensions import ArrowTensorArray

from raybricks.data import routes
from raybricks.data.parquet_files import ParquetFiles, packed
from raybricks.data.schema import CannotHandOver, arrow_schema, conform, nullable, spark_schema

MB = 1024 * 1024


def struct(**types: T.DataType) -> T.StructType:
    return T.StructType([T.StructField(name, dtype) for name, dtype in types.items()])


def test_spark_types_map_to_arrow_and_back_one_for_one():
    schema = struct(
        at=T.TimestampType(),
        local_at=T.TimestampNTZType(),
        amount=T.DecimalType(38, 18),
        weights=T.MapType(T.StringType(), T.ArrayType(T.DoubleType(), containsNull=False)),
        nested=struct(inner=struct(day=T.DateType(), tiny=T.ByteType())),
    )
    arrow = arrow_schema(schema)
    assert arrow.field("at").type == pa.timestamp("us", tz="UTC")
    assert arrow.field("local_at").type == pa.timestamp("us")
    assert arrow.field("amount").type == pa.decimal128(38, 18)
    assert spark_schema(arrow) == schema


def test_nullable_relaxes_every_field_element_and_value_all_the_way_down():
    def strict(dtype: T.DataType) -> T.StructField:
        return T.StructField("f", dtype, nullable=False, metadata={"comment": "kept"})

    inner = T.StructType([strict(T.TimestampType())])
    schema = T.StructType(
        [
            strict(T.ArrayType(inner, containsNull=False)),
            strict(T.MapType(T.StringType(), T.ArrayType(T.LongType(), False), False)),
        ]
    )
    relaxed_inner = T.StructType([T.StructField("f", T.TimestampType(), True, {"comment": "kept"})])
    want = T.StructType(
        [
            T.StructField("f", T.ArrayType(relaxed_inner, True), True, {"comment": "kept"}),
            T.StructField(
                "f",
                T.MapType(T.StringType(), T.ArrayType(T.LongType(), True), True),
                True,
                {"comment": "kept"},
            ),
        ]
    )
    assert nullable(schema) == want


@pytest.mark.parametrize(
    ("dtype", "words"),
    [
        (
            T.YearMonthIntervalType(),
            "interval year to month, which cannot go to Ray and back: cast",
        ),
        (T.DayTimeIntervalType(), "interval day to second, which cannot go to Ray and back: cast"),
        (T.CalendarIntervalType(), "interval, which cannot go to Ray and back: cast"),
        (T.NullType(), "void, which cannot go to Ray and back: cast the column"),
        (T.VariantType(), "variant, which cannot go to Ray and back: turn it into a string"),
        (VectorUDT(), "vector_to_array"),
    ],
)
def test_a_type_with_no_trip_is_refused_naming_the_column_and_the_fix(dtype, words):
    with pytest.raises(CannotHandOver, match=r"column 'nested\.features'") as refused:
        arrow_schema(struct(id=T.LongType(), nested=struct(features=dtype)))
    assert words in str(refused.value) and "\n" not in str(refused.value)


def test_ray_s_own_types_come_back_as_spark_s_nearest():
    vectors = ArrowTensorArray.from_numpy(np.ones((3, 4), dtype=np.float32))
    table = pa.table(
        {
            "vector": vectors,
            "count": pa.array([1, 2, 3], pa.uint32()),
            "text": pa.array(["a", "b", None], pa.large_string()),
            "at": pa.array([dt.datetime(2000, 1, 1, 0, 0, 0, 1)] * 3, pa.timestamp("ns")),
        }
    )
    schema = spark_schema(table.schema)
    assert schema["vector"].dataType == T.ArrayType(T.FloatType(), containsNull=True)
    assert schema["count"].dataType == T.LongType()
    assert schema["text"].dataType == T.StringType()
    assert schema["at"].dataType == T.TimestampNTZType()
    back = conform(table, arrow_schema(schema))
    assert back.column("vector").to_pylist() == [[1.0] * 4] * 3
    assert back.column("at").type == pa.timestamp("us")
    assert back.column("at")[0].as_py() == dt.datetime(2000, 1, 1, 0, 0, 0, 1)


def test_a_tensor_of_two_dimensions_a_row_is_refused_saying_to_flatten_it():
    images = ArrowTensorArray.from_numpy(np.zeros((2, 3, 3)))
    with pytest.raises(CannotHandOver, match=r"column 'image'.*flatten it"):
        spark_schema(pa.table({"image": images}).schema)


def test_a_column_missing_or_of_another_kind_is_refused_saying_which():
    schema = pa.schema([("id", pa.int64()), ("score", pa.float64())])
    with pytest.raises(CannotHandOver, match=r"no column 'score'.*\(id came back\)"):
        conform(pa.table({"id": [1]}), schema)
    with pytest.raises(CannotHandOver, match=r"column 'score' came back as string"):
        conform(pa.table({"id": [1], "score": ["high"]}), schema)


@pytest.mark.parametrize(
    ("requested", "estimate", "arrow", "databricks", "route", "why"),
    [
        (
            "auto",
            10 * MB,
            None,
            "no",
            "arrow",
            "Spark's estimate 10.0 MB is within the bound 128 MB",
        ),
        ("auto", 200 * MB, None, "no", "parquet", "Spark's estimate 200.0 MB is above"),
        ("auto", None, None, "no", "parquet", "Spark has no size estimate for the table"),
        ("auto", 1, "no toArrow here", "no", "parquet", "no toArrow here"),
        ("auto", 200 * MB, None, None, "databricks", "the Databricks runtime's from_spark"),
        ("parquet", 1, None, None, "parquet", "asked for"),
        ("arrow", 200 * MB, None, "no", "arrow", "asked for"),
    ],
)
def test_the_route_to_ray_and_why(requested, estimate, arrow, databricks, route, why):
    choice = routes.to_ray_route(requested, estimate, 128 * MB, arrow, databricks)
    assert choice.route == route and choice.why.startswith(why)


def test_a_route_that_is_not_there_is_refused_saying_why():
    with pytest.raises(ValueError, match="'arrow' is not available here: no toArrow"):
        routes.to_ray_route("arrow", 1, MB, "no toArrow", "no")
    with pytest.raises(ValueError, match="'databricks' is not available here: needs RayDP"):
        routes.to_ray_route("databricks", 1, MB, None, "needs RayDP")
    with pytest.raises(ValueError, match="'databricks' goes only to Ray"):
        routes.to_spark_route("databricks", 1, MB, None)


def test_the_databricks_route_needs_the_runtime_s_ray_and_spark_s_chunks():
    why = routes.databricks_unavailable({routes.CHUNK_CONF: "true"})
    assert why is not None and "RayDP" in why  # PyPI's Ray: from_spark needs RayDP


def test_the_arrow_route_is_there_on_this_spark():
    assert routes.arrow_unavailable() is None


@pytest.mark.parametrize(
    ("sizes", "groups"),
    [
        ([], []),
        ([10, 10, 10], [[0, 1, 2]]),
        ([60, 50, 30, 0], [[0], [1, 2, 3]]),
        ([200, 1, 200], [[0], [1], [2]]),
        ([0, 0], [[0, 1]]),
    ],
)
def test_small_files_share_a_read_task_up_to_the_bound(sizes, groups):
    assert packed(sizes, bound=100) == groups


def test_each_file_of_a_packed_read_task_is_a_block_of_its_own(tmp_path):
    schema = pa.schema([("id", pa.int64()), ("at", pa.timestamp("us", tz="UTC"))])
    when = dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc)
    files = []
    for i in range(3):
        files.append(tmp_path / f"part-{i}.parquet")
        pq.write_table(pa.table({"id": [i, i + 10], "at": [when, None]}, schema=schema), files[-1])
    (task,) = ParquetFiles(files, schema).get_read_tasks(parallelism=8)
    assert task.metadata.num_rows == 6 and len(task.metadata.input_files) == 3
    blocks = list(task())
    assert [block.column("id").to_pylist() for block in blocks] == [[0, 10], [1, 11], [2, 12]]
    assert all(block.schema == schema for block in blocks)
