"""Ray on Spark's start hook for Databricks, made to work in a job.

Ray's own hook (`ray.util.spark.databricks_hook`) is written for notebooks: it shows
HTML through IPython's `displayHTML` (failing the start where no IPython shell runs,
as in every job task), and shuts the cluster down after 30 minutes without notebook
commands, which a job never runs. This one keeps what it does for Ray's nodes and
replaces the notebook parts: the dashboard's driver-proxy URL goes to the log, a run
shuts its own cluster down, and Databricks internals are used where present, with a
warning where not. Every node also gets the run's auth mode and token.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ray.util.spark.databricks_hook import (
    DefaultDatabricksRayOnSparkStartHook,
    get_db_entry_point,
    verify_databricks_auth_env,
)
from ray.util.spark.start_hook_base import RayOnSparkStartHook

from raybricks.cluster.auth import auth_environment
from raybricks.databricks.facts import ClusterFacts

logger = logging.getLogger(__name__)

# What Ray's Databricks hook gives every node besides the workspace credentials.
DATABRICKS_NODE_ENVIRONMENT = {"GLOO_SOCKET_IFNAME": "eth0", "DISABLE_MLFLOW_INTEGRATION": "TRUE"}


class JobStartHook(DefaultDatabricksRayOnSparkStartHook):
    def __init__(self, is_global: bool = False) -> None:  # Ray passes no arguments
        super().__init__(is_global)

    def on_ray_dashboard_created(self, port: int) -> None:
        logger.info("Ray dashboard (through the driver proxy): %s", dashboard_proxy_url(port))

    def on_cluster_created(self, ray_cluster_handler: Any) -> None:
        logger.info(
            "Databricks: no notebook-idle auto-shutdown of the Ray cluster; the run "
            "shuts its own cluster down when it ends"
        )

    def on_spark_job_created(self, job_group_id: str) -> None:
        # Databricks keeps a registered background job group alive while idle.
        try:
            get_db_entry_point().registerBackgroundSparkJobGroup(job_group_id)
        except Exception as exc:
            logger.warning(
                "Databricks runtime internals not reachable (%s: %s): Spark job group %s "
                "not registered as a background job; going on",
                type(exc).__name__,
                exc,
                job_group_id,
            )

    def custom_environment_variables(self) -> dict[str, str]:
        if verify_databricks_auth_env():  # Ray's hook hands the credentials on (for MLflow)
            variables = super().custom_environment_variables()
        else:
            logger.warning(
                "DATABRICKS_HOST and DATABRICKS_TOKEN (or a client id and secret) are not "
                "set: Ray tasks cannot reach the workspace (MLflow) with the driver's "
                "credentials; set them in the job's environment if tasks need it"
            )
            variables = {
                **RayOnSparkStartHook.custom_environment_variables(self),
                **DATABRICKS_NODE_ENVIRONMENT,
            }
        return {**variables, **auth_environment()}


def dashboard_proxy_url(port: int, facts: ClusterFacts | None = None) -> str:
    """`https://<workspace>/driver-proxy/o/<org id>/<cluster id>/<port>/`: how a person
    reaches a port of the driver; the path alone where the workspace is unknown."""
    facts = facts or driver_facts()
    path = f"/driver-proxy/o/{facts.org_id}/{facts.cluster_id}/{port}/"
    host = facts.workspace_url or os.environ.get("DATABRICKS_HOST", "")
    if not host:
        return path
    return f"{host.rstrip('/')}{path}" if "://" in host else f"https://{host}{path}"


def driver_facts() -> ClusterFacts:
    """The facts of the cluster this driver runs on, from its Spark session's conf."""
    from ray.util.spark.utils import get_spark_session

    return ClusterFacts.of_session(get_spark_session())
