"""Calls/s of the detached_actors stage's own counter calls (a detached named Counter,
looked up by name) beside a bare Ray loop making the same calls to a plain actor,
from a driver and from a task, several rounds. Run against a cluster:

    raybricks exec -- python benchmarks/counter_calls.py OUT.json

Both counters and both tasks are pinned to one worker node, so the figures compare the
calls, not where Ray happened to place them; rounds alternate between the four runs,
so a slow moment of the machine is shared out.
"""

import json
import os
import statistics
import sys
import time

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raybricks.cluster import live_worker_nodes
from raybricks.stages.detached_actors import Counter, call_counter, call_from_task

CALLS, ROUNDS, NAME = 5000, 7, "BenchCounter"


@ray.remote(num_cpus=0)
def bare_task(counter, calls):
    return ray.get([counter.next.remote() for _ in range(calls)])


def rate(run):
    clock = time.perf_counter()
    assert len(run()) == CALLS
    return CALLS / (time.perf_counter() - clock)


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
    samples = {name: [] for name in runs}
    for round_ in range(ROUNDS + 1):
        for name, run in runs.items():
            calls_per_second = rate(run)
            if round_:  # the first round warms up
                samples[name].append(calls_per_second)
    ray.kill(ray.get_actor(NAME))
    with open(out, "w") as f:
        json.dump({name: statistics.median(r) for name, r in samples.items()}, f)


if __name__ == "__main__":
    main(sys.argv[1])
