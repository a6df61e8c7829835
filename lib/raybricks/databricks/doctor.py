"""`raybricks doctor`: the preflight's checks for an existing Databricks cluster, from
outside it, through the Clusters API (databricks-sdk)."""

from __future__ import annotations

from databricks.sdk import WorkspaceClient

from raybricks.databricks.preflight import Verdict, check
from raybricks.platform.facts import ClusterFacts
from raybricks.report.workspace import asking
from raybricks.settings import ClusterSettings


def examine(w: WorkspaceClient, cluster_id: str, cluster: ClusterSettings) -> Verdict:
    """The verdict on cluster `cluster_id` for a run with these cluster settings."""
    with asking(w, f"cluster {cluster_id}"):
        details = w.clusters.get(cluster_id)
        node_types = w.clusters.list_node_types().node_types or []
    node_type = next((t for t in node_types if t.node_type_id == details.node_type_id), None)
    cores = node_type.num_cores if node_type else None
    gpus = node_type.num_gpus if node_type else None
    return check(ClusterFacts.from_cluster_details(details, cores, gpus), cluster)
