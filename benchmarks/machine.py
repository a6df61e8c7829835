"""The machine and versions a benchmark table was written on, for its first line."""

from __future__ import annotations

import platform

import psutil

from raybricks.report.model import versions


def described() -> str:
    """E.g. "x86_64, 2 cores, 24 GiB; Python 3.11.7, Ray 2.60.0, pyspark 4.3.0, raybricks
    0.1.0"."""
    v = versions()
    return (
        f"{platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB; Python {v['python']}, "
        f"Ray {v['ray']}, pyspark {v['pyspark']}, raybricks {v['raybricks']}"
    )
