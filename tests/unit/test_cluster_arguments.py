"""How settings become `setup_ray_cluster` arguments, per Spark master."""

import logging
import os
from pathlib import Path

import pytest

from raybricks.cluster.arguments import check_room, check_spark_keeps_a_slot, setup_arguments
from raybricks.errors import BadInput, ClusterStartError
from raybricks.platform.master import spark_master
from raybricks.settings import ClusterSettings

LOGS = Path("/tmp/run")


def test_local_mode_drops_cpu_and_gpu_counts(caplog):
    with caplog.at_level(logging.INFO, logger="raybricks.cluster.arguments"):
        arguments = setup_arguments(
            ClusterSettings(num_gpus_worker_node=0), spark_master("local[2]"), LOGS
        )
    assert "num_cpus_worker_node" not in arguments
    assert "num_gpus_worker_node" not in arguments
    assert "local mode" in caplog.text


def test_local_cluster_gives_cpus_and_gpus_together():
    arguments = setup_arguments(
        ClusterSettings(num_cpus_worker_node=2), spark_master("local-cluster[2,2,1024]"), LOGS
    )
    assert arguments["num_cpus_worker_node"] == 2
    assert arguments["num_gpus_worker_node"] == 0


def test_neither_count_given_leaves_both_to_ray():
    arguments = setup_arguments(
        ClusterSettings(num_cpus_worker_node=None), spark_master("spark://h:7077"), LOGS
    )
    assert "num_cpus_worker_node" not in arguments
    assert "num_gpus_worker_node" not in arguments


def test_local_masters_bind_worker_nodes_to_loopback_others_do_not():
    local = setup_arguments(ClusterSettings(), spark_master("local-cluster[2,1,1024]"), LOGS)
    assert local["worker_node_options"]["node_ip_address"] == "127.0.0.1"
    remote = setup_arguments(ClusterSettings(), spark_master("spark://h:7077"), LOGS)
    assert "node_ip_address" not in remote["worker_node_options"]


def test_logs_dashboard_and_sizes_are_passed_through():
    cluster = ClusterSettings(
        max_worker_nodes=3,
        min_worker_nodes=1,
        memory_worker_node=2**30,
        include_dashboard=False,
        head_node_options={"disable_usage_stats": None},
    )
    arguments = setup_arguments(cluster, spark_master("yarn"), LOGS)
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
    for local in ("local", "local[*]", "local[4,2]", "local[*, 4]"):  # the last: Databricks'
        assert spark_master(local).local_mode, local
    for not_local in ("local-cluster[2,1,1024]", "spark://h:7077", "k8s://h"):
        assert not spark_master(not_local).local_mode, not_local


@pytest.mark.parametrize(
    ("master", "cpus", "room"),
    [
        ("local-cluster[2,1,1024]", 1, 2),
        ("local-cluster[2,3,1024]", 2, 2),  # per executor: 3 cores hold one 2-CPU node
        ("local-cluster[1,1,1024]", 2, 0),
        ("local-cluster[2,1,1024]", None, None),  # Ray sizes nodes from the machine
        ("local[3]", None, 3),
        ("local", None, 1),
        ("local[*]", None, os.cpu_count()),
        ("spark://h:7077", 1, None),  # a real cluster may grow
        ("yarn", 1, None),
    ],
)
def test_room_for_worker_nodes_per_master(master, cpus, room):
    assert spark_master(master).task_slots(cpus) == room


def test_a_minimum_that_cannot_fit_fails_before_anything_starts():
    arguments = setup_arguments(
        ClusterSettings(max_worker_nodes=3, min_worker_nodes=2),
        spark_master("local-cluster[1,1,1024]"),
        LOGS,
    )
    with pytest.raises(ClusterStartError) as failure:
        check_room(spark_master("local-cluster[1,1,1024]"), arguments)
    message = str(failure.value)
    assert message.startswith("cluster.min_worker_nodes: 2 worker nodes")
    assert "room for 1" in message and "lower cluster.min_worker_nodes" in message


def test_autoscaling_needs_room_only_for_its_minimum():
    arguments = setup_arguments(
        ClusterSettings(max_worker_nodes=4, min_worker_nodes=2),
        spark_master("local-cluster[2,1,1024]"),
        LOGS,
    )
    check_room(
        spark_master("local-cluster[2,1,1024]"), arguments
    )  # max 4 > room 2: autoscaling up to 2


def test_without_streamed_worker_logs_no_node_runs_a_log_monitor_unless_asked():
    streamed = setup_arguments(ClusterSettings(), spark_master("local-cluster[2,1,1024]"), LOGS)
    assert "include_log_monitor" not in streamed["head_node_options"]
    asked = ClusterSettings(worker_node_options={"include_log_monitor": True})
    quiet = setup_arguments(
        asked, spark_master("local-cluster[2,1,1024]"), LOGS, stream_worker_logs=False
    )
    assert quiet["head_node_options"]["include_log_monitor"] is False
    assert quiet["worker_node_options"]["include_log_monitor"] is True


def test_a_temp_root_is_passed_to_ray_only_when_set():
    assert "ray_temp_root_dir" not in setup_arguments(
        ClusterSettings(), spark_master("local[1]"), LOGS
    )
    given = setup_arguments(ClusterSettings(temp_root="/tmp/x"), spark_master("local[1]"), LOGS)
    assert given["ray_temp_root_dir"] == "/tmp/x"


@pytest.mark.parametrize(
    ("master", "nodes", "cpus", "spare"),
    [
        ("local-cluster[3,1,1024]", 2, 1, 1),
        ("local-cluster[2,1,1024]", 2, 1, 0),
        ("local-cluster[2,2,1024]", 2, 1, 2),  # nodes pack onto an executor's cores
        ("local-cluster[2,3,1024]", 2, 2, 2),  # a 2-CPU node per 3-core executor
        ("local-cluster[2,1,1024]", 1, None, 1),  # a node takes its executor's cores
        ("local[3]", 2, None, 1),
        ("spark://h:7077", 2, 1, None),  # a real cluster's size is not in its URL
    ],
)
def test_spark_task_slots_left_beside_ray_worker_nodes(master, nodes, cpus, spare):
    assert spark_master(master).spare_task_slots(nodes, cpus) == spare


def test_ray_holding_every_slot_is_refused_only_for_stages_that_run_spark_jobs():
    full = spark_master("local-cluster[2,1,1024]")
    cluster = ClusterSettings(max_worker_nodes=2, num_cpus_worker_node=1)
    check_spark_keeps_a_slot(full, cluster, [])  # the lesson's six run no Spark job
    check_spark_keeps_a_slot(spark_master("spark://h:7077"), cluster, ["batch_inference"])
    # A minimum that can never fit is the cluster start's refusal (exit 3), not this one.
    one = spark_master("local-cluster[1,1,1024]")
    minimum = ClusterSettings(max_worker_nodes=2, min_worker_nodes=2, num_cpus_worker_node=1)
    check_spark_keeps_a_slot(one, minimum, ["batch_inference"])
    with pytest.raises(BadInput) as refused:
        check_spark_keeps_a_slot(full, cluster, ["batch_inference"])
    assert str(refused.value) == (
        "cluster.max_worker_nodes: 2 Ray worker nodes hold every task slot of Spark master "
        "local-cluster[2,1,1024], and batch_inference runs Spark jobs beside them; lower "
        "cluster.max_worker_nodes to 1, or give the master a worker or cores more"
    )
