"""Spark's Python daemon, as raybricks starts it: pyspark from the installed package, not
from Spark's zip of its sources, when the zip is that package's own. The session
cluster's executors run it (tests/cluster/test_cluster.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyspark

from raybricks.cluster.python_daemon import without_spark_zips

INSTALLED = Path(pyspark.__file__).parent
SPARK_ZIPS = sorted(str(p) for p in (INSTALLED / "python" / "lib").glob("*.zip"))


def a_pyspark(root: Path) -> Path:
    """A package named pyspark under `root`, with zips in its python/lib, as pip's."""
    (root / "pyspark" / "python" / "lib").mkdir(parents=True)
    (root / "pyspark" / "__init__.py").write_text("")
    for name in ("pyspark.zip", "py4j-0.10.9.9-src.zip"):
        (root / "pyspark" / "python" / "lib" / name).write_text("")
    return root / "pyspark" / "python" / "lib"


def test_the_installed_packages_own_zips_are_left_out(tmp_path):
    lib = a_pyspark(tmp_path / "site-packages")
    path = [
        str(lib / "pyspark.zip"),
        str(lib / "py4j-0.10.9.9-src.zip"),
        "/x",
        str(tmp_path / "site-packages"),
    ]
    assert without_spark_zips(path) == ["/x", str(tmp_path / "site-packages")]


def test_another_sparks_zips_stay(tmp_path):
    a_pyspark(tmp_path / "site-packages")
    other = a_pyspark(tmp_path / "opt" / "spark")
    path = [str(other / "pyspark.zip"), str(tmp_path / "site-packages")]
    assert without_spark_zips(path) == path


def test_zips_without_an_installed_pyspark_stay(tmp_path):
    lib = a_pyspark(tmp_path / "spark")
    path = [str(lib / "pyspark.zip"), str(tmp_path / "empty")]
    assert without_spark_zips(path) == path


def test_a_path_without_zips_is_unchanged(tmp_path):
    a_pyspark(tmp_path / "site-packages")
    assert without_spark_zips([str(tmp_path / "site-packages")]) == [
        str(tmp_path / "site-packages")
    ]


def test_on_sparks_own_path_the_daemon_imports_the_installed_pyspark():
    """With this install's zips first on the path, as Spark's executors start Python."""
    assert SPARK_ZIPS, f"pyspark has no zips in {INSTALLED / 'python' / 'lib'}"
    script = (
        "import sys\n"
        "from raybricks.cluster.python_daemon import without_spark_zips\n"
        "print(sys.path[1].endswith('.zip'))\n"
        "sys.path[:] = without_spark_zips(sys.path)\n"
        "import pyspark.daemon\n"
        "print(pyspark.daemon.__file__)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(SPARK_ZIPS)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    zip_first, daemon_file = done.stdout.split()
    assert zip_first == "True"
    assert Path(daemon_file) == INSTALLED / "daemon.py"
