"""The preflight of a run: on a Databricks cluster, refuse before anything starts where
Ray on Spark cannot work, and warn of known traps. A plain local Spark (no
`clusterUsageTags`) is not checked."""

from __future__ import annotations

import logging
import os

from raybricks.cluster.compat.spark_jvm import existing_spark_conf
from raybricks.databricks.facts import CLUSTER_ID, ClusterFacts
from raybricks.databricks.preflight import check
from raybricks.errors import BadInput
from raybricks.settings import ClusterSettings

logger = logging.getLogger(__name__)


def preflight(cluster: ClusterSettings) -> ClusterFacts | None:
    """The Databricks cluster's facts once checked (None off Databricks); `BadInput` on
    the first refusal."""
    if _spark_connect():  # checked first: PySpark's own calls then want Spark Connect
        runtime = os.environ["DATABRICKS_RUNTIME_VERSION"]
        facts = ClusterFacts(runtime_version=runtime, has_spark_context=False)
    elif (conf := existing_spark_conf()) is not None and CLUSTER_ID in conf:
        facts = ClusterFacts.from_spark_conf(conf)
    else:
        return None
    verdict = check(facts, cluster)
    if verdict.refusals:
        raise BadInput(verdict.refusals[0])
    for warning in verdict.warnings:
        logger.warning("%s", warning)
    logger.info(
        "Databricks cluster %s (%s) can run Ray on Spark", facts.cluster_id, facts.spark_version
    )
    return facts


def _spark_connect() -> bool:
    """A Databricks driver without a classic SparkContext (serverless, Spark Connect)."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ and (
        "SPARK_REMOTE" in os.environ or os.environ.get("SPARK_CONNECT_MODE_ENABLED") == "1"
    )
