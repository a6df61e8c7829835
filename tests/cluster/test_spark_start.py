"""A local Spark's JVMs: the first start trains their class archives, the next maps them.

Each start runs in a process of its own, as a run does (the session's cluster holds
this process's Spark)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cluster.processes import left_after, marked_env

# Which archives the driver and executor JVMs have mapped, seen in their memory maps.
START_AND_STOP = """
from pathlib import Path
from raybricks.spark_session import get_or_create_spark, jvm_processes
spark = get_or_create_spark("local-cluster[1,1,1024]")
context = spark.session.sparkContext
total = context.parallelize([1, 2]).sum()
for kind, processes in jvm_processes(context).items():
    maps = {Path(m.path).name for p in processes for m in p.memory_maps()}
    print(kind, spark.archives.training, f"{kind}.jsa" in maps, total)
spark.stop()
"""


def start_and_stop_spark(environment: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", START_AND_STOP],
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-2:]


@pytest.mark.timeout(400)
def test_the_first_start_trains_the_class_archives_and_the_next_maps_them(tmp_path):
    environment, mark = marked_env(XDG_CACHE_HOME=str(tmp_path))
    assert start_and_stop_spark(environment) == ["driver True False 3", "executor True False 3"]
    kept = sorted(p.name for p in tmp_path.glob("raybricks/jvm/*/*"))
    assert kept == ["driver.jsa", "executor.jsa"]  # the training files, checked and renamed

    assert start_and_stop_spark(environment) == ["driver False True 3", "executor False True 3"]
    assert left_after(mark) == []
