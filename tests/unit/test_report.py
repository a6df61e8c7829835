import io
import json
import os
import socket
import subprocess

import pytest
from rich.console import Console

from raybricks.errors import BadInput
from raybricks.report.model import Report, StageResult, read_report, write_report
from raybricks.report.summary import format_summary, summary


def a_report() -> Report:
    report = Report.begin("20260102T030405Z-abcdef", {"target": "local"})
    report.cluster = {
        "address": "127.0.0.1:9000",
        "spark_master": "local-cluster[2,1,1024]",
        "max_worker_nodes": 2,
        "auth_mode": "token",
        "startup_seconds": 9.5,
    }
    report.stages = [
        StageResult(
            "options_override",
            "passed",
            1.25,
            {"assigned": {"CPU": 1.0}},
            headline="ran with {'CPU': 1.0}",
            started_at_seconds=0.5,
        ),
        StageResult("actor_pool", "failed", 0.5, {}, "StageFailed: order lost"),
        StageResult("tree_of_actors"),
    ]
    report.finish("failed", 1)
    return report


def test_report_holds_the_contracts_fields_and_round_trips(tmp_path):
    write_report(a_report(), tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    for key in ("run_id", "status", "started_at", "seconds", "versions", "cluster", "stages"):
        assert key in data
    assert set(data["versions"]) >= {"raybricks", "ray", "pyspark", "python"}
    assert data["stages"][0] == {
        "name": "options_override",
        "status": "passed",
        "seconds": 1.25,
        "evidence": {"assigned": {"CPU": 1.0}},
        "error": None,
        "headline": "ran with {'CPU': 1.0}",
        "started_at_seconds": 0.5,
        "traceback": None,
        "reason": None,
    }
    assert read_report(tmp_path) == Report.from_dict(data)


def test_writing_is_atomic_and_leaves_no_temporary_files(tmp_path):
    report = a_report()
    write_report(report, tmp_path)
    report.status = "cancelled"
    write_report(report, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    assert read_report(tmp_path).status == "cancelled"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("cannot be written")


def test_a_write_that_fails_midway_keeps_the_previous_report_whole(tmp_path):
    report = a_report()
    write_report(report, tmp_path)
    report.status = "passed"
    report.stages[0].evidence = {"odd": Unprintable()}
    with pytest.raises(RuntimeError, match="cannot be written"):
        write_report(report, tmp_path)
    assert read_report(tmp_path).status == "failed"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_summary_names_every_stage_with_status_and_error():
    summary = format_summary(a_report())
    assert "run 20260102T030405Z-abcdef: failed" in summary
    assert "127.0.0.1:9000" in summary
    lines = summary.splitlines()
    assert any(
        line.startswith("options_override") and "passed" in line and "ran with" in line
        for line in lines
    )
    assert any("actor_pool" in line and "order lost" in line for line in lines)
    assert any(line.startswith("tree_of_actors") and "skipped" in line for line in lines)


def test_reading_a_folder_without_a_report_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match=r"holds no report\.json"):
        read_report(tmp_path)
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(BadInput, match="not a raybricks report"):
        read_report(tmp_path)


def a_killed_run(driver_pid: int) -> Report:
    """The last report a run wrote before its driver was killed: as a stage ended."""
    report = a_report()
    report.status, report.exit_code, report.seconds = "running", None, 14.2
    report.driver = {"host": socket.gethostname(), "pid": driver_pid}
    return report


def test_a_report_left_running_by_a_killed_driver_says_the_run_ended_without_its_end():
    gone = subprocess.Popen(["true"])
    gone.wait()
    text = format_summary(a_killed_run(gone.pid))
    first = text.splitlines()[0]
    assert "ended without a report of its end: the driver was killed or lost" in first
    assert "14.2 s in" in first and "exit None" not in text
    assert "options_override" in text and "passed" in text  # what had ended, as it ended


def test_a_running_report_whose_driver_runs_still_says_running():
    text = format_summary(a_killed_run(os.getpid()))
    assert text.splitlines()[0] == "run 20260102T030405Z-abcdef: running in 14.2 s"
    # A job run the workspace says has ended is one without a report of its end.
    assert "ended without a report" in format_summary_of(a_killed_run(os.getpid()), gone=True)


def format_summary_of(report: Report, gone: bool) -> str:
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(summary(report, driver_gone=gone))
    return out.getvalue()
