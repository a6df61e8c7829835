"""A local Spark's JVMs: the first start trains their class archives, the next maps them;
either way the executors' output moves from Spark's install to the run folder, and
PySpark's accumulator server shuts down after Spark, in a thread of its own.

Each start runs in a process of its own, as a run does (the session's cluster holds
this process's Spark)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.processes import left_after, marked_env

from raybricks.cluster.jvm_archive import SPARK_JARS
from raybricks.cluster.spark import EXECUTOR_LOGS

# Which archives the driver and executor JVMs have mapped, seen in their memory maps;
# then the executors' output folder, as Spark left it and once stopped.
START_AND_STOP = """
import sys
from pathlib import Path
from raybricks.cluster.spark import get_or_create_spark, jvm_processes, local_executor_logs
from raybricks.platform import Platform
from raybricks.settings import ClusterSettings
settings = ClusterSettings(spark_master="local-cluster[1,1,1024]")
spark = get_or_create_spark(Platform.of(settings), settings)
context = spark.session.sparkContext
total = context.parallelize([1, 2]).sum()
for kind, processes in jvm_processes(context).items():
    maps = {Path(m.path).name for p in processes for m in p.memory_maps()}
    print(kind, spark.archives.training, f"{kind}.jsa" in maps, total)
print(local_executor_logs(context, spark.master))
server = context._accumulatorServer  # the sum above connected the JVM to it
spark.stop(Path(sys.argv[1]))
import time
deadline = time.monotonic() + 10
while server.socket.fileno() != -1 and time.monotonic() < deadline:
    time.sleep(0.05)
print("accumulator server", server.server_shutdown, server.socket.fileno())
"""


def start_and_stop_spark(environment: dict[str, str], run_dir: Path) -> list[str]:
    """What START_AND_STOP printed of its JVMs' archives, once it has checked that the
    executors' output moved to `run_dir`."""
    run_dir.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", START_AND_STOP, str(run_dir)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    *archives, spark_folder, accumulators = done.stdout.strip().splitlines()[-4:]
    assert Path(spark_folder).parent.name == "work" and not Path(spark_folder).exists()
    assert accumulators == "accumulator server True -1"  # shut down, its socket closed
    stderr = run_dir / EXECUTOR_LOGS / "0" / "stderr"
    assert "CoarseGrainedExecutorBackend" in stderr.read_text()
    return archives


@pytest.mark.slow  # trains the archives from an empty cache: about 100 s on two cores
@pytest.mark.timeout(400)
def test_the_first_start_trains_the_class_archives_and_the_next_maps_them(tmp_path):
    environment, mark = marked_env(XDG_CACHE_HOME=str(tmp_path))
    trained = start_and_stop_spark(environment, tmp_path / "training-run")
    assert trained == ["driver True False 3", "executor True False 3"]
    kept = sorted(p.name for p in tmp_path.glob("raybricks/jvm/*/*"))
    # the training files, checked and renamed, and the Spark install they were made for
    assert kept == ["driver.jsa", "executor.jsa", SPARK_JARS]

    mapped = start_and_stop_spark(environment, tmp_path / "next-run")
    assert mapped == ["driver False True 3", "executor False True 3"]
    assert left_after(mark) == []


@pytest.mark.slow  # trains the archives from an empty cache
@pytest.mark.timeout(400)
def test_set_up_makes_the_class_archives_that_the_first_run_then_maps(tmp_path):
    """`make setup`'s step: the first start after it maps the archives, trains none."""
    environment, mark = marked_env(XDG_CACHE_HOME=str(tmp_path))
    warm = [sys.executable, "-m", "raybricks.cluster.warm"]
    made = subprocess.run(warm, env=environment, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-3000:]
    assert made.stderr.splitlines()[-1].startswith("Spark's JVM class archives: made in ")
    assert start_and_stop_spark(environment, tmp_path / "first-run") == [
        "driver False True 3",
        "executor False True 3",
    ]
    again = subprocess.run(warm, env=environment, capture_output=True, text=True, timeout=60)
    assert again.stderr.strip() == "Spark's JVM class archives: already made"
    assert left_after(mark) == []
