"""The batch_inference stage's scoring as a Spark user would write it without Ray, on the
same Spark as `raybricks run` starts (without Ray), table in to table out (written as
Parquet):

- `mapInPandas`: the naive UDF, the model loaded in every task;
- `predict_batch_udf` (`pyspark.ml.functions`): the model loaded once per Python worker
  and kept there across tasks (Spark reuses its Python workers).

    python -m benchmarks.spark_scoring WAY ROWS PARTITIONS LOAD_SECONDS OUT_JSON

Writes to OUT_JSON the seconds from table in to table out, and this process's peak RSS.
"""

import json
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.ml.functions import predict_batch_udf
from pyspark.sql import DataFrame
from pyspark.sql.types import DoubleType

from raybricks.cluster.spark import get_or_create_spark
from raybricks.platform import Platform
from raybricks.settings import ClusterSettings
from raybricks.stages.batch_inference import features
from raybricks.stages.scorer import Model

BATCH_SIZE = 25_000  # rows per call, as the stage's default


def map_in_pandas(table: DataFrame, load_seconds: float) -> DataFrame:
    def scored(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = Model(load_seconds)  # every task (partition) loads it
        for frame in frames:
            score = model.score(
                frame["x0"].to_numpy(), frame["x1"].to_numpy(), frame["x2"].to_numpy()
            )
            yield pd.DataFrame({"id": frame["id"], "score": score})

    return table.mapInPandas(scored, "id long, score double")


def predict_batch(table: DataFrame, load_seconds: float) -> DataFrame:
    def make_predict_fn():
        model = Model(load_seconds)  # once per Python worker: Spark caches the function

        def predict(x0: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
            return model.score(x0, x1, x2)

        return predict

    score = predict_batch_udf(make_predict_fn, return_type=DoubleType(), batch_size=BATCH_SIZE)
    return table.select("id", score("x0", "x1", "x2").alias("score"))


WAYS = {"mapInPandas": map_in_pandas, "predict_batch_udf": predict_batch}


def main() -> None:
    way, rows, partitions, load_seconds, out = sys.argv[1:6]
    settings = ClusterSettings()  # the local default: the Spark raybricks starts
    spark = get_or_create_spark(Platform.of(settings), settings)
    try:
        table = features(spark.session, int(rows), int(partitions))
        with tempfile.TemporaryDirectory(prefix="spark-scoring-") as folder:
            clock = time.perf_counter()
            WAYS[way](table, float(load_seconds)).write.parquet(f"file://{folder}/scored")
            seconds = time.perf_counter() - clock
    finally:
        spark.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    Path(out).write_text(json.dumps({"seconds": seconds, "driver_peak_mib": peak}))


if __name__ == "__main__":
    main()
