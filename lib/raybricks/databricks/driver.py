"""The driver's first look at where it runs: the platform, and on a Databricks cluster
its preflight, which refuses before anything starts where Ray on Spark cannot work and
warns of known traps. Off Databricks nothing is checked."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from raybricks.cluster.compat.spark_jvm import existing_spark_conf
from raybricks.databricks.preflight import check
from raybricks.errors import BadInput
from raybricks.platform import Platform, spark_connect
from raybricks.settings import Settings

logger = logging.getLogger(__name__)


def checked_platform(settings: Settings) -> Platform:
    """This process's platform once checked; `BadInput` on the first refusal."""
    # Spark Connect first: PySpark's own calls would then want a Spark Connect server.
    conf = None if spark_connect(os.environ) else existing_spark_conf()
    platform = Platform.of(settings.cluster, conf)
    if platform.facts is None:
        return platform
    shared = {"log_path": settings.log_root}
    if settings.data.handoff_root:
        shared["data.handoff_root"] = Path(settings.data.handoff_root)
    verdict = check(platform.facts, settings.cluster, shared)
    if verdict.refusals:
        raise BadInput(verdict.refusals[0])
    for warning in verdict.warnings:
        logger.warning("%s", warning)
    facts = platform.facts
    logger.info(
        "Databricks cluster %s (%s) can run Ray on Spark", facts.cluster_id, facts.spark_version
    )
    return platform
