"""Where a run runs, decided once as it starts, and what follows from it.

    platform = Platform.of(settings.cluster, existing_spark_conf())
    platform.name            # "local", "spark-submit" or "databricks"
    platform.spark_master    # the master raybricks starts Spark on (local only), parsed
    platform.temp_root       # Ray's temp folders, and what a run grows before it is copied
    platform.start_hook      # the Ray-on-Spark start hook its nodes are started through

- `local`: no Spark exists; raybricks starts one on the settings' master and stops it.
- `spark-submit`: Spark's launcher started this process (or its own code made a
  session): raybricks uses that Spark, and stops only a session it made itself.
- `databricks`: the runtime's Spark, which raybricks never stops; the cluster's facts
  come from its Spark conf tags; the run folder is on a FUSE path every node sees
  (`SHARED_ROOTS`), and Ray's temp folders are on the node's local disk.

Imports neither Spark nor Ray: the settings and the preflight use it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from raybricks.platform.facts import CLUSTER_ID, ClusterFacts
from raybricks.platform.master import SparkMaster, spark_master

if TYPE_CHECKING:
    from raybricks.settings import ClusterSettings

PlatformName = Literal["local", "spark-submit", "databricks"]

RUNTIME_VERSION_VAR = "DATABRICKS_RUNTIME_VERSION"
GATEWAY_PORT_VAR = "PYSPARK_GATEWAY_PORT"  # spark-submit hands its JVM to Python so
# Databricks' FUSE mounts that every node of a cluster sees: a Unity Catalog volume, DBFS.
SHARED_ROOTS = ("/Volumes/", "/dbfs/")
DATABRICKS_TEMP_ROOT = "/local_disk0/tmp"  # the node's local disk, as Ray's Databricks hook
RAY_TEMP_ROOT = "/tmp"  # Ray on Spark's own default elsewhere

# The start hooks Ray on Spark instantiates (by class path) to get the nodes' environment.
LOCAL_START_HOOK = "raybricks.cluster.node_environment.NodeEnvironmentStartHook"
DATABRICKS_START_HOOK = "raybricks.databricks.job_hook.JobStartHook"


@dataclass(frozen=True)
class Platform:
    name: PlatformName
    temp_root: Path
    spark_master: SparkMaster | None = None  # where raybricks starts Spark itself
    facts: ClusterFacts | None = None  # the Databricks cluster's

    @classmethod
    def of(
        cls,
        cluster: ClusterSettings,
        spark_conf: Mapping[str, str] | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> Platform:
        """The platform of this process: `spark_conf` is that of a Spark it already has
        (None where it has none, or no SparkContext: Spark Connect)."""
        temp_root = Path(cluster.temp_root) if cluster.temp_root else None
        if RUNTIME_VERSION_VAR in environ or CLUSTER_ID in (spark_conf or {}):
            facts = ClusterFacts.from_spark_conf(
                spark_conf or {}, has_spark_context=not spark_connect(environ)
            )
            return cls("databricks", temp_root or Path(DATABRICKS_TEMP_ROOT), facts=facts)
        if GATEWAY_PORT_VAR in environ or spark_conf is not None:
            return cls("spark-submit", temp_root or Path(RAY_TEMP_ROOT))
        master = spark_master(cluster.spark_master)
        return cls("local", temp_root or Path(RAY_TEMP_ROOT), spark_master=master)

    @property
    def on_databricks(self) -> bool:
        return self.name == "databricks"

    @property
    def start_hook(self) -> str:
        return DATABRICKS_START_HOOK if self.on_databricks else LOCAL_START_HOOK

    def dashboard_url(self, address: str) -> str:
        """The dashboard at `address` as a person reaches it: on Databricks through the
        driver proxy, elsewhere directly."""
        if self.facts is None or self.facts.cluster_id is None:
            return f"http://{address}"
        return self.facts.driver_proxy_url(int(address.rsplit(":", 1)[1]))

    def describe_spark(self) -> str:
        """Which Spark a run uses, for its first log line."""
        if self.spark_master is not None:
            return self.spark_master.url
        return "the Databricks cluster's Spark" if self.on_databricks else "spark-submit's Spark"


def spark_connect(environ: Mapping[str, str]) -> bool:
    """A Databricks driver without a classic SparkContext (serverless, Spark Connect)."""
    return "SPARK_REMOTE" in environ or environ.get("SPARK_CONNECT_MODE_ENABLED") == "1"
