"""Which way a table goes between Spark and Ray, and why.

- `arrow`: through the driver's memory as Arrow, into Ray's object store and back
  (Spark 4's `DataFrame.toArrow` and `createDataFrame` of an Arrow table). No files, no
  tasks to read or write them: the cheapest route for a table that fits the bound.
- `parquet`: Spark writes Parquet into the stage's handoff folder and Ray tasks read
  the files Spark wrote, or Ray tasks write them and Spark reads them: any size, the
  driver's memory untouched.
- `databricks`: the Databricks runtime's own `ray.data.from_spark` (ML runtime 15+,
  with `spark.databricks.pyspark.dataFrameChunk.enabled`), Spark to Ray only.

`auto` takes `databricks` where it is there, else `arrow` for a table of at most
`data.to_ray_arrow_max_mb` going in (by Spark's estimate) or `data.to_spark_arrow_max_mb`
coming back (its exact size), else `parquet`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Literal

import ray
from pyspark.sql import DataFrame

Route = Literal["arrow", "parquet", "databricks"]
ROUTES: tuple[str, ...] = ("auto", "arrow", "parquet", "databricks")
MB = 1024 * 1024
CHUNK_CONF = "spark.databricks.pyspark.dataFrameChunk.enabled"


@dataclass(frozen=True)
class Choice:
    route: Route
    why: str


def to_ray_route(
    requested: str, estimate: int | None, bound: int, arrow: str | None, databricks: str | None
) -> Choice:
    """The route of a table to Ray. `arrow` and `databricks` are None where the route is
    there, else why it is not."""
    if requested == "databricks" or (requested == "auto" and databricks is None):
        if databricks is not None:
            raise ValueError(f"route 'databricks' is not available here: {databricks}")
        return Choice("databricks", "the Databricks runtime's from_spark")
    return _arrow_or_parquet(requested, estimate, bound, arrow, "Spark's estimate")


def to_spark_route(requested: str, size: int, bound: int, arrow: str | None) -> Choice:
    """The route of a dataset of `size` bytes back to Spark."""
    if requested == "databricks":
        raise ValueError("route 'databricks' goes only to Ray; use auto, arrow or parquet")
    return _arrow_or_parquet(requested, size, bound, arrow, "its size")


def _arrow_or_parquet(
    requested: str, size: int | None, bound: int, arrow: str | None, what: str
) -> Choice:
    if requested == "parquet":
        return Choice("parquet", "asked for")
    if requested == "arrow":
        if arrow is not None:
            raise ValueError(f"route 'arrow' is not available here: {arrow}")
        return Choice("arrow", "asked for")
    if arrow is not None:
        return Choice("parquet", arrow)
    if size is None:
        return Choice("parquet", "Spark has no size estimate for the table")
    if size > bound:
        return Choice("parquet", f"{what} {size / MB:,.1f} MB is above the bound {bound / MB:g} MB")
    return Choice("arrow", f"{what} {size / MB:,.1f} MB is within the bound {bound / MB:g} MB")


def arrow_unavailable() -> str | None:
    """Why the Arrow route is not there (None where it is): it needs Spark 4's
    `DataFrame.toArrow` and `createDataFrame` of an Arrow table."""
    if not hasattr(DataFrame, "toArrow"):
        return "this Spark has no DataFrame.toArrow (Spark 4 has)"
    return None


def databricks_unavailable(conf: dict[str, str]) -> str | None:
    """Why the Databricks runtime's `from_spark` is not there (None where it is): the
    runtime's Ray takes `use_spark_chunk_api`, and the cluster enables Spark's chunks."""
    if "use_spark_chunk_api" not in inspect.signature(ray.data.from_spark).parameters:
        return "this Ray's from_spark needs RayDP (the Databricks runtime's Ray does not)"
    if conf.get(CHUNK_CONF, "false").lower() != "true":
        return f"the cluster's Spark conf does not set {CHUNK_CONF}=true"
    return None
