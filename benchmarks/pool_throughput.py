"""Items/s of ActorPool.map, PipelinedActorPool.map and direct round-robin submission,
over the same actors, several rounds. Run against a cluster:

    raybricks exec -- python benchmarks/pool_throughput.py OUT.json
"""

import json
import statistics
import sys
import time

import ray
from ray.util import ActorPool

from raybricks.pool import DEFAULT_DEPTH as DEPTH
from raybricks.pool import PipelinedActorPool

ITEMS, ROUNDS, ACTORS = 5000, 7, 2


@ray.remote
class Doubler:
    def double(self, n):
        return 2 * n


def rate(run):
    clock = time.perf_counter()
    run()
    return ITEMS / (time.perf_counter() - clock)


def main(out):
    ray.init()
    actors = [Doubler.remote() for _ in range(ACTORS)]
    values = list(range(ITEMS))
    call = lambda a, v: a.double.remote(v)  # noqa: E731
    runs = {
        "ActorPool.map": lambda: list(ActorPool(actors).map(call, values)),
        f"PipelinedActorPool.map (depth {DEPTH})": lambda: list(
            PipelinedActorPool(actors, DEPTH).map(call, values)
        ),
        "direct round-robin": lambda: ray.get(
            [actors[i % ACTORS].double.remote(v) for i, v in enumerate(values)]
        ),
    }
    rates = {name: [] for name in runs}
    for round_ in range(ROUNDS + 1):  # rounds alternate, so a slow moment is shared out
        for name, run in runs.items():
            items_per_second = rate(run)
            if round_:  # the first round warms up
                rates[name].append(items_per_second)
    with open(out, "w") as f:
        json.dump({name: statistics.median(r) for name, r in rates.items()}, f)


if __name__ == "__main__":
    main(sys.argv[1])
