"""Calls/s of the detached_actors stage's own counter calls (a detached named Counter,
looked up by name) beside a bare Ray loop making the same calls to a plain actor,
from a driver and from a task, several rounds. Run against a cluster:

    raybricks exec -- python benchmarks/counter_calls.py OUT.json

Both counters and both tasks are pinned to one worker node, so the figures compare the
calls, not where Ray happened to place them; the four runs alternate round by round.
"""

import json
import os
import sys

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raybricks.cluster.lifecycle import live_worker_nodes
from raybricks.stages.detached_actors import Counter, call_counter, call_from_task
from rounds import alternating_rates

CALLS, NAME = 5000, "BenchCounter"


@ray.remote(num_cpus=0)
def bare_task(counter, calls):
    return ray.get([counter.next.remote() for _ in range(calls)])


def main(out):
    ray.init(namespace=os.environ["RAY_NAMESPACE"])
    here = NodeAffinitySchedulingStrategy(min(live_worker_nodes()), soft=False)
    Counter.options(name=NAME, lifetime="detached", scheduling_strategy=here).remote()
    bare = Counter.options(scheduling_strategy=here).remote()
    from_task, bare_from_task = (
        fn.options(scheduling_strategy=here) for fn in (call_from_task, bare_task)
    )
    runs = {
        "stage: from a driver": lambda: call_counter(NAME, CALLS),
        "bare: from a driver": lambda: ray.get([bare.next.remote() for _ in range(CALLS)]),
        "stage: from a task": lambda: ray.get(from_task.remote(NAME, CALLS)),
        "bare: from a task": lambda: ray.get(bare_from_task.remote(bare, CALLS)),
    }
    rates = alternating_rates(runs, CALLS)
    ray.kill(ray.get_actor(NAME))
    with open(out, "w") as f:
        json.dump(rates, f)


if __name__ == "__main__":
    main(sys.argv[1])
