"""Every PySpark name raybricks reaches for exists on this Spark (make test-runtimes runs
this file on each runtime's Spark): a Spark that moved one fails here, by name, and not
in a run on a cluster. The JVM-side handles behind them are exercised by the cluster
tier (a live JVM is needed)."""

from __future__ import annotations

import importlib

import pyspark
import pytest

SPARK_MAJOR = int(pyspark.__version__.split(".")[0])

# (module, attribute path) for what lib/raybricks imports or calls on PySpark.
TYPES = [
    "ArrayType",
    "BinaryType",
    "BooleanType",
    "ByteType",
    "DataType",
    "DateType",
    "DecimalType",
    "DoubleType",
    "FloatType",
    "IntegerType",
    "LongType",
    "MapType",
    "ShortType",
    "StringType",
    "StructField",
    "StructType",
    "TimestampNTZType",
    "TimestampType",
    "UserDefinedType",
]
PUBLIC = [
    ("pyspark", "SparkConf.getAll"),
    ("pyspark", "SparkContext.stop"),
    ("pyspark", "SparkContext.getConf"),
    ("pyspark", "SparkContext.setJobGroup"),
    ("pyspark", "SparkContext.cancelJobGroup"),
    ("pyspark", "SparkContext.setLocalProperty"),
    ("pyspark", "SparkContext.defaultParallelism"),
    ("pyspark", "SparkContext.applicationId"),
    ("pyspark.sql", "SparkSession.builder"),
    ("pyspark.sql", "SparkSession.getActiveSession"),
    ("pyspark.sql", "SparkSession.createDataFrame"),
    ("pyspark.sql", "SparkSession.range"),
    ("pyspark.sql", "SparkSession.read"),
    ("pyspark.sql", "DataFrame.coalesce"),
    ("pyspark.sql", "DataFrame.write"),
    ("pyspark.sql", "DataFrameWriter.parquet"),
    ("pyspark.sql", "DataFrameReader.parquet"),
    *[("pyspark.sql.functions", name) for name in ("abs", "col", "exp", "lit")],
    *[("pyspark.sql.types", name) for name in TYPES],
    ("pyspark.daemon", "manager"),  # what raybricks.cluster.python_daemon runs
    ("pyspark.ml.functions", "vector_to_array"),  # the fix a UDT column's refusal names
]
# PySpark's private handles, read through cluster/compat/spark_jvm.py (which answers
# None where one is gone): a Spark without one still runs, with less.
PRIVATE = [
    ("pyspark", "SparkContext._gateway"),
    ("pyspark", "SparkContext._jvm"),
    ("pyspark", "SparkContext._active_spark_context"),
    ("pyspark", "SparkContext._ensure_initialized"),
]
SPARK_4 = [("pyspark.sql", "DataFrame.toArrow")]  # the Arrow route's way out of Spark


def _owner_and_name(module: str, path: str) -> tuple[object, str]:
    owner: object = importlib.import_module(module)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    return owner, name


@pytest.mark.parametrize(("module", "path"), PUBLIC + PRIVATE, ids=lambda x: str(x))
def test_each_spark_name_raybricks_uses_exists(module, path):
    owner, name = _owner_and_name(module, path)
    assert hasattr(owner, name)  # the private handles may be None until Spark starts


@pytest.mark.skipif(SPARK_MAJOR < 4, reason="Spark 3.5 hands tables over by Parquet only")
@pytest.mark.parametrize(("module", "path"), SPARK_4, ids=lambda x: str(x))
def test_spark_4_has_what_the_arrow_route_uses(module, path):
    owner, name = _owner_and_name(module, path)
    assert callable(getattr(owner, name))
