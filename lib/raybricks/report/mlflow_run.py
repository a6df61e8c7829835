"""A run logged to an MLflow experiment, where Databricks users look (every ML runtime
has MLflow): its status and each stage's as tags, their seconds and the cluster's peaks
as metrics, report.json, report.html and metrics.prom as artifacts.

Logged once the run's files are written; a tracking server that cannot be reached costs
a warning, never the run's result. MLflow is imported only when a run is to be logged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from raybricks import environment
from raybricks.report.model import Report
from raybricks.settings import MlflowSettings

logger = logging.getLogger(__name__)

ARTIFACTS = ("report.json", "report.html", "metrics.prom")
# MLflow's HTTP calls give up in about a minute, not after its seven retries of two
# minutes each: a job's end should not wait on a tracking server that is gone.
HTTP_BOUNDS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def log_to_mlflow(report: Report, run_dir: Path, settings: MlflowSettings) -> str | None:
    """The MLflow run's id, or None where nothing was asked or it could not be logged."""
    if settings.experiment is None:
        return None
    try:
        return _logged(report, run_dir, settings)
    except Exception as exc:
        logger.warning(
            "could not log the run to MLflow experiment %r (%s: %s); the run's result stands",
            settings.experiment,
            type(exc).__name__,
            exc,
        )
        return None


def _logged(report: Report, run_dir: Path, settings: MlflowSettings) -> str:
    with environment.defaults(HTTP_BOUNDS):
        import mlflow

        return _logged_with(mlflow, report, run_dir, settings)


def _logged_with(mlflow: Any, report: Report, run_dir: Path, settings: MlflowSettings) -> str:
    if settings.tracking_uri is not None:
        mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_experiment(settings.experiment)
    with mlflow.start_run(run_name=report.run_id, tags=tags(report)) as run:
        mlflow.log_params(params(report))
        mlflow.log_metrics(metrics(report))
        for name in ARTIFACTS:
            if (run_dir / name).is_file():
                mlflow.log_artifact(str(run_dir / name))
    logger.info("logged to MLflow experiment %r as run %s", settings.experiment, run.info.run_id)
    return str(run.info.run_id)


def tags(report: Report) -> dict[str, str]:
    found = {
        "raybricks.run_id": report.run_id,
        "raybricks.status": report.status,
        **{f"raybricks.version.{name}": version for name, version in report.versions.items()},
        **{f"stage.{s.name}.status": s.status for s in report.stages},
    }
    if report.error:
        found["raybricks.error"] = report.error[:5000]  # MLflow's bound on a tag's value
    return found


def params(report: Report) -> dict[str, Any]:
    cluster = report.cluster
    keys = ("platform", "spark_master", "max_worker_nodes", "min_worker_nodes", "fast_start")
    return {
        "target": report.settings.get("target"),
        **{f"cluster.{key}": cluster[key] for key in keys if key in cluster},
    }


def metrics(report: Report) -> dict[str, float]:
    found = {"seconds": report.seconds, "exit_code": float(report.exit_code or 0)}
    found |= {f"stage.{s.name}.seconds": s.seconds for s in report.stages}
    if "startup_seconds" in report.cluster:
        found["cluster.startup_seconds"] = float(report.cluster["startup_seconds"])
    cluster = report.metrics.get("cluster", {})
    for figure in ("cpu_used", "gpu_used", "object_store_used", "tasks_pending", "actors_alive"):
        if cluster.get(figure):
            found[f"cluster.peak.{figure}"] = max(cluster[figure])
    return found
