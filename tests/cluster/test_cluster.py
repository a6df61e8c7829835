"""The session's Ray-on-Spark cluster: ready, multi-node, authenticated, in its namespace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import weakref
from pathlib import Path

import psutil
import pytest
import ray
from prometheus_client.parser import text_string_to_metric_families
from pyspark import SparkContext
from ray.util.spark import cluster_init

from raybricks.cluster import node_launcher
from raybricks.cluster.compat import fast_start
from raybricks.cluster.spark import PYTHON_DAEMON, jvm_processes
from raybricks.metrics.prometheus import fetch
from raybricks.metrics.sampler import ray_nodes
from tests.cluster.conftest import NAMESPACE, STRAY_TOKEN, ClusterUnderTest


def test_the_cluster_is_ready_with_two_worker_nodes(ray_cluster):
    alive = [node for node in ray.nodes() if node["Alive"]]
    assert len(alive) == 3  # the head (no CPUs) and two worker nodes of one CPU each
    assert ray.cluster_resources()["CPU"] == 2
    info = ray_cluster.info
    assert info.address.startswith("127.0.0.1:")
    assert info.spark_master == "local-cluster[3,1,1024]"
    assert info.startup_seconds > 0
    assert os.environ["RAY_ADDRESS"] == info.address


def test_the_driver_is_in_the_runs_namespace(ray_cluster):
    assert ray.get_runtime_context().namespace == NAMESPACE


def test_the_cluster_uses_a_fresh_token_not_the_stray_one(ray_cluster):
    assert ray_cluster.info.auth_mode == "token"
    assert os.environ["RAY_AUTH_TOKEN"] not in ("", STRAY_TOKEN)


def test_the_heads_temp_files_are_in_its_temp_folder(ray_cluster):
    """The dashboard's module forkserver keeps its socket in a `pymp-*` folder that Ray
    never removes: in the temp root, every run left one behind."""
    port = ray_cluster.info.address.rsplit(":", 1)[1]
    (head_folder,) = {  # the head's launcher's (another cluster may have had the port)
        node_launcher.temp_dir_of(command)
        for command in (proc.info["cmdline"] or [] for proc in psutil.process_iter(["cmdline"]))
        if command[1:3] == ["-m", node_launcher.__name__] and f"--port={port}" in command
    }
    assert head_folder is not None
    assert list(head_folder.glob("pymp-*/listener-*"))


def test_the_executors_python_daemon_imports_the_installed_pyspark(ray_cluster):
    """Each executor's Python daemon (the Ray worker nodes' Spark tasks are its forks)
    is raybricks', which leaves out Spark's zip of pyspark's sources."""
    executors = jvm_processes(SparkContext.getOrCreate())["executor"]  # the session's
    daemons = [
        child.cmdline()[1:3]
        for executor in executors
        for child in executor.children()
        if "python" in child.name()
    ]
    assert len(executors) == 3
    assert daemons == [["-m", PYTHON_DAEMON]] * 3  # every executor ran a check task


def test_no_jvm_of_the_local_spark_keeps_a_file_in_the_temp_folder(ray_cluster):
    """What a JVM killed outright would leave in /tmp (the driver-kill sweep found both):
    Netty's native sockets, a library each JVM writes there and loads as it starts, and
    the JVM's monitoring file."""
    jvms = [p for kind in jvm_processes(SparkContext.getOrCreate()).values() for p in kind]
    assert len(jvms) == 4  # the driver and three executors
    for jvm in jvms:
        mapped = {m.path for m in jvm.memory_maps()}
        written = [path for path in mapped if "libnetty_transport_native" in path]
        assert not written, f"{jvm.cmdline()[-12:]} loaded {written}"
        assert not list(Path(tempfile.gettempdir()).glob(f"hsperfdata_*/{jvm.pid}"))


def node_processes(cluster: ClusterUnderTest) -> list[tuple[psutil.Process, list[str]]]:
    """Each process started for one of the cluster's nodes, by the head's port it names,
    and its command line."""
    port = cluster.info.address.rsplit(":", 1)[1]
    named = (f"--port={port}", f"--address=127.0.0.1:{port}")
    found = [(p, p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])]
    return [(p, command) for p, command in found if any(n in command for n in named)]


def is_own_launcher(command: list[str]) -> bool:
    return command[1:3] == ["-m", node_launcher.__name__]


def test_every_ray_node_is_launched_by_raybricks_launcher(ray_cluster):
    """Fast start launches the head and each worker node with raybricks' launcher, which
    imports nothing of Ray, in place of Ray on Spark's `start_ray_node`."""
    launched = {"head": 0, "worker": 0, "by Ray's launcher": 0}
    for _, command in node_processes(ray_cluster):
        if node_launcher.RAYS_LAUNCHER in command:
            launched["by Ray's launcher"] += 1
        elif is_own_launcher(command):
            launched["head" if "--head" in command else "worker"] += 1
    assert launched == {"head": 1, "worker": 2, "by Ray's launcher": 0}


def test_every_nodes_ray_start_goes_without_the_cli_commands_it_does_not_run(ray_cluster):
    """Each launcher's `ray start` runs lean: no Ray Serve, no pandas (whose libraries a
    process that imported it maps), which Ray's CLI imports for its other commands."""
    starts = [
        child
        for proc, command in node_processes(ray_cluster)
        if is_own_launcher(command)
        for child in proc.children()
        if child.cmdline()[1:3] == ["-c", node_launcher.LEAN_RAY_START]
    ]
    assert len(starts) == 3
    for start in starts:
        mapped = [m.path for m in start.memory_maps() if "/pandas/" in m.path]
        assert mapped == [], f"`ray start` {start.pid} imported pandas"


def test_the_head_serves_no_ray_client(ray_cluster):
    """A run's drivers connect to the GCS: the head starts no Ray Client server on the
    port Ray on Spark names for one."""
    port = ray_cluster.info.address.rsplit(":", 1)[1]
    flag = "--ray-client-server-port="
    (client_port,) = {
        int(arg.removeprefix(flag))
        for _, command in node_processes(ray_cluster)
        for arg in command
        if arg.startswith(flag)
    }
    servers = [
        proc.pid
        for proc in psutil.process_iter(["cmdline"])
        if "ray.util.client.server" in (command := proc.info["cmdline"] or [])
        and any(arg.endswith(f":{port}") for arg in command)
    ]
    listening = [
        c
        for c in psutil.net_connections("tcp")
        if c.status == "LISTEN" and c.laddr.port == client_port
    ]
    assert (servers, listening) == ([], [])


def test_every_node_gets_the_launchers_polls(ray_cluster):
    """The launcher's settings reach every node's processes: a raylet whose object store
    was a moment late to listen waited a whole second before it could register, and a
    stopped node's `ray start` half a second for its drained raylet's end."""
    port = ray_cluster.info.address.rsplit(":", 1)[1]
    raylets = [
        proc.info["environ"] or {}
        for proc in psutil.process_iter(["name", "cmdline", "environ"])
        if proc.info["name"] == "raylet"
        and any(arg.endswith(f":{port}") for arg in proc.info["cmdline"] or [])
    ]
    assert len(raylets) == 3
    for environ in raylets:
        assert node_launcher.SOCKET_CONNECT_POLL.items() <= environ.items()
        assert node_launcher.DRAIN_POLL.items() <= environ.items()


def test_starting_the_head_leaves_the_drivers_connections_to_spark_alone(ray_cluster, monkeypatch):
    """Ray on Spark starts the head from a thread of the driver with a `preexec_fn`
    (`os.setpgrp`). Python in a forked child would drop the other threads' py4j
    connections there and shut their sockets down, which the driver shares: its main
    thread's next call to the JVM would meet a reset connection."""
    context = SparkContext._active_spark_context
    assert context is not None and context._gateway is not None
    client = context._gateway._gateway_client
    context.getLocalProperty("raybricks.probe")  # the main thread's connection, now idle
    before = weakref.ref(client.get_thread_connection())  # a strong one would keep it open
    monkeypatch.setattr(cluster_init, "exec_cmd", fast_start._exec_with_own_launcher)
    head = threading.Thread(
        target=cluster_init._start_ray_head_node,
        args=([sys.executable, "-c", "pass"], True, None),
    )
    head.start()
    head.join(30)
    context.getLocalProperty("raybricks.probe")
    assert client.get_thread_connection() is before()  # not replaced after a reset


def driver(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "import ray; ray.init(); print(len(ray.nodes()))"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_a_driver_with_the_token_joins_and_one_without_is_refused(ray_cluster):
    with_token = driver(dict(os.environ))
    assert with_token.returncode == 0, with_token.stderr[-2000:]
    assert with_token.stdout.splitlines()[0] == "3"  # autoscaler events may follow

    # Only the stray token from ~/.ray/auth_token, as any local user would have:
    without = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"}
    without["RAY_NUM_REDIS_GET_RETRIES"] = "2"  # the first answer is the refusal: Ray
    # would ask again once a second for 20 s
    refused = driver(without)
    assert refused.returncode != 0
    assert "auth" in refused.stderr.lower()


# What a Ray dashboard serves at these paths: jobs (submitting one runs a command), logs.
DASHBOARD_PATHS = ("/", "/api/jobs/", "/api/v0/logs/file?filename=raylet.out", "/logs", "/nodes")


def test_each_nodes_metrics_endpoint_serves_metrics_only(ray_cluster):
    """Whatever is asked of it, a node's metrics port answers with Prometheus text (every
    line a sample or a comment: no log content, no secret) or refuses; it runs nothing."""
    endpoints = ray_nodes()
    assert len(endpoints) == 3
    token = os.environ["RAY_AUTH_TOKEN"]
    for endpoint in endpoints:
        base = endpoint.url.removesuffix("/metrics")
        for path in DASHBOARD_PATHS:
            text = fetch(base + path, timeout=5)
            assert list(text_string_to_metric_families(text)), path  # parses, or raises
            assert token not in text and "Ray runtime started" not in text
        submit = urllib.request.Request(
            base + "/api/jobs/",
            data=json.dumps({"entrypoint": "touch /tmp/raybricks-metrics-ran"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(submit, timeout=5)
        assert refused.value.code == 405
    assert not os.path.exists("/tmp/raybricks-metrics-ran")
