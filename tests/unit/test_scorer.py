"""batch_inference's actors: Ray imports an actor's class by its module, in each
actor's process, so the scorer's module must not bring the stage's Spark and Ray Data."""

from __future__ import annotations

from tests.helpers import imported_by


def test_the_scorer_s_module_imports_neither_spark_nor_ray_data():
    found = imported_by("raybricks.stages.scorer", {"pyspark", "ray.data", "pandas", "numpy"})
    assert found == ["numpy"]  # what it scores with, and nothing of the stage's
