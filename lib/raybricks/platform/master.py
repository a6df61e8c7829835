"""Spark master URLs, parsed in one place: which ones Ray on Spark runs on, and what a
local master's size is. Imports neither Spark nor Ray (settings use it).

    >>> spark_master("local-cluster[2,1,1024]").task_slots(cpus_per_node=1)
    2
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_MASTER = re.compile(
    r"(?P<local>local(?:\[(?P<threads>\*|\d+)(?:,\s*\d+)?\])?)"
    r"|local-cluster\[(?P<workers>\d+),\s*(?P<cores>\d+),\s*\d+\]"
    r"|spark://\S+|yarn"
)
KNOWN_MASTERS = "local, local[N], local-cluster[W,C,MB], spark://HOST:PORT or yarn"


@dataclass(frozen=True)
class SparkMaster:
    url: str
    local_mode: bool  # `local` / `local[N]`: one JVM, no stage scheduling
    local_threads: int | None = None  # local mode's task slots
    workers: int | None = None  # local-cluster's executor JVMs
    cores_per_worker: int | None = None

    @property
    def is_local(self) -> bool:
        """Spark runs on this machine (`local...`): raybricks binds it to loopback."""
        return self.url.startswith("local")

    def task_slots(self, cpus_per_node: int | None) -> int | None:
        """How many Ray worker nodes this master can ever hold (one per Spark task), or
        None where the URL does not fix Spark's size (a real cluster may grow, and
        without a CPU count Ray sizes each node from the machine)."""
        if self.workers is not None and self.cores_per_worker is not None:
            return (
                self.workers * (self.cores_per_worker // cpus_per_node) if cpus_per_node else None
            )
        return self.local_threads  # local mode: one CPU per task, whatever is set

    def spare_task_slots(self, worker_nodes: int, cpus_per_node: int | None) -> int | None:
        """Spark's task slots (a core each) left once `worker_nodes` Ray worker nodes
        hold theirs, or None where the URL does not fix Spark's size."""
        if self.workers is not None and self.cores_per_worker is not None:
            held = worker_nodes * (cpus_per_node or self.cores_per_worker)
            return max(0, self.workers * self.cores_per_worker - held)
        if self.local_threads is not None:
            return max(0, self.local_threads - worker_nodes)
        return None


def check_known(url: str) -> str:
    """`url`, or ValueError naming the masters Ray on Spark runs on, or saying why this
    one could never run a task."""
    if _MASTER.fullmatch(url) is None:
        raise ValueError(f"Ray on Spark runs on {KNOWN_MASTERS}")
    master = spark_master(url)
    if 0 in (master.workers, master.cores_per_worker, master.local_threads):
        raise ValueError("a master without executors or cores runs no task; give it at least 1")
    return url


def spark_master(url: str) -> SparkMaster:
    """What `url` says of a master (a master Spark itself reports may be of any form:
    its size is then unknown)."""
    match = _MASTER.fullmatch(url)
    if match is None:
        return SparkMaster(url, local_mode=url == "local" or url.startswith("local["))
    if match["local"]:
        threads = match["threads"] or "1"
        count = (os.cpu_count() or 1) if threads == "*" else int(threads)
        return SparkMaster(url, local_mode=True, local_threads=count)
    if match["workers"]:
        return SparkMaster(
            url, False, workers=int(match["workers"]), cores_per_worker=int(match["cores"])
        )
    return SparkMaster(url, local_mode=False)
