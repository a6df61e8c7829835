"""`report.html`: a run's report for people, self-contained (no network), rendered
from `report.json`'s model with a Jinja2 template: status, cluster and versions, the
stages on a time axis (parallel ones side by side), Ray worker nodes over time, each
stage's evidence, errors with their traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from raybricks.paths import write_whole
from raybricks.report.model import Report

HTML_FILE = "report.html"
COLORS = {"passed": "#1f8a4c", "failed": "#c62828", "cancelled": "#b26a00", "skipped": "#8a939c"}
LABEL_WIDTH, PLOT_WIDTH, ROW = 150, 640, 26

_environment = Environment(
    loader=PackageLoader("raybricks.report", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
)
_environment.filters["pretty"] = lambda value: (
    value if isinstance(value, str) else json.dumps(value, indent=1, default=str)
)


def write_html(report: Report, run_dir: Path) -> Path:
    target = run_dir / HTML_FILE
    span = max([report.seconds, *(_end(s) for s in report.stages)], default=0.0) or 1.0
    page = _environment.get_template("report.html.j2").render(
        report=report, timeline=_timeline(report, span), nodes=_nodes(report, span)
    )
    return write_whole(target, [page.encode()])


def _end(stage: Any) -> float:
    return float(stage.started_at_seconds or 0.0) + float(stage.seconds or 0.0)


def _x(seconds: float, span: float) -> float:
    return round(LABEL_WIDTH + PLOT_WIDTH * seconds / span, 1)


def _timeline(report: Report, span: float) -> dict[str, Any]:
    bars = []
    for row, stage in enumerate(report.stages):
        start = stage.started_at_seconds
        bars.append(
            {
                "name": stage.name,
                "status": stage.status,
                "seconds": f"{stage.seconds:.1f}",
                "x": _x(start or 0.0, span),
                "width": max(2.0, round(PLOT_WIDTH * stage.seconds / span, 1))
                if start is not None
                else 0,
                "y": 6 + row * ROW,
                "color": COLORS.get(stage.status, "#8a939c"),
            }
        )
    step = _tick_step(span)
    ticks = [
        {"x": _x(t * step, span), "label": f"{t * step:g} s"} for t in range(int(span // step) + 1)
    ]
    height = 6 + len(bars) * ROW + 24
    return {
        "bars": bars,
        "axis": {"ticks": ticks},
        "width": LABEL_WIDTH + PLOT_WIDTH + 140,
        "height": height,
    }


def _nodes(report: Report, span: float) -> dict[str, Any]:
    samples = report.worker_nodes
    if not samples:
        return {"points": ""}
    top = max(count for _, count in samples) or 1
    height = 120

    def y(count: float) -> float:
        return round(10 + (height - 30) * (1 - count / top), 1)

    points, previous = [], None
    for seconds, count in samples:
        if previous is not None:
            points.append(f"{_x(seconds, span)},{y(previous)}")  # a step, not a slope
        points.append(f"{_x(seconds, span)},{y(count)}")
        previous = count
    labels = [
        {"x": 4, "y": y(top) + 4, "text": f"{top:g} nodes"},
        {"x": 4, "y": y(0) + 4, "text": "0"},
    ]
    return {
        "points": " ".join(points),
        "labels": labels,
        "width": LABEL_WIDTH + PLOT_WIDTH + 140,
        "height": height,
    }


def _tick_step(span: float) -> float:
    for step in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600):
        if span / step <= 10:
            return step
    return 1200
