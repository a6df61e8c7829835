"""Ray on Spark's start hook for Databricks, made to work in a job.

Ray's own hook (`ray.util.spark.databricks_hook`) is written for notebooks: it shows
HTML through IPython's `displayHTML` (failing the start where no IPython shell runs,
as in every job task), and shuts the cluster down after 30 minutes without notebook
commands, which a job never runs. This one keeps what it does for Ray's nodes and
replaces the notebook parts: the run logs the dashboard's driver-proxy URL once the
cluster is ready, a run shuts its own cluster down, and Databricks internals are used
where present, with a warning where not. Every node also gets the run's auth mode and token.
"""

from __future__ import annotations

import logging
from typing import Any

from ray.util.spark.databricks_hook import (
    DefaultDatabricksRayOnSparkStartHook,
    get_db_entry_point,
    verify_databricks_auth_env,
)
from ray.util.spark.start_hook_base import RayOnSparkStartHook

from raybricks.cluster.node_environment import node_environment

logger = logging.getLogger(__name__)

# What Ray's Databricks hook gives every node besides the workspace credentials.
DATABRICKS_NODE_ENVIRONMENT = {"GLOO_SOCKET_IFNAME": "eth0", "DISABLE_MLFLOW_INTEGRATION": "TRUE"}


class JobStartHook(DefaultDatabricksRayOnSparkStartHook):
    def __init__(self, is_global: bool = False) -> None:  # Ray passes no arguments
        super().__init__(is_global)

    def on_ray_dashboard_created(self, port: int) -> None:
        pass  # the run logs its driver-proxy URL with the cluster's address

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
        return {**variables, **node_environment()}
