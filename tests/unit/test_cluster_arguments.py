"""How settings become `setup_ray_cluster` arguments, per Spark master."""

import logging
from pathlib import Path

from raybricks.cluster import is_local_mode, setup_arguments
from raybricks.settings import ClusterSettings

LOGS = Path("/tmp/run")


def test_local_mode_drops_cpu_and_gpu_counts(caplog):
    with caplog.at_level(logging.INFO, logger="raybricks.cluster"):
        arguments = setup_arguments(ClusterSettings(num_gpus_worker_node=0), "local[2]", LOGS)
    assert "num_cpus_worker_node" not in arguments
    assert "num_gpus_worker_node" not in arguments
    assert "local mode" in caplog.text


def test_local_cluster_gives_cpus_and_gpus_together():
    arguments = setup_arguments(
        ClusterSettings(num_cpus_worker_node=2), "local-cluster[2,2,1024]", LOGS
    )
    assert arguments["num_cpus_worker_node"] == 2
    assert arguments["num_gpus_worker_node"] == 0


def test_neither_count_given_leaves_both_to_ray():
    arguments = setup_arguments(ClusterSettings(num_cpus_worker_node=None), "spark://h:7077", LOGS)
    assert "num_cpus_worker_node" not in arguments
    assert "num_gpus_worker_node" not in arguments


def test_local_masters_bind_worker_nodes_to_loopback_others_do_not():
    local = setup_arguments(ClusterSettings(), "local-cluster[2,1,1024]", LOGS)
    assert local["worker_node_options"]["node_ip_address"] == "127.0.0.1"
    remote = setup_arguments(ClusterSettings(), "spark://h:7077", LOGS)
    assert "node_ip_address" not in remote["worker_node_options"]


def test_logs_dashboard_and_sizes_are_passed_through():
    cluster = ClusterSettings(
        max_worker_nodes=3,
        min_worker_nodes=1,
        memory_worker_node=2**30,
        include_dashboard=False,
        head_node_options={"disable_usage_stats": None},
    )
    arguments = setup_arguments(cluster, "yarn", LOGS)
    assert arguments["collect_log_to_path"] == "/tmp/run"
    assert arguments["max_worker_nodes"] == 3
    assert arguments["min_worker_nodes"] == 1
    assert arguments["memory_worker_node"] == 2**30
    assert arguments["head_node_options"] == {
        "disable_usage_stats": None,
        "include_dashboard": False,
    }
    assert "num_cpus_head_node" not in arguments  # None: Ray decides


def test_local_mode_detection():
    assert is_local_mode("local") and is_local_mode("local[*]") and is_local_mode("local[4,2]")
    assert not is_local_mode("local-cluster[2,1,1024]")
    assert not is_local_mode("spark://h:7077")
