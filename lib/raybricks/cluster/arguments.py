"""`setup_ray_cluster`'s keyword arguments for a run's settings on a given Spark master,
and whether its minimum of worker nodes can ever fit there."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from raybricks.errors import BadInput, ClusterStartError
from raybricks.platform.master import SparkMaster
from raybricks.settings import ClusterSettings

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def setup_arguments(
    cluster: ClusterSettings, master: SparkMaster, log_dir: Path, stream_worker_logs: bool = True
) -> dict[str, Any]:
    """`setup_ray_cluster`'s keyword arguments for these settings on this master.

    In local mode Spark has no stage scheduling, so Ray refuses CPU and GPU counts (a
    worker node gets `spark.task.cpus`); elsewhere they must be given together. Without
    `stream_worker_logs`, no node runs a log monitor (which only sends workers' output
    to drivers), unless the node options ask for one."""
    cpus, gpus = cluster.num_cpus_worker_node, cluster.num_gpus_worker_node
    if master.local_mode:
        if cpus is not None or gpus is not None:
            logger.warning(
                "Spark master %s is local mode: CPU/GPU counts per worker node are not "
                "settable there; each worker node gets spark.task.cpus CPUs",
                master.url,
            )
        cpus = gpus = None
    elif cpus is not None and gpus is None:
        gpus = 0
    head_options = {**cluster.head_node_options, "include_dashboard": cluster.include_dashboard}
    worker_options = dict(cluster.worker_node_options)
    if master.is_local:
        worker_options.setdefault("node_ip_address", LOOPBACK)
    if not stream_worker_logs:
        for options in (head_options, worker_options):
            options.setdefault("include_log_monitor", False)
    arguments: dict[str, Any] = {
        "max_worker_nodes": cluster.max_worker_nodes,
        "min_worker_nodes": cluster.min_worker_nodes,
        "num_cpus_worker_node": cpus,
        "num_gpus_worker_node": gpus,
        "num_cpus_head_node": cluster.num_cpus_head_node,
        "memory_worker_node": cluster.memory_worker_node,
        "object_store_memory_worker_node": cluster.object_store_memory_worker_node,
        "head_node_options": head_options,
        "worker_node_options": worker_options,
        "collect_log_to_path": str(log_dir),
        "ray_temp_root_dir": cluster.temp_root,
        "autoscale_idle_timeout_minutes": cluster.autoscale_idle_timeout_minutes,
        "autoscale_upscaling_speed": cluster.autoscale_upscaling_speed,
    }
    return {key: value for key, value in arguments.items() if value is not None}


def minimum_workers(arguments: dict[str, Any]) -> int:
    """The worker nodes a start must reach (Ray's default minimum is the maximum)."""
    return int(arguments.get("min_worker_nodes") or arguments["max_worker_nodes"])


def check_room(master: SparkMaster, arguments: dict[str, Any]) -> None:
    """Fail at once where the minimum worker count can never start, instead of
    after Ray's two-minute wait for worker nodes that cannot come."""
    needed = minimum_workers(arguments)
    room = master.task_slots(arguments.get("num_cpus_worker_node"))
    if room is not None and room < needed:
        raise ClusterStartError(
            f"cluster.min_worker_nodes: {needed} worker nodes cannot start on {master.url}, "
            f"which has room for {room} (one Spark task each); lower "
            "cluster.min_worker_nodes (or max_worker_nodes), or give the master more "
            "workers or cores"
        )


def check_spark_keeps_a_slot(
    master: SparkMaster, cluster: ClusterSettings, stages_running_spark: list[str]
) -> None:
    """BadInput where Ray's worker nodes would hold every task slot of a Spark whose
    size is known, and a selected stage runs Spark jobs beside them (they would never
    start). A minimum that cannot fit at all is check_room's to answer."""
    nodes, cpus = cluster.max_worker_nodes, cluster.num_cpus_worker_node
    spare = master.spare_task_slots(nodes, cpus)
    if not stages_running_spark or spare is None or spare > 0:
        return
    slots = master.task_slots(cpus)
    if slots is not None and slots < (cluster.min_worker_nodes or nodes):
        return
    raise BadInput(
        f"cluster.max_worker_nodes: {nodes} Ray worker nodes hold every task slot of Spark "
        f"master {master.url}, and {', '.join(stages_running_spark)} runs Spark jobs beside "
        f"them; lower cluster.max_worker_nodes to {nodes - 1}, or give the master a worker "
        "or cores more"
    )
