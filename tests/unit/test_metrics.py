"""The cluster's metrics: what is read of a Ray node's Prometheus text (captured from Ray
2.60's own endpoints: `ray_metrics/`), the sampler against real HTTP endpoints that come
and go, the file of every node's last scrape, and their charts in report.html."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from raybricks.cluster.node_environment import (
    METRICS_INTERVAL_VAR,
    NodeEnvironmentStartHook,
    metrics_exported_every,
)
from raybricks.metrics.prometheus import NODE_LABEL, merged_exposition, node_figures
from raybricks.metrics.sampler import METRICS_FILE, Endpoint, Sampler
from raybricks.report.charts import Axis, metric_charts
from raybricks.report.html import write_html
from raybricks.report.model import Report, StageResult
from tests.helpers import ScriptedHead

TEXTS = Path(__file__).with_name("ray_metrics")
HEAD_TEXT = (TEXTS / "head.prom").read_text()
WORKER_TEXT = (TEXTS / "worker.prom").read_text()


def test_a_worker_nodes_text_gives_its_cpus_memory_store_tasks_and_actors():
    figures = node_figures(WORKER_TEXT)
    assert (figures["cpu_used"], figures["cpu_total"]) == (1.0, 1.0)
    assert figures["memory_used"] == 2.893758464e09 and figures["memory_total"] > 2e10
    assert (figures["object_store_used"], figures["object_store_capacity"]) == (0.0, 3.033141903e09)
    # A.f running, two t running (RUNNING_IN_RAY_GET and _WAIT count as running too); the
    # node's own share of the cluster's pending count is negative: it took three off it.
    assert figures["tasks_running"] == 3.0 and figures["tasks_pending"] == -3.0
    assert figures["actors_alive"] == 1.0
    assert "gpu_total" not in figures


def test_the_heads_text_has_no_cpus_and_the_tasks_it_submitted_pending():
    figures = node_figures(HEAD_TEXT)
    assert figures.get("cpu_total", 0.0) == 0.0
    assert figures["tasks_pending"] > 0 and figures["object_store_capacity"] > 0


def test_the_last_scrapes_merge_into_one_text_with_each_family_once_and_its_node():
    merged = merged_exposition({"head": HEAD_TEXT, "worker-1": WORKER_TEXT}).decode()
    families = list(text_string_to_metric_families(merged))
    names = [family.name for family in families]
    assert len(names) == len(set(names))  # a strict reader refuses a family given twice
    given = sum(
        len(family.samples)
        for text in (HEAD_TEXT, WORKER_TEXT)
        for family in text_string_to_metric_families(text)
    )
    samples = [sample for family in families for sample in family.samples]
    assert len(samples) == given
    assert {sample.labels[NODE_LABEL] for sample in samples} == {"head", "worker-1"}
    histogram = next(f for f in families if f.name == "ray_scheduler_placement_time_ms")
    assert histogram.type == "histogram" and re.search(r"_bucket\{.*le=", merged)


class _Node:
    """A Ray node's metrics endpoint: a real HTTP server serving a captured text."""

    def __init__(self, text: str, kind: str = "text/plain; version=0.0.4") -> None:
        body = text.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def nodes(*texts: str, kinds: tuple[str, ...] = ()) -> Iterator[list[_Node]]:
    """Endpoints serving `texts`, as Prometheus text or as `kinds` say, in order."""
    served = [_Node(text, *kinds[i : i + 1]) for i, text in enumerate(texts)]
    try:
        yield served
    finally:
        for node in served:
            node.stop()


def endpoints(served: list[_Node]) -> list[Endpoint]:
    return [Endpoint(f"id{i}", i == 0, node.url) for i, node in enumerate(served)]


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.01)


def samples_of(sampler: Sampler, name: str) -> int:
    return next((len(n["t"]) for n in sampler.series().get("nodes", []) if n["name"] == name), 0)


def test_the_sampler_keeps_a_series_per_node_and_one_for_the_cluster(tmp_path):
    sampler = Sampler(0.05, time.monotonic())
    with (
        nodes(HEAD_TEXT, WORKER_TEXT, WORKER_TEXT) as served,
        sampler.running(lambda: endpoints(served)),
    ):
        wait_until(lambda: samples_of(sampler, "worker-2") >= 3)
    series = sampler.series()
    assert [n["name"] for n in series["nodes"]] == ["head", "worker-1", "worker-2"]
    cluster = series["cluster"]
    assert cluster["cpu_total"][-1] == 2.0 and cluster["tasks_running"][-1] == 6.0
    assert all(len(n["t"]) == len(n["cpu_used"]) for n in series["nodes"])
    assert cluster["t"] == sorted(cluster["t"]) and series["unanswered"] == {}
    assert min(cluster["tasks_pending"]) >= 0  # the nodes' shares never sum below nothing
    assert sampler.write_last_scrapes(tmp_path) == tmp_path / METRICS_FILE
    merged = (tmp_path / METRICS_FILE).read_text()
    assert {f'{NODE_LABEL}="{name}"' for name in ("head", "worker-1", "worker-2")} <= set(
        re.findall(rf'{NODE_LABEL}="[\w-]+"', merged)
    )


def test_a_node_gone_mid_run_is_a_gap_said_once_and_the_others_go_on(caplog):
    caplog.set_level(logging.DEBUG, logger="raybricks.metrics")
    sampler = Sampler(0.05, time.monotonic())
    with (
        nodes(HEAD_TEXT, WORKER_TEXT, WORKER_TEXT) as served,
        sampler.running(lambda: endpoints(served)),
    ):
        wait_until(lambda: samples_of(sampler, "worker-2") >= 2)
        served[2].stop()
        seen = samples_of(sampler, "worker-2")
        wait_until(lambda: samples_of(sampler, "worker-1") >= seen + 5)
    series = sampler.series()
    assert samples_of(sampler, "worker-2") <= seen + 1  # one may have been under way
    assert series["unanswered"]["worker-2"] >= 4
    said = [r for r in caplog.records if "did not answer" in r.getMessage()]
    assert len(said) == 1 and "worker-2" in said[0].getMessage()


def test_a_node_that_answers_something_else_is_a_gap_too():
    sampler = Sampler(0.05, time.monotonic())
    with (
        nodes(
            WORKER_TEXT, "<html>a proxy's page</html>", kinds=("text/plain", "text/html")
        ) as served,
        sampler.running(lambda: [Endpoint(f"id{i}", False, n.url) for i, n in enumerate(served)]),
    ):
        wait_until(lambda: samples_of(sampler, "worker-1") >= 3)
    assert sampler.series()["unanswered"]["worker-2"] >= 2
    assert samples_of(sampler, "worker-2") == 0


def test_a_sampler_that_cannot_list_the_nodes_or_whose_head_is_gone_never_fails_the_run():
    def failing() -> list[Endpoint]:
        raise RuntimeError("the GCS is gone")

    sampler = Sampler(0.02, time.monotonic())
    with sampler.running(failing):
        time.sleep(0.1)
    headless = Sampler(0.02, time.monotonic())
    with (
        nodes(WORKER_TEXT) as served,
        headless.running(lambda: endpoints(served), ScriptedHead(looks=lambda: False)),
    ):
        time.sleep(0.1)
    assert sampler.series() == headless.series() == {}


def test_sampling_off_starts_no_thread_and_keeps_nothing(tmp_path):
    sampler = Sampler(0, time.monotonic())
    before = threading.active_count()
    with sampler.running(lambda: pytest.fail("listed the nodes")):
        assert threading.active_count() == before
    assert sampler.series() == {} and sampler.write_last_scrapes(tmp_path) is None
    assert not (tmp_path / METRICS_FILE).exists()


def test_nodes_export_at_the_sampling_pace_unless_the_user_chose_one(monkeypatch):
    monkeypatch.delenv(METRICS_INTERVAL_VAR, raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t" * 64)
    with metrics_exported_every(5.0):
        handed = NodeEnvironmentStartHook().custom_environment_variables()
        assert handed[METRICS_INTERVAL_VAR] == "5000" and handed["RAY_AUTH_TOKEN"] == "t" * 64
    assert METRICS_INTERVAL_VAR not in NodeEnvironmentStartHook().custom_environment_variables()
    with metrics_exported_every(0):
        assert METRICS_INTERVAL_VAR not in NodeEnvironmentStartHook().custom_environment_variables()
    monkeypatch.setenv(METRICS_INTERVAL_VAR, "2000")
    with metrics_exported_every(5.0):
        assert (
            NodeEnvironmentStartHook().custom_environment_variables()[METRICS_INTERVAL_VAR]
            == "2000"
        )
    assert os.environ[METRICS_INTERVAL_VAR] == "2000"


def sampled_report() -> Report:
    report = Report.begin("20261207T000000Z-abcdef", {})
    report.stages = [StageResult("namespaces", "passed", 4.0, {"found": True}, None, "ok", 1.0)]
    t = [1.0, 2.0, 3.0, 4.0]
    worker = {
        "cpu_used": [0, 1, 1, 0],
        "cpu_total": [1] * 4,
        "gpu_used": [0] * 4,
        "gpu_total": [0] * 4,
    }
    report.metrics = {
        "sample_seconds": 1.0,
        "cluster": {"t": t, "tasks_pending": [0, 3, 1, 0], **worker},
        "nodes": [
            {"node_id": "a", "name": "head", "t": t, **worker, "cpu_total": [0] * 4},
            {"node_id": "b", "name": "worker-1", "t": t, **worker},
            # answered, went silent for longer than 2.5 periods, answered again
            {
                "node_id": "c",
                "name": "worker-2",
                "t": [1.0, 5.0, 6.0],
                "cpu_used": [1, 1, 1],
                "cpu_total": [1, 1, 1],
            },
        ],
        "unanswered": {"worker-2": 3},
    }
    report.finish("passed", 0)
    report.seconds = 6.0
    return report


def test_each_metric_is_a_chart_with_a_line_per_node_that_breaks_at_a_gap():
    charts = metric_charts(sampled_report().metrics, Axis(6.0))
    titles = [chart["title"] for chart in charts["charts"]]
    assert not [title for title in titles if "GPU" in title]  # no node has a GPU
    cpus = charts["charts"][titles.index("CPUs in use, of each node's")]
    # the head has no CPUs: it has no share to draw
    assert [line["name"] for line in cpus["lines"]] == ["worker-1", "worker-2"]
    worker_2 = cpus["lines"][1]["segments"]
    assert [segment["dot"] is not None for segment in worker_2] == [True, False]
    pending = charts["charts"][titles.index("tasks waiting (the cluster's)")]
    assert [line["name"] for line in pending["lines"]] == ["cluster"]
    assert [node["name"] for node in charts["legend"]] == ["head", "worker-1", "worker-2"]


def test_the_charts_share_the_stages_time_axis_and_need_no_script(tmp_path):
    page = write_html(sampled_report(), tmp_path).read_text()
    assert "What the nodes reported" in page and "<script" not in page
    stage_x = float(re.search(r'<rect class="passed" x="([\d.]+)"', page)[1])
    first = re.search(r'aria-label="CPUs in use[^"]*".*?<polyline points="([\d.]+),', page, re.S)
    assert float(first[1]) == stage_x  # the stage began at 1.0 s, the first sample too


def test_a_report_without_metrics_has_no_charts(tmp_path):
    report = sampled_report()
    report.metrics = {}
    assert "What the nodes reported" not in write_html(report, tmp_path).read_text()
