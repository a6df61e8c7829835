"""Private Ray and Spark names are reached only from `raybricks.cluster.compat`, and
only when a run asks for fast start: the rest imports without them, and settings
without Ray or Spark at all."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers import ROOT

LIB = ROOT / "lib" / "raybricks"
COMPAT = LIB / "cluster" / "compat"
PRIVATE = re.compile(
    r"\bray\._|ray\.autoscaler\._private|\._gateway\b|\._jvm\b|\._jsc\b|"
    r"\b_start_ray_worker_nodes\b|\b_RAY_HEAD_STARTUP_TIMEOUT\b"
)


def test_only_the_compatibility_layer_names_private_ray_or_spark_code():
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in LIB.rglob("*.py")
        if COMPAT not in path.parents
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert offenders == []


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)


def test_settings_and_the_stage_api_import_neither_ray_nor_spark():
    done = python(
        "import sys, raybricks.settings, raybricks.stages, raybricks.stages.registry\n"
        "from raybricks.settings import load_settings\n"
        "load_settings('local')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'pyspark'))\n"
        "assert not loaded, loaded\n"
    )
    assert done.returncode == 0, done.stderr


GONE = "ray.autoscaler._private.spark.spark_job_server"


def test_the_public_modules_import_with_rays_private_spark_code_gone():
    done = python(
        "import sys\n"
        f"sys.modules[{GONE!r}] = None  # importing it now raises ImportError\n"
        "import raybricks.cli, raybricks.settings, raybricks.run.job, raybricks.cluster.lifecycle\n"
        "from raybricks.stages.registry import BUILT_IN\n"
        "for entry in BUILT_IN.values(): entry.load()\n"
        "from raybricks.cluster import compat\n"
        "print(compat.unavailable_reason())\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{GONE} cannot be imported"


def test_a_driver_left_connected_to_a_lost_head_neither_disconnects_nor_reconnects():
    """Run in a process of its own: it switches Ray's auto-connect off for good, and
    ends that process the way a run whose head was lost ends."""
    script = (
        "import atexit, ray\n"
        "from ray._private import auto_init_hook\n"
        "from raybricks.cluster.compat import connection\n"
        "connection.stop_auto_connect()\n"
        "assert auto_init_hook.enable_auto_connect is False\n"
        "disconnect = ray.shutdown\n"
        "connection.exit_if_left_connected(7)  # not left connected: goes on\n"
        "with connection.left_connected():\n"
        "    assert ray.shutdown() is None and ray.shutdown is not disconnect\n"
        "assert ray.shutdown is disconnect\n"
        "atexit.register(lambda: print('finalized'))\n"
        "print('left', flush=True)\n"
        "connection.exit_if_left_connected(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (3, "left\n"), done.stderr


def test_rays_crash_handler_is_off_in_this_driver_only():
    """Not through the environment, which every Ray node and actor would inherit."""
    done = python(
        "import os\n"
        "from ray._private import ray_constants\n"
        "from raybricks.cluster.compat.connection import without_crash_handler\n"
        "assert ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER is False\n"
        "without_crash_handler()\n"
        "assert ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER is True\n"
        "assert 'RAY_DISABLE_FAILURE_SIGNAL_HANDLER' not in os.environ\n"
    )
    assert done.returncode == 0, done.stderr
