"""Whether Ray on Spark can work on this Databricks cluster: refusals (the run would
fail, so it does not start: exit 2) and warnings (known traps). Each check names its
source.

    verdict = check(facts, settings.cluster, {"log_path": settings.log_root})
    verdict.refusals    # one line each: what, the value, the fix
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from raybricks.platform import SHARED_ROOTS
from raybricks.platform.facts import ClusterFacts
from raybricks.settings import ClusterSettings

# Ray on Spark needs Databricks Runtime ML 12.2 LTS or above (Databricks' "Ray on
# Databricks" requirements; Ray's cluster_init uses stage scheduling from 12 on).
OLDEST_RUNTIME = (12, 2)
# Shared (standard) access mode isolates users in a way Ray's processes cannot run in;
# Databricks documents Ray on dedicated (single user) and no-isolation clusters.
REFUSED_ACCESS_MODES = {
    "USER_ISOLATION": "shared (standard)",
    "DATA_SECURITY_MODE_STANDARD": "standard",
    "LEGACY_TABLE_ACL": "table ACL (legacy shared)",
    "LEGACY_PASSTHROUGH": "credential passthrough (legacy)",
}
_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")  # 16.4.x-..., 18.x-..., 18


@dataclass
class Verdict:
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check(
    facts: ClusterFacts, cluster: ClusterSettings, shared: Mapping[str, Path] | None = None
) -> Verdict:
    """The verdict on a cluster with these `facts` for a run with these settings, and
    with the folders in `shared` (setting: folder), which every node must see."""
    verdict = Verdict()
    _refuse_what_cannot_work(facts, cluster, verdict.refusals)
    for setting, folder in (shared or {}).items():
        if not _shared(folder):
            verdict.refusals.append(
                f"{setting} = '{folder}' is on the driver's own disk: on Databricks it "
                "must be where every node sees it (Ray's nodes copy their logs to the run "
                "folder; Spark and Ray hand data over in it); use a Unity Catalog volume "
                "(/Volumes/<catalog>/<schema>/<volume>/...) or a /dbfs/... path"
            )
    _warn_of_traps(facts, cluster, verdict.warnings)
    return verdict


def _shared(path: Path) -> bool:
    return any(f"{path}/".startswith(root) for root in SHARED_ROOTS)


def _refuse_what_cannot_work(
    facts: ClusterFacts, cluster: ClusterSettings, refusals: list[str]
) -> None:
    if not facts.has_spark_context:
        refusals.append(
            "this Databricks compute has no SparkContext (serverless or Spark Connect): "
            "Ray on Spark needs a classic cluster; run the job on a job cluster"
        )
        return
    key = facts.spark_version or ""
    if key and "-ml-" not in key:
        refusals.append(
            f"Databricks runtime {key} is not an ML runtime: Ray on Spark needs one; "
            "choose an ML runtime such as 18.x-cpu-ml-scala2.13 (bundle variable "
            "spark_version)"
        )
    version = _VERSION.match(key) or _VERSION.match(facts.runtime_version or "")
    if version and (int(version[1]), int(version[2] or 0)) < OLDEST_RUNTIME:
        oldest = ".".join(map(str, OLDEST_RUNTIME))
        refusals.append(
            f"Databricks runtime {version[0]} is older than Ray on Spark supports "
            f"({oldest} LTS ML and above); choose a newer ML runtime"
        )
    mode = (facts.access_mode or "").upper()
    if mode in REFUSED_ACCESS_MODES:
        refusals.append(
            f"access mode {mode} ({REFUSED_ACCESS_MODES[mode]}) does not run Ray on Spark; "
            "set the cluster's data_security_mode to SINGLE_USER (dedicated)"
        )
    gpus = cluster.num_gpus_worker_node or 0
    if facts.gpus_per_worker is not None and gpus > facts.gpus_per_worker:
        refusals.append(
            f"cluster.num_gpus_worker_node = {gpus} is more than a Spark worker's "
            f"{facts.gpus_per_worker} GPU(s): no Ray worker node fits; lower it, or choose a "
            "node type with more GPUs"
        )


def _warn_of_traps(facts: ClusterFacts, cluster: ClusterSettings, warnings: list[str]) -> None:
    # Ray's own cluster_init warns of this too: Spark tasks then reserve the GPUs.
    if facts.gpu_task_amount > 0:
        warnings.append(
            f"spark.task.resource.gpu.amount = {facts.gpu_task_amount:g}: Spark tasks "
            "reserve GPUs that Ray worker nodes then cannot use; set it to 0"
        )
    if facts.gpu_runtime and not cluster.num_gpus_worker_node:
        warnings.append(
            f"Databricks runtime {facts.spark_version} is a GPU runtime but "
            "cluster.num_gpus_worker_node is 0: the GPUs sit idle; set it to a worker's GPUs "
            "(--num-gpus-worker-node, or the bundle's gpu target)"
        )
    lowest = cluster.min_worker_nodes or cluster.max_worker_nodes
    spark_autoscales = facts.autoscale is not None and facts.autoscale[0] != facts.autoscale[1]
    if spark_autoscales and lowest == cluster.max_worker_nodes and facts.autoscale:
        low, high = facts.autoscale
        warnings.append(
            f"the Spark cluster autoscales ({low} to {high} workers) while "
            f"cluster.min_worker_nodes = cluster.max_worker_nodes = {lowest}: Ray "
            "waits for every node up front; set min_worker_nodes below max_worker_nodes"
        )
    cpus = cluster.num_cpus_worker_node
    if facts.cores_per_worker is not None and cpus is not None and cpus > facts.cores_per_worker:
        warnings.append(
            f"cluster.num_cpus_worker_node = {cpus} is more than a Spark worker's "
            f"{facts.cores_per_worker} cores: no Ray worker node fits; lower it"
        )
