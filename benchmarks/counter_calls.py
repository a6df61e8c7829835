"""Calls/s of the detached_actors stage's own counter calls (a detached named Counter,
looked up by name) beside a bare Ray loop making the same calls to a plain actor,
from a driver and from a task, several rounds. Run against a cluster:

    raybricks exec -- python benchmarks/counter_calls.py OUT.json
"""

import json
import os
import statistics
import sys
import time

import ray

from raybricks.stages.detached_actors import Counter, call_counter, call_from_task

CALLS, ROUNDS, NAME = 2000, 5, "BenchCounter"


@ray.remote(num_cpus=0)
def bare_task(counter, calls):
    return ray.get([counter.next.remote() for _ in range(calls)])


def rate(run):
    clock = time.perf_counter()
    assert len(run()) == CALLS
    return CALLS / (time.perf_counter() - clock)


def main(out):
    ray.init(namespace=os.environ["RAY_NAMESPACE"])
    Counter.options(name=NAME, lifetime="detached").remote()
    bare = Counter.remote()
    runs = {
        "stage: from a driver": lambda: call_counter(NAME, CALLS),
        "bare: from a driver": lambda: ray.get([bare.next.remote() for _ in range(CALLS)]),
        "stage: from a task": lambda: ray.get(call_from_task.remote(NAME, CALLS)),
        "bare: from a task": lambda: ray.get(bare_task.remote(bare, CALLS)),
    }
    for run in runs.values():
        run()  # warm up
    rates = {
        name: statistics.median(rate(run) for _ in range(ROUNDS)) for name, run in runs.items()
    }
    ray.kill(ray.get_actor(NAME))
    with open(out, "w") as f:
        json.dump(rates, f)


if __name__ == "__main__":
    main(sys.argv[1])
