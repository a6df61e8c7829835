"""The batch_inference stage's scoring as a Spark user would write it without Ray: a
`mapInPandas` UDF, the model loaded in each task. Table in (the stage's own table), table
out (written as Parquet); the same Spark as `raybricks run` starts, without Ray.

    python -m benchmarks.map_in_pandas ROWS PARTITIONS LOAD_SECONDS OUT_JSON

Writes to OUT_JSON the seconds from table in to table out.
"""

import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from raybricks.cluster.spark import get_or_create_spark
from raybricks.platform import Platform
from raybricks.settings import ClusterSettings
from raybricks.stages.batch_inference import Model, features


def scored_with(load_seconds: float):
    """The UDF: every task (partition) loads the model, then scores its batches."""

    def scored(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = Model(load_seconds)
        for frame in frames:
            score = model.score(
                frame["x0"].to_numpy(), frame["x1"].to_numpy(), frame["x2"].to_numpy()
            )
            yield pd.DataFrame({"id": frame["id"], "score": score})

    return scored


def main() -> None:
    rows, partitions, load_seconds, out = sys.argv[1:5]
    settings = ClusterSettings()  # the local default: the Spark raybricks starts
    spark = get_or_create_spark(Platform.of(settings), settings)
    try:
        table = features(spark.session, int(rows), int(partitions))
        with tempfile.TemporaryDirectory(prefix="map-in-pandas-") as folder:
            clock = time.perf_counter()
            scored = table.mapInPandas(scored_with(float(load_seconds)), "id long, score double")
            scored.write.parquet(f"file://{folder}/scored")
            seconds = time.perf_counter() - clock
    finally:
        spark.stop()
    Path(out).write_text(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main()
