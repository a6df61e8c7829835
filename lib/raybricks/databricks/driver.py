"""The driver's first look at where it runs: the platform, and on a Databricks cluster
its preflight, which refuses before anything starts where Ray on Spark cannot work and
warns of known traps. Off Databricks, only that a local cluster has the GPUs asked."""

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
        _check_local_gpus(settings, platform)
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


def _check_local_gpus(settings: Settings, platform: Platform) -> None:
    """A local cluster raybricks starts has the GPUs it gives its workers, no more."""
    cluster = settings.cluster
    gpus = cluster.num_gpus_worker_node or 0
    local_cluster = platform.spark_master is not None and platform.spark_master.workers
    if local_cluster and gpus > cluster.spark_worker_gpus:
        raise BadInput(
            f"cluster.num_gpus_worker_node = {gpus} is more than each Spark worker's "
            f"{cluster.spark_worker_gpus} GPU(s) (cluster.spark_worker_gpus): no Ray worker "
            "node fits; lower it, or give the workers GPUs (spark_worker_gpus, gpu_discovery)"
        )
