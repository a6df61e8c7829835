"""The fixed cost of a handoff: a 1,000-row table (the batch_inference stage's) to Ray
and back, on the local default cluster as `raybricks run` starts it, timed from the
table in to Spark's count of the table out.

    python -m benchmarks.round_trip ROUNDS OUT_JSON

Writes to OUT_JSON the seconds of each round (the first one cold) and the routes taken.
"""

import json
import sys
import tempfile
import time
from pathlib import Path

from raybricks.cluster.lifecycle import ray_on_spark
from raybricks.data import to_ray, to_spark
from raybricks.platform import Platform
from raybricks.settings import ClusterSettings
from raybricks.stages.base import StageContext
from raybricks.stages.batch_inference import features

ROWS = 1_000


def main() -> None:
    rounds, out = int(sys.argv[1]), Path(sys.argv[2])
    settings = ClusterSettings()
    with tempfile.TemporaryDirectory(prefix="round-trip-") as folder:
        logs = Path(folder)
        with ray_on_spark(settings, Platform.of(settings), "bench", logs) as cluster:
            handoff = logs / "handoff"
            ctx = StageContext(
                "bench", logs, cluster.address, cluster.spark, handoff, f"file://{handoff}"
            )
            seconds = []
            with ctx.current_here():
                table = features(cluster.spark, ROWS, 2).cache()
                table.count()  # the table in: computed once, before the clock
                for _ in range(rounds):
                    clock = time.perf_counter()
                    assert to_spark(to_ray(table)).count() == ROWS
                    seconds.append(time.perf_counter() - clock)
            ctx.close()
    routes = sorted({h["route"] for h in ctx.evidence["handoffs"]})
    out.write_text(json.dumps({"seconds": seconds, "routes": routes}))


if __name__ == "__main__":
    main()
