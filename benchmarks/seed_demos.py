"""The lesson's cells (seed/ray-actors-revisited) as one plain script, with today's API:
the baseline that `raybricks run` is measured against. Nothing here is raybricks.

Run: python benchmarks/seed_demos.py   (starts its own local-cluster Spark)
"""

import os
import random
import sys
import time

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import ray
from pyspark.sql import SparkSession
from ray.util import ActorPool
from ray.util.spark import setup_ray_cluster, shutdown_ray_cluster

spark = (
    SparkSession.builder.master("local-cluster[2,1,1024]")
    .config("spark.driver.host", "127.0.0.1")
    .config("spark.ui.enabled", "false")
    .getOrCreate()
)
spark.sparkContext.environment["PATH"] = os.environ["PATH"]
setup_ray_cluster(max_worker_nodes=2, num_cpus_worker_node=1, num_gpus_worker_node=0)
ray.init()


@ray.remote
class Counter:
    def __init__(self):
        self.label = "Counter"
        self.count = 0

    def next(self):
        self.count += 1
        return self.count


counter1 = Counter.options(name="Counter1", lifetime="detached").remote()
counter2 = Counter.options(name="Counter2", lifetime="detached").remote()
c1 = ray.get_actor("Counter1")
print(ray.get([c1.next.remote() for _ in range(100)]))
c2 = ray.get_actor("Counter2")
print(ray.get([c2.next.remote() for _ in range(100)]))
for actor in [c1, c2]:
    ray.kill(actor)


@ray.remote(max_restarts=-1, max_task_retries=-1)
class Foo:
    def method(self):
        return 1


@ray.remote(num_cpus=2, resources={"CustomResource": 1})
class Foo2:
    def method(self):
        return 1


Bar = Foo2.options(num_cpus=1, resources=None)
print(ray.get(Bar.remote().method.remote()))


@ray.remote
class Actor:
    def double(self, n):
        return n * 2


pool = ActorPool([Actor.remote() for _ in range(5)])
print(list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3, 4])))

STATES = ["RUNNING", "TRAINING", "DONE"]


class Model:
    def __init__(self, m):
        self._model = m
        self._grad = []

    def train(self):
        for _ in range(5):
            self._grad.append(random.random())
        time.sleep(1)


@ray.remote
class Worker:
    def __init__(self, m):
        self._model = m

    def state(self):
        return random.choice(STATES)

    def work(self):
        Model(self._model).train()


@ray.remote
class Supervisor:
    def __init__(self):
        self.workers = [Worker.remote(name) for name in ["lr", "cl", "nn"]]

    def start_workers(self):
        [w.work.remote() for w in self.workers]

    def terminate(self):
        [ray.kill(w) for w in self.workers]

    def state(self):
        return ray.get([w.state.remote() for w in self.workers])


sup = Supervisor.remote()
sup.start_workers.remote()
while True:
    states = ray.get(sup.state.remote())
    print(states)
    if all(state == "DONE" for state in states):
        sup.terminate.remote()
        ray.kill(sup)
        break

ray.shutdown()
shutdown_ray_cluster()
spark.stop()
