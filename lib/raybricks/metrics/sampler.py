"""Every few seconds, each live Ray node's metrics endpoint, read into a series per node
and one for the cluster, on the run's clock (seconds from its start).

    sampler = Sampler(every_seconds=5, clock=report.clock)
    with sampler.running(nodes=ray_nodes, head=cluster.head):
        ...                       # the run's work
    report.metrics = sampler.series()
    sampler.write_last_scrapes(run_dir)

The sampler is a daemon thread of the driver that never fails the run: a node that does
not answer is a gap in its series, said once in the driver's log. It lists the nodes
only while the head runs (a call into a cluster without its head hangs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from raybricks.cluster.head import Head
from raybricks.metrics.prometheus import fetch, merged_exposition, node_figures
from raybricks.paths import write_whole

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.prom"
# A loaded node's agent (a head beside a Spark job, 2 cores) once took over 2 s.
SCRAPE_TIMEOUT_SECONDS = 4.0
# For a sample under way when the work ends, then the last one.
STOP_WAIT_SECONDS = 2 * SCRAPE_TIMEOUT_SECONDS + 1
MAX_PARALLEL_SCRAPES = 8
HEAD_RESOURCE = "node:__internal_head__"
NODE_FIGURES = (
    "cpu_used",
    "cpu_total",
    "gpu_used",
    "gpu_total",
    "memory_used",
    "memory_total",
    "object_store_used",
    "object_store_capacity",
    "tasks_running",
    "actors_alive",
)
# Summed over the nodes that answered; tasks pending only make sense summed.
CLUSTER_FIGURES = (
    "cpu_used",
    "cpu_total",
    "gpu_used",
    "gpu_total",
    "object_store_used",
    "object_store_capacity",
    "tasks_running",
    "tasks_pending",
    "actors_alive",
)


@dataclass(frozen=True)
class Endpoint:
    node_id: str
    head: bool
    url: str


def ray_nodes() -> list[Endpoint]:
    """The connected cluster's live nodes and where each serves its metrics."""
    return [
        Endpoint(
            node["NodeID"],
            HEAD_RESOURCE in node["Resources"],
            f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics",
        )
        for node in ray.nodes()
        if node["Alive"] and node.get("MetricsExportPort")
    ]


@dataclass
class _Series:
    """Times and, per figure, a value at each time."""

    names: tuple[str, ...]
    t: list[float] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, seconds: float, figures: dict[str, float]) -> None:
        self.t.append(seconds)
        for name in self.names:
            self.values.setdefault(name, []).append(round(figures.get(name, 0.0), 3))

    def as_dict(self) -> dict[str, list[float]]:
        return {"t": list(self.t), **{name: list(v) for name, v in self.values.items()}}


class Sampler:
    def __init__(self, every_seconds: float, clock: float) -> None:
        """`every_seconds`: 0 samples nothing. `clock`: the run's start (monotonic)."""
        self.every_seconds = every_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._numbers: dict[str, int] = {}  # node ID -> 0 for the head, 1, 2, ... as first seen
        self._nodes: dict[str, _Series] = {}
        self._cluster = _Series(CLUSTER_FIGURES)
        self._gaps: dict[str, int] = {}  # node name -> samples it did not answer
        self._last_texts: dict[str, str] = {}  # node name -> its last scrape
        self._busy_seconds = 0.0  # spent sampling, what the sampler costs the driver
        self._stop = threading.Event()

    @property
    def on(self) -> bool:
        return self.every_seconds > 0

    @contextmanager
    def running(
        self, nodes: Callable[[], list[Endpoint]] = ray_nodes, head: Head | None = None
    ) -> Iterator[None]:
        """Sample `nodes` at once and then every `every_seconds` within this block."""
        if not self.on:
            yield
            return
        self._stop.clear()
        thread = threading.Thread(
            target=self._sample_until_stopped, args=(nodes, head), name="metrics", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(STOP_WAIT_SECONDS)

    def series(self) -> dict[str, Any]:
        """For report.json: per node and for the cluster, times and values; empty when
        nothing was sampled."""
        with self._lock:
            if not self._cluster.t:
                return {}
            nodes = [
                {
                    "node_id": node_id,
                    "name": self._name_of(node_id),
                    **self._nodes[node_id].as_dict(),
                }
                for node_id in sorted(self._nodes, key=self._numbers.__getitem__)
            ]
            return {
                "sample_seconds": self.every_seconds,
                "cluster": self._cluster.as_dict(),
                "nodes": nodes,
                "unanswered": dict(self._gaps),
                "busy_seconds": round(self._busy_seconds, 3),
            }

    def write_last_scrapes(self, run_dir: Path) -> Path | None:
        """`metrics.prom`: every node's last scrape as one Prometheus text."""
        with self._lock:
            texts = dict(self._last_texts)
        if not texts:
            return None
        return write_whole(run_dir / METRICS_FILE, [merged_exposition(texts)])

    def _sample_until_stopped(self, nodes: Callable[[], list[Endpoint]], head: Head | None) -> None:
        with ThreadPoolExecutor(MAX_PARALLEL_SCRAPES, thread_name_prefix="metrics") as pool:
            while True:  # at once, every `every_seconds`, and once more at the stop
                try:
                    self._sample(nodes, head, pool)
                except Exception:
                    logger.debug("metrics: a sample failed (skipped)", exc_info=True)
                if self._stop.is_set():
                    return
                self._stop.wait(self.every_seconds)

    def _sample(
        self, nodes: Callable[[], list[Endpoint]], head: Head | None, pool: ThreadPoolExecutor
    ) -> None:
        if head is not None and not head.alive():
            return
        began = time.monotonic()
        seconds = round(began - self.clock, 2)
        endpoints = nodes()
        answers = list(pool.map(_scrape, endpoints))
        with self._lock:
            total: dict[str, float] = {}
            for endpoint, answer in zip(endpoints, answers, strict=True):
                name = self._name(endpoint)
                if isinstance(answer, str):
                    self._gap(name, answer)
                    continue
                text, figures = answer
                self._last_texts[name] = text
                self._nodes.setdefault(endpoint.node_id, _Series(NODE_FIGURES)).add(
                    seconds, figures
                )
                for key, value in figures.items():
                    total[key] = total.get(key, 0.0) + value
            # Nodes export their counts at their own moments: a sum can dip below zero.
            total["tasks_pending"] = max(0.0, total.get("tasks_pending", 0.0))
            self._cluster.add(seconds, total)
            self._busy_seconds += time.monotonic() - began

    def _name(self, endpoint: Endpoint) -> str:
        if endpoint.node_id not in self._numbers:
            workers = sum(number > 0 for number in self._numbers.values())
            self._numbers[endpoint.node_id] = 0 if endpoint.head else workers + 1
        return self._name_of(endpoint.node_id)

    def _name_of(self, node_id: str) -> str:
        number = self._numbers[node_id]
        return f"worker-{number}" if number else "head"

    def _gap(self, name: str, error: str) -> None:
        if name not in self._gaps:
            logger.debug("metrics: node %s did not answer (%s); its series has gaps", name, error)
        self._gaps[name] = self._gaps.get(name, 0) + 1


def _scrape(endpoint: Endpoint) -> tuple[str, dict[str, float]] | str:
    """The node's text and what is read of it, or why there is none (a gap)."""
    try:
        text = fetch(endpoint.url, SCRAPE_TIMEOUT_SECONDS)
        return text, node_figures(text)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
