"""A run logged to MLflow, against a real local tracking store (SQLite, artifacts beside
it): the run's and each stage's status as tags, seconds as metrics, its files as
artifacts; a tracking server that is not there costs a warning, not the run."""

from __future__ import annotations

import logging
import time

import pytest

from raybricks.errors import BadInput
from raybricks.report.html import write_html
from raybricks.report.mlflow_run import log_to_mlflow
from raybricks.report.model import Report, StageResult, write_report
from raybricks.settings import MlflowSettings, load_settings
from tests.helpers import free_port


def a_finished_run(run_dir) -> Report:
    report = Report.begin("20261207T101010Z-abc123", {"target": "local"})
    report.cluster = {"platform": "local", "max_worker_nodes": 2, "startup_seconds": 6.5}
    report.stages = [
        StageResult("namespaces", "passed", 2.5, {"found": True}, None, "ok", 1.0),
        StageResult("actor_pool", "failed", 1.25, {}, "order lost", "", 3.0),
    ]
    report.metrics = {
        "sample_seconds": 5.0,
        "cluster": {"t": [1.0, 2.0], "actors_alive": [2.0, 5.0]},
        "nodes": [],
    }
    report.finish("failed", 1)
    write_report(report, run_dir)
    write_html(report, run_dir)
    return report


def test_a_run_is_logged_with_its_stages_and_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the store's artifacts go beside it, in ./mlruns
    report = a_finished_run(tmp_path)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = MlflowSettings(experiment="raybricks-tests", tracking_uri=store)
    run_id = log_to_mlflow(report, tmp_path, settings)
    assert run_id is not None
    import mlflow  # here, not at collection: a second and more of every worker's start

    client = mlflow.MlflowClient(tracking_uri=store)
    run = client.get_run(run_id)
    assert run.info.run_name == report.run_id
    assert client.get_experiment(run.info.experiment_id).name == "raybricks-tests"
    tags = run.data.tags
    assert (tags["raybricks.status"], tags["stage.namespaces.status"]) == ("failed", "passed")
    assert tags["stage.actor_pool.status"] == "failed"
    metrics = run.data.metrics
    assert metrics["stage.namespaces.seconds"] == 2.5 and metrics["exit_code"] == 1.0
    assert metrics["cluster.startup_seconds"] == 6.5
    assert metrics["cluster.peak.actors_alive"] == 5.0
    assert run.data.params["cluster.max_worker_nodes"] == "2"
    logged = {artifact.path for artifact in client.list_artifacts(run_id)}
    assert logged == {"report.json", "report.html"}  # no metrics.prom: none was written


def test_no_experiment_logs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert log_to_mlflow(a_finished_run(tmp_path), tmp_path, MlflowSettings()) is None
    assert {p.name for p in tmp_path.iterdir()} == {"report.json", "report.html"}


def test_a_tracking_server_that_is_not_there_costs_a_warning_not_the_run(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    gone = MlflowSettings(experiment="x", tracking_uri=f"http://127.0.0.1:{free_port()}")
    clock = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="raybricks.report.mlflow_run"):
        assert log_to_mlflow(a_finished_run(tmp_path), tmp_path, gone) is None
    assert time.monotonic() - clock < 30
    (said,) = [r.getMessage() for r in caplog.records if r.name.startswith("raybricks")]
    assert "could not log the run to MLflow experiment 'x'" in said and "stands" in said


def test_the_experiment_is_a_setting_and_a_misspelt_key_is_bad_input(tmp_path):
    conf = tmp_path / "conf.yml"
    conf.write_text("mlflow:\n  experiment: /Users/me@example.com/raybricks\n")
    settings = load_settings(conf=conf, overrides={"log_path": str(tmp_path / "runs")})
    assert settings.mlflow.experiment == "/Users/me@example.com/raybricks"
    conf.write_text("mlflow:\n  experiments: x\n")
    with pytest.raises(BadInput, match=r"mlflow\.experiments"):
        load_settings(conf=conf, overrides={"log_path": str(tmp_path / "runs")})
