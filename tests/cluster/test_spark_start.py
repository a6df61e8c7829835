"""A local Spark's driver JVM: the first start trains its class archive, the next maps it.

Each start runs in a process of its own, as a run does (the session's cluster holds
this process's Spark)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cluster.processes import left_after, marked_env

START_AND_STOP = """
from raybricks.spark_session import get_or_create_spark
spark = get_or_create_spark("local[1]")
context = spark.session.sparkContext
vm = context._jvm.java.lang.System.getProperty("java.vm.info")
print(spark.archive.training, vm, context.parallelize([1, 2]).sum(), sep="|")
spark.stop()
"""


def start_and_stop_spark(environment: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", START_AND_STOP],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1].split("|")


@pytest.mark.timeout(300)
def test_the_first_start_trains_the_class_archive_and_the_next_maps_it(tmp_path):
    environment, mark = marked_env(XDG_CACHE_HOME=str(tmp_path))
    training, _, total = start_and_stop_spark(environment)
    assert (training, total) == ("True", "3")
    (archive,) = tmp_path.glob("raybricks/jvm/*/*")
    assert archive.name == "driver.jsa"  # the training file, renamed once the JVM exited

    training, vm, total = start_and_stop_spark(environment)
    # A JVM shares class data only if every archive it was given mapped: ours too.
    assert (training, total) == ("False", "3")
    assert "sharing" in vm
    assert left_after(mark) == []
