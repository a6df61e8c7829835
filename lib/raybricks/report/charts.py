"""The drawings of report.html, as numbers its template turns into inline SVG: one time
axis for the run (its phases, its stages, its worker nodes) and a small chart per metric
the nodes reported, a line per node, on that same axis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LABEL_WIDTH, PLOT_WIDTH = 150, 640
WIDTH = LABEL_WIDTH + PLOT_WIDTH + 140
CHART_HEIGHT = 64  # of a metric's plot, between its top and its zero
CLUSTER_COLOR = "#8a939c"
NODE_COLORS = ("#37474f", "#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457")
GAP_SAMPLES = 2.5  # a node silent this many sample periods: its line breaks


@dataclass(frozen=True)
class Axis:
    """Seconds from the run's start, across the plot."""

    span: float

    def x(self, seconds: float) -> float:
        return round(LABEL_WIDTH + self.length(seconds), 1)

    def length(self, seconds: float) -> float:
        return round(PLOT_WIDTH * seconds / self.span, 1)

    def ticks(self) -> list[dict[str, Any]]:
        step = next(
            (s for s in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600) if self.span / s <= 10), 1200
        )
        return [
            {"x": self.x(t * step), "label": f"{t * step:g} s"}
            for t in range(int(self.span // step) + 1)
        ]


@dataclass(frozen=True)
class Chart:
    title: str
    figure: str
    of: str | None = None  # drawn as a share (%) of this figure, each node of its own
    scale: float = 1.0  # the figure's unit, in what it is reported in
    unit: str = ""
    cluster: bool = False  # the cluster's line only


CHARTS = (
    Chart("CPUs in use, of each node's", "cpu_used", of="cpu_total", unit="%"),
    Chart("GPUs in use, of each node's", "gpu_used", of="gpu_total", unit="%"),
    Chart("memory used", "memory_used", scale=2**30, unit=" GiB"),
    Chart("object store used", "object_store_used", scale=2**20, unit=" MiB"),
    Chart("tasks running", "tasks_running"),
    Chart("tasks waiting (the cluster's)", "tasks_pending", cluster=True),
    Chart("actors alive", "actors_alive"),
)


def metric_charts(metrics: dict[str, Any], axis: Axis) -> dict[str, Any]:
    """What the template draws of `report.json`'s metrics: a legend of the nodes, and
    each chart with something to show (no GPU chart without GPUs)."""
    if not metrics:
        return {"charts": []}
    nodes = [
        {**node, "color": NODE_COLORS[i % len(NODE_COLORS)]}
        for i, node in enumerate(metrics["nodes"])
    ]
    cluster = {**metrics["cluster"], "name": "cluster", "color": CLUSTER_COLOR}
    period = float(metrics["sample_seconds"])
    charts = []
    for chart in CHARTS:
        lines = [
            _line(series, chart)
            for series in ([cluster] if chart.cluster else nodes)
            if chart.figure in series and (chart.of is None or any(series.get(chart.of, [])))
        ]
        if lines:
            charts.append(_drawn(chart, lines, axis, period))
    legend = [{"name": node["name"], "color": node["color"]} for node in nodes]
    return {"charts": charts, "legend": legend, "period": period, "width": WIDTH}


def _line(series: dict[str, Any], chart: Chart) -> dict[str, Any]:
    values = series.get(chart.figure, [])
    if chart.of is not None:
        totals = series.get(chart.of, [])
        values = [
            100 * v / total if total else 0.0 for v, total in zip(values, totals, strict=True)
        ]
    else:
        values = [v / chart.scale for v in values]
    return {"name": series["name"], "color": series["color"], "t": series["t"], "values": values}


def _drawn(chart: Chart, lines: list[dict[str, Any]], axis: Axis, period: float) -> dict[str, Any]:
    top = (
        100.0
        if chart.of
        else max((max(line["values"], default=0.0) for line in lines), default=0.0)
    )
    top = top or 1.0

    def y(value: float) -> float:
        return round(8 + CHART_HEIGHT * (1 - value / top), 1)

    drawn = []
    for line in lines:
        points = [
            [(axis.x(t), y(v)) for t, v in segment]
            for segment in _segments(line["t"], line["values"], GAP_SAMPLES * period)
        ]
        segments = [  # a lone point (a node seen once) is drawn as a dot
            {
                "points": " ".join(f"{px},{py}" for px, py in part),
                "dot": part[0] if len(part) == 1 else None,
            }
            for part in points
        ]
        drawn.append({"name": line["name"], "color": line["color"], "segments": segments})
    return {
        "title": chart.title,
        "lines": drawn,
        "top": f"{top:,.3g}{chart.unit}",
        "y_top": y(top),
        "y_zero": y(0.0),
        "x_start": LABEL_WIDTH,
        "x_end": LABEL_WIDTH + PLOT_WIDTH,
        "height": CHART_HEIGHT + 24,
    }


def _segments(
    times: list[float], values: list[float], gap: float
) -> list[list[tuple[float, float]]]:
    """The points of a line, split where the node went silent for longer than `gap`."""
    segments: list[list[tuple[float, float]]] = []
    previous = None
    for t, value in zip(times, values, strict=True):
        if previous is None or t - previous > gap:
            segments.append([])
        segments[-1].append((t, value))
        previous = t
    return segments
