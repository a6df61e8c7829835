"""What a Databricks cluster is, as the checks need it: read by the driver from its own
Spark conf (Databricks sets `spark.databricks.clusterUsageTags.*` on every classic
cluster) and environment, or by `raybricks doctor` from the Clusters API.

Tag names as Databricks sets them and public code reads them (Ray's own
`databricks_hook` reads clusterId and orgId; the access-mode and scaling tags are
read the same way by Databricks' own diagnostics).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TAG = "spark.databricks.clusterUsageTags."
CLUSTER_ID = TAG + "clusterId"
ORG_ID = TAG + "clusterOwnerOrgId"
SPARK_VERSION = TAG + "sparkVersion"
ACCESS_MODE = TAG + "dataSecurityMode"
MIN_WORKERS = TAG + "clusterMinWorkers"
MAX_WORKERS = TAG + "clusterMaxWorkers"
WORKSPACE_URL = "spark.databricks.workspaceUrl"
GPU_TASK_AMOUNT = "spark.task.resource.gpu.amount"
GPU_EXECUTOR_AMOUNT = "spark.executor.resource.gpu.amount"  # a worker's GPUs
EXECUTOR_CORES = "spark.executor.cores"


@dataclass(frozen=True)
class ClusterFacts:
    cluster_id: str | None = None
    org_id: str | None = None
    spark_version: str | None = None  # the runtime's key: 16.4.x-cpu-ml-scala2.12
    runtime_version: str | None = None  # DATABRICKS_RUNTIME_VERSION: 16.4
    access_mode: str | None = None  # SINGLE_USER, USER_ISOLATION, NONE, ...
    workspace_url: str | None = None
    has_spark_context: bool = True
    gpu_task_amount: float = 0.0
    autoscale: tuple[int, int] | None = None  # the Spark cluster's (min, max) workers
    cores_per_worker: int | None = None
    gpus_per_worker: int | None = None

    @property
    def gpu_runtime(self) -> bool:
        """A GPU ML runtime (`16.4.x-gpu-ml-scala2.12`)."""
        return "-gpu-" in (self.spark_version or "")

    @property
    def on_databricks(self) -> bool:
        return self.cluster_id is not None or self.runtime_version is not None

    def driver_proxy_url(self, port: int) -> str:
        """`https://<workspace>/driver-proxy/o/<org id>/<cluster id>/<port>/`: how a person
        reaches a port of the driver; the path alone where the workspace is unknown."""
        path = f"/driver-proxy/o/{self.org_id}/{self.cluster_id}/{port}/"
        host = self.workspace_url or os.environ.get("DATABRICKS_HOST", "")
        if not host:
            return path
        return f"{host.rstrip('/')}{path}" if "://" in host else f"https://{host}{path}"

    @classmethod
    def from_spark_conf(
        cls, conf: Mapping[str, str], has_spark_context: bool = True
    ) -> ClusterFacts:
        """From the driver's Spark conf and environment."""
        low, high = _int(conf.get(MIN_WORKERS)), _int(conf.get(MAX_WORKERS))
        return cls(
            cluster_id=conf.get(CLUSTER_ID),
            org_id=conf.get(ORG_ID),
            spark_version=conf.get(SPARK_VERSION),
            runtime_version=os.environ.get("DATABRICKS_RUNTIME_VERSION"),
            access_mode=conf.get(ACCESS_MODE),
            workspace_url=conf.get(WORKSPACE_URL),
            has_spark_context=has_spark_context,
            gpu_task_amount=float(conf.get(GPU_TASK_AMOUNT) or 0),
            autoscale=(low, high) if low is not None and high is not None else None,
            cores_per_worker=_int(conf.get(EXECUTOR_CORES)),
            gpus_per_worker=_int(conf.get(GPU_EXECUTOR_AMOUNT)),
        )

    @classmethod
    def of_session(cls, session: Any) -> ClusterFacts:
        """From a SparkSession's conf (the driver's own cluster)."""
        return cls.from_spark_conf(dict(session.sparkContext.getConf().getAll()))

    @classmethod
    def from_cluster_details(
        cls, details: Any, cores_per_worker: float | None, gpus_per_worker: int | None = None
    ) -> ClusterFacts:
        """From the Clusters API's `ClusterDetails` (databricks-sdk) and its node type."""
        mode = details.data_security_mode
        scale = details.autoscale
        return cls(
            cluster_id=details.cluster_id,
            spark_version=details.spark_version,
            runtime_version=None,
            access_mode=getattr(mode, "value", mode),
            gpu_task_amount=float((details.spark_conf or {}).get(GPU_TASK_AMOUNT) or 0),
            autoscale=(scale.min_workers, scale.max_workers) if scale else None,
            cores_per_worker=int(cores_per_worker) if cores_per_worker else None,
            gpus_per_worker=gpus_per_worker,
        )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
