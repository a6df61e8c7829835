"""One Ray node's Prometheus text: fetched from its metrics endpoint, read into the few
figures a run keeps, and all nodes' texts merged into one file for other tools.

A head's text runs to a few hundred KB (its GCS's histograms among them): only the lines
of the families read here go through the parser, which costs milliseconds, not tens.
"""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

NODE_LABEL = "raybricks_node"  # added to every sample of metrics.prom: which node said it
# Ray's task states before RUNNING. Each core worker counts its own transitions, so a
# node's figure can be negative; summed over the cluster it is the number waiting.
PENDING_TASK_STATES = frozenset(
    {
        "PENDING_ARGS_AVAIL",
        "PENDING_NODE_ASSIGNMENT",
        "PENDING_OBJ_STORE_MEM_AVAIL",
        "PENDING_ARGS_FETCH",
        "SUBMITTED_TO_WORKER",
        "PENDING_ACTOR_TASK_ARGS_FETCH",
        "PENDING_ACTOR_TASK_ORDERING_OR_CONCURRENCY",
    }
)
_READ = frozenset(
    {
        "ray_resources",
        "ray_node_mem_used",
        "ray_node_mem_total",
        "ray_object_store_used_memory",
        "ray_object_store_available_memory",
        "ray_tasks",
        "ray_actors",
    }
)


PROMETHEUS_TYPES = ("text/plain", "application/openmetrics-text")


def fetch(url: str, timeout: float) -> str:
    """The Prometheus text served at `url`; ValueError for anything else (a proxy's page)."""
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        kind = answer.headers.get_content_type()
        if kind not in PROMETHEUS_TYPES:
            raise ValueError(f"{url} answered {kind}, not Prometheus text")
        return str(answer.read().decode("utf-8"))


def node_figures(text: str) -> dict[str, float]:
    """What a run keeps of one node's text: CPUs and GPUs in use and in all, memory
    used and in all, the object store used and its capacity (bytes), tasks running and
    pending, actors alive."""
    figures: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(_lines_read(text)):
        for sample in family.samples:
            _add(figures, sample.name, sample.labels, sample.value)
    figures["object_store_capacity"] = figures["object_store_used"] + figures.pop(
        "object_store_available", 0.0
    )
    return dict(figures)


def _add(figures: dict[str, float], name: str, labels: Mapping[str, str], value: float) -> None:
    state = labels.get("State", "")
    if name == "ray_resources" and (resource := labels.get("Name")) in ("CPU", "GPU"):
        kind = resource.lower()
        figures[f"{kind}_total"] += value  # what is USED and what is AVAILABLE
        if state == "USED":
            figures[f"{kind}_used"] += value
    elif name == "ray_node_mem_used":
        figures["memory_used"] = value
    elif name == "ray_node_mem_total":
        figures["memory_total"] = value
    elif name == "ray_object_store_used_memory":
        figures["object_store_used"] += value
    elif name == "ray_object_store_available_memory":
        figures["object_store_available"] += value
    elif name == "ray_tasks":
        if state.startswith("RUNNING"):  # also RUNNING_IN_RAY_GET, RUNNING_IN_RAY_WAIT
            figures["tasks_running"] += value
        elif state in PENDING_TASK_STATES:
            figures["tasks_pending"] += value
    elif name == "ray_actors" and labels.get("Component") == "core_worker":
        # ALIVE_IDLE or ALIVE_RUNNING_TASKS, said by the actor's own node
        figures["actors_alive"] += value if state.startswith("ALIVE") else 0.0


def _lines_read(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if _family_of(line) in _READ) + "\n"


def _family_of(line: str) -> str:
    if line.startswith("#"):  # "# HELP name ..." or "# TYPE name type"
        parts = line.split(" ", 3)
        return parts[2] if len(parts) > 2 else ""
    return line.split("{", 1)[0].split(" ", 1)[0]


def merged_exposition(texts: Mapping[str, str]) -> bytes:
    """The texts of several nodes (by node name) as one Prometheus text: each family
    once, each sample labelled with its node (`raybricks_node`)."""
    return generate_latest(_Merged(texts))


class _Merged:
    """What prometheus_client's writer asks of a registry: `collect()`."""

    def __init__(self, texts: Mapping[str, str]) -> None:
        self.texts = texts

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for node, text in self.texts.items():
            for family in text_string_to_metric_families(text):
                merged = families.setdefault(
                    family.name,
                    Metric(family.name, family.documentation, family.type, family.unit),
                )
                merged.samples += _labelled(family.samples, node)
        yield from families.values()


def _labelled(samples: Iterable[Sample], node: str) -> list[Sample]:
    return [sample._replace(labels={**sample.labels, NODE_LABEL: node}) for sample in samples]
