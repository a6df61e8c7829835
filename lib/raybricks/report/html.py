"""`report.html`: a run's report for people, self-contained (no network), rendered
from `report.json`'s model with a Jinja2 template: status, cluster and versions, the
run's phases (Spark's start, Ray's, the teardown) and its stages on one time axis
(parallel stages side by side), Ray worker nodes over time, what the nodes' metrics
said on the same axis (`charts`), each stage's evidence, errors with their traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from raybricks.paths import write_whole
from raybricks.report.charts import WIDTH, Axis, metric_charts
from raybricks.report.model import Report

HTML_FILE = "report.html"
COLORS = {"passed": "#1f8a4c", "failed": "#c62828", "cancelled": "#b26a00", "skipped": "#8a939c"}
PHASE_COLOR = "#5b7083"
ROW = 26
NODE_ROW = 14  # the worker-node chart's height per node: no taller than what it shows

_environment = Environment(
    loader=PackageLoader("raybricks.report", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
)
_environment.filters["pretty"] = lambda value: (
    value if isinstance(value, str) else json.dumps(value, indent=1, default=str)
)


def write_html(report: Report, run_dir: Path) -> Path:
    target = run_dir / HTML_FILE
    ends = [
        *(_end(s) for s in report.stages),
        *(p.started_at_seconds + p.seconds for p in report.phases),
    ]
    axis = Axis(max([report.seconds, *ends], default=0.0) or 1.0)
    page = _environment.get_template("report.html.j2").render(
        report=report,
        timeline=_timeline(report, axis),
        nodes=_nodes(report, axis),
        metrics=metric_charts(report.metrics, axis),
    )
    return write_whole(target, [page.encode()])


def _end(stage: Any) -> float:
    return float(stage.started_at_seconds or 0.0) + float(stage.seconds or 0.0)


def _timeline(report: Report, axis: Axis) -> dict[str, Any]:
    """A bar per phase of the run, then one per stage, on one axis of seconds."""
    rows: list[dict[str, Any]] = [
        _bar(p.name, "phase", p.started_at_seconds, p.seconds, PHASE_COLOR, axis)
        for p in report.phases
    ]
    rows += [
        _bar(s.name, s.status, s.started_at_seconds, s.seconds, COLORS.get(s.status, ""), axis)
        for s in report.stages
    ]
    for row, bar in enumerate(rows):
        bar["y"] = 6 + row * ROW
    return {
        "bars": rows,
        "axis": {"ticks": axis.ticks()},
        "width": WIDTH,
        "height": 6 + len(rows) * ROW + 24,
    }


def _bar(
    name: str, status: str, start: float | None, seconds: float, color: str, axis: Axis
) -> dict[str, Any]:
    return {
        "name": name,
        "status": status,
        "seconds": f"{seconds:.1f}",
        "x": axis.x(start or 0.0),
        "width": max(2.0, axis.length(seconds)) if start is not None else 0,
        "color": color or COLORS["skipped"],
    }


def _nodes(report: Report, axis: Axis) -> dict[str, Any]:
    samples = report.worker_nodes
    if not samples:
        return {"points": ""}
    top = max(count for _, count in samples) or 1
    height = 20 + NODE_ROW * int(top)

    def y(count: float) -> float:
        return round(10 + (height - 20) * (1 - count / top), 1)

    points, previous = [], None
    for seconds, count in samples:
        if previous is not None:
            points.append(f"{axis.x(seconds)},{y(previous)}")  # a step, not a slope
        points.append(f"{axis.x(seconds)},{y(count)}")
        previous = count
    labels = [
        {"x": 4, "y": y(top) + 4, "text": f"{top:g} nodes"},
        {"x": 4, "y": y(0) + 4, "text": "0"},
    ]
    return {
        "points": " ".join(points),
        "labels": labels,
        "width": WIDTH,
        "height": height,
    }
