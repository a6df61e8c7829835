"""Spark's Python daemon (`pyspark.daemon`) for a Spark that raybricks starts, importing
the installed pyspark package instead of Spark's zip of its sources.

Spark puts `python/lib/pyspark.zip` (and py4j's zip) first on its Python workers' path.
A zip holds no compiled bytecode, so each executor's daemon compiles pyspark as it
starts (1.3-1.9 CPU-seconds here, 0.3-0.4 from the installed package), in the way of
each executor's first task, which is Ray on Spark's. When the zips are those of the
installed pyspark (pip's pyspark is its own SPARK_HOME) they are left out; another
Spark's zips stay.

Spark runs it as `python -m raybricks.cluster.python_daemon` (`spark.python.daemon.module`):
it imports nothing of raybricks beyond this module.
"""

from __future__ import annotations

import sys
from importlib.machinery import PathFinder
from pathlib import Path


def without_spark_zips(path: list[str]) -> list[str]:
    """`path` without Spark's zips of pyspark and py4j when they sit in the `python/lib`
    folder of the pyspark package found elsewhere on `path`; else `path` unchanged."""
    zips = [entry for entry in path if _is_spark_zip(entry)]
    rest = [entry for entry in path if entry not in zips]
    installed = PathFinder.find_spec("pyspark", rest)
    if not zips or installed is None or installed.origin is None:
        return path
    lib = Path(installed.origin).resolve().parent / "python" / "lib"
    if all(Path(entry).resolve().parent == lib for entry in zips):
        return rest
    return path


def _is_spark_zip(entry: str) -> bool:
    return entry.endswith(".zip") and Path(entry).name.startswith(("pyspark", "py4j"))


if __name__ == "__main__":
    sys.path[:] = without_spark_zips(sys.path)
    from pyspark import daemon

    daemon.manager()
