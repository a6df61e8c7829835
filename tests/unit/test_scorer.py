"""batch_inference's actors: Ray imports an actor's class by its module, in each
actor's process, so the scorer's module must not bring the stage's Spark and Ray Data."""

from __future__ import annotations

import subprocess
import sys


def test_the_scorer_s_module_imports_neither_spark_nor_ray_data():
    check = (
        "import sys\n"
        "import raybricks.stages.scorer\n"
        "heavy = {'pyspark', 'ray.data', 'pandas'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
