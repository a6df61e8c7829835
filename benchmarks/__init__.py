"""Measured comparisons, each writing a table (`python -m benchmarks.run`).

A regular package: pyarrow 17's wheel installs a top-level `benchmarks` of its own,
which would hide a namespace package of this name.
"""
