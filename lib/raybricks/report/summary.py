"""A run's summary, as the end of a run and `raybricks report` show it: the run's
outcome, its cluster, and per stage its status, seconds and what it proved."""

from __future__ import annotations

import io
import shlex

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from raybricks.report.model import Report

STYLES = {"passed": "green", "failed": "bold red", "cancelled": "yellow", "skipped": "dim"}


def summary(
    report: Report, with_cluster: bool = True, driver_gone: bool | None = None
) -> RenderableType:
    """The summary as rich renders it (a terminal in colour, a pipe in plain text);
    `with_cluster=False` at the end of a run, whose console said it already. A report
    that says `running` whose driver is gone (`driver_gone`; default: looked for on this
    machine) says the run ended without a report of its end."""
    gone = report.ended_unreported() if driver_gone is None else driver_gone
    lines: list[RenderableType] = [_outcome(report, gone and report.status == "running")]
    if report.cluster and with_cluster:
        c = report.cluster
        lines.append(
            Text(
                f"cluster {c.get('address')} on {c.get('spark_master')}, "
                f"{c.get('max_worker_nodes')} worker nodes{_resources(c)}, "
                f"auth {c.get('auth_mode')}, ready in {c.get('startup_seconds')} s"
            )
        )
    if report.error:
        lines.append(Text(f"error: {report.error}", style=STYLES["failed"]))
    if report.command:
        argv = shlex.join(report.command["argv"])
        lines.append(Text(f"command: {argv} -> exit {report.command['exit_code']}"))
    if report.stages:
        lines.append(_stage_table(report))
    return Group(*lines)


def _outcome(report: Report, ended_unreported: bool) -> Text:
    if ended_unreported:
        return Text.assemble(
            f"run {report.run_id}: ",
            ("ended without a report of its end", STYLES["failed"]),
            f": the driver was killed or lost (its last report, {report.seconds:.1f} s in, "
            "is below)",
        )
    ending = "" if report.status == "running" else f" (exit {report.exit_code})"
    return Text.assemble(
        f"run {report.run_id}: ",
        (report.status, STYLES.get(report.status, "")),
        f" in {report.seconds:.1f} s{ending}",
    )


def _resources(cluster: dict) -> str:
    """`: 2 CPUs, 2 GPUs` as the cluster had them when ready ('' for older reports)."""
    if "total_cpus" not in cluster:
        return ""
    gpus = cluster.get("total_gpus") or 0
    return f" ({cluster['total_cpus']:g} CPUs{f', {gpus:g} GPUs' if gpus else ''})"


def _stage_table(report: Report) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("stage", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("seconds", justify="right", no_wrap=True)
    table.add_column("what it proved (or its error)")
    for stage in report.stages:
        table.add_row(
            stage.name,
            Text(stage.status, style=STYLES.get(stage.status, "")),
            f"{stage.seconds:.1f}",
            stage.error or stage.reason or stage.headline,
        )
    return table


def format_summary(report: Report, width: int = 160) -> str:
    """The summary as plain text."""
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, soft_wrap=True).print(summary(report))
    return out.getvalue().rstrip()
