"""report.html from a report: self-contained, every stage with its status, evidence,
error and traceback, the stages on a time axis and the worker nodes over time."""

from __future__ import annotations

import re

from raybricks.cli import main
from raybricks.report.charts import LABEL_WIDTH
from raybricks.report.html import HTML_FILE, write_html
from raybricks.report.model import Report, StageResult, write_report


def a_report() -> Report:
    report = Report.begin("20260102T030405Z-abcdef", {})
    report.cluster = {"address": "127.0.0.1:9000", "dashboard_url": "http://127.0.0.1:8265"}
    report.stages = [
        StageResult("namespaces", "passed", 2.0, {"found": True}, None, "found <probe>", 1.0),
        StageResult("fault_tolerance", "passed", 3.0, {"pids": [1, 2]}, None, "restarted", 1.5),
        StageResult("actor_pool", "failed", 1.0, {}, "order lost", "", 3.2, "Traceback: boom"),
        StageResult("tree_of_actors"),
    ]
    report.worker_nodes = [[0.0, 2], [4.0, 1], [5.0, 2]]
    report.finish("failed", 1)
    return report


def test_the_page_shows_every_stage_with_status_evidence_and_errors(tmp_path):
    page = write_html(a_report(), tmp_path).read_text()
    for name in ("namespaces", "fault_tolerance", "actor_pool", "tree_of_actors"):
        assert f'id="stage-{name}"' in page
    assert "found &lt;probe&gt;" in page  # escaped
    assert "order lost" in page and "Traceback: boom" in page
    assert 'class="status failed"' in page and 'class="status skipped"' in page
    assert "Ray worker nodes" in page and "<polyline" in page


def test_parallel_stages_overlap_on_the_time_axis(tmp_path):
    page = write_html(a_report(), tmp_path).read_text()
    bars = dict(re.findall(r'<rect class="\w+" x="([\d.]+)" y="(\d+)"', page))
    starts = sorted(float(x) for x in bars)
    assert len(starts) == 4 and starts[1] < starts[2]  # later stages start further right


def test_the_page_needs_no_network(tmp_path):
    page = write_html(a_report(), tmp_path).read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_report_html_writes_it_for_an_older_run(tmp_path, capsys):
    write_report(a_report(), tmp_path)
    assert main(["report", str(tmp_path), "--html"]) == 0
    assert (tmp_path / HTML_FILE).is_file()
    assert str(tmp_path / HTML_FILE) in capsys.readouterr().out


def test_the_runs_phases_share_the_stages_time_axis(tmp_path):
    """Spark's start, Ray's and the teardown are bars too, before and after the stages,
    on the same seconds: a stage starting at 1.0 s lines up with the end of Ray's start."""
    report = a_report()
    report.add_phase("Spark start", 0.0, 0.4)
    report.add_phase("Ray cluster start", 0.4, 1.0)
    report.add_phase("teardown", 4.5, report.seconds)
    page = write_html(report, tmp_path).read_text()
    bars = re.findall(r'<rect class="([\w]+)" x="([\d.]+)" y="\d+" width="([\d.]+)"', page)
    phases = [(float(x), float(width)) for kind, x, width in bars if kind == "phase"]
    stage_starts = [float(x) for kind, x, _ in bars if kind != "phase"]
    assert len(phases) == 3 and phases[0][0] == LABEL_WIDTH  # Spark's start at 0 s
    ray_start_end = phases[1][0] + phases[1][1]
    assert abs(ray_start_end - stage_starts[0]) < 1.0  # namespaces starts at 1.0 s
    assert "Spark start" in page and "teardown" in page


def test_the_worker_node_chart_is_no_taller_than_what_it_shows(tmp_path):
    page = write_html(a_report(), tmp_path).read_text()
    (height,) = re.findall(r'<svg [^>]*height="(\d+)"[^>]*aria-label="Ray worker nodes', page)
    assert int(height) <= 60  # two nodes at the most
