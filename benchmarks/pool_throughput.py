"""Items/s of ActorPool.map, PipelinedActorPool.map and direct round-robin submission,
over the same actors, in alternating rounds. Run against a cluster:

    raybricks exec -- python benchmarks/pool_throughput.py OUT.json
"""

import json
import sys

import ray
from ray.util import ActorPool

from raybricks.stages.pool import DEFAULT_DEPTH as DEPTH
from raybricks.stages.pool import PipelinedActorPool
from rounds import alternating_rates

ITEMS, ACTORS = 5000, 2


@ray.remote
class Doubler:
    def double(self, n):
        return 2 * n


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
    with open(out, "w") as f:
        json.dump(alternating_rates(runs, ITEMS), f)


if __name__ == "__main__":
    main(sys.argv[1])
