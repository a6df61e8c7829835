"""`raybricks report --run-id / --job --latest` through the real databricks-sdk, against
a workspace on loopback: both kinds of log path, and every way it can go wrong."""

from __future__ import annotations

import json

import pytest

from raybricks.cli import main
from raybricks.report import workspace
from raybricks.report.model import Report, StageResult
from tests.unit.fake_workspace import Workspace, reached_by_the_sdk

JOB = "raybricks-actor-demos-dev"


def report_json(run_id: str) -> bytes:
    report = Report.begin(run_id, {})
    report.stages = [
        StageResult("namespaces", "passed", 2.0),
        StageResult("actor_pool", "failed", 1.0, {}, "boom"),
    ]
    report.finish("failed", 1)
    return json.dumps(report.to_dict()).encode()


@pytest.fixture
def ws(monkeypatch, tmp_path):
    fake = Workspace(jobs=[{"job_id": 1, "settings": {"name": JOB}}])
    fake.add_run(
        7,
        1,
        ["--target", "dev", "--log-path", "/Volumes/main/raybricks/logs/dev", "--job-run-id", "7"],
    )
    fake.files["/Volumes/main/raybricks/logs/dev/20261126T120000Z-job7/report.json"] = report_json(
        "20261126T120000Z-job7"
    )
    fake.files["/Volumes/main/raybricks/logs/dev/20261126T110000Z-job6/report.json"] = report_json(
        "older"
    )
    fake.add_run(8, 1, ["--log-path=/dbfs/ray/logs", "--job-run-id", "8"])
    fake.files["dbfs:/ray/logs/20261126T130000Z-job8/report.json"] = report_json(
        "20261126T130000Z-job8"
    )
    fake.add_run(
        9, 1, ["--log-path", "/Volumes/main/raybricks/logs/dev", "--job-run-id", "9"]
    )  # no report
    fake.add_run(10, 2, ["--target", "dev"])  # no --log-path
    with reached_by_the_sdk(fake, monkeypatch, tmp_path):
        yield fake


def test_report_of_a_run_logging_to_a_volume(ws, capsys):
    assert main(["report", "--run-id", "7"]) == 0
    out = capsys.readouterr().out
    assert "run 20261126T120000Z-job7: failed" in out
    assert "actor_pool" in out and "boom" in out
    assert "run page: https://example.cloud.databricks.com/jobs/1/runs/7" in out


def test_report_of_a_run_logging_to_dbfs_read_in_chunks(ws, capsys, monkeypatch):
    monkeypatch.setattr(workspace, "DBFS_READ_BYTES", 100)  # several reads for one file
    assert main(["report", "--run-id", "8"]) == 0
    assert "run 20261126T130000Z-job8: failed" in capsys.readouterr().out


def test_report_of_a_jobs_latest_run(ws, capsys):
    ws.add_run(11, 1, ["--log-path", "/Volumes/main/raybricks/logs/dev"])
    ws.files["/Volumes/main/raybricks/logs/dev/20261126T140000Z-job11/report.json"] = report_json(
        "latest"
    )
    assert main(["report", "--job", JOB, "--latest"]) == 0
    assert "run latest: failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "--run-id", "99"], "run 99 does not exist in http://127.0.0.1"),
        (
            ["report", "--run-id", "9"],
            "run 9 left no report.json under /Volumes/main/raybricks/logs/dev",
        ),
        (["report", "--run-id", "10"], "run 10 was not given --log-path"),
        (["report", "--job", "nope", "--latest"], "no job named 'nope'"),
    ],
)
def test_failures_are_one_clear_line_and_exit_1(ws, capsys, argv, message):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_bad_credentials_say_so(ws, capsys, monkeypatch):
    monkeypatch.setenv("DATABRICKS_TOKEN", "expired")
    assert main(["report", "--run-id", "7"]) == 1
    err = capsys.readouterr().err
    assert "refused the credentials" in err and "Traceback" not in err


def test_report_needs_a_folder_or_a_run(capsys):
    assert main(["report"]) == 2
    assert "report needs RUN_DIR, --run-id N, or --job NAME --latest" in capsys.readouterr().err
