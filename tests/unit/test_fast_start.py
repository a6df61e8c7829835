"""The guarded fast start: patches only the Ray version it was written for, restores
everything, and falls back to Ray's own behaviour with one log line elsewhere."""

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import pytest
from pyspark import cloudpickle
from ray._private.node import Node
from ray.autoscaler._private.spark import spark_job_server
from ray.util.spark import cluster_init

from raybricks.cluster import compat, node_launcher
from raybricks.cluster.compat import fast_start, ports
from tests.helpers import free_port


def ray_internals():
    return tuple(getattr(module, name) for module, name, _ in fast_start._patches())


def test_patches_inside_the_block_and_restores_after():
    before = ray_internals()
    with fast_start.faster_setup():
        assert cluster_init._RAY_HEAD_STARTUP_TIMEOUT == 0
        assert cluster_init._preallocate_ray_worker_port_range is ports.claim_worker_port_range
        assert spark_job_server._start_ray_worker_nodes is not before[-1]
    assert ray_internals() == before
    assert spark_job_server._start_ray_worker_nodes is fast_start._start_ray_worker_nodes


def test_each_worker_node_gets_a_temp_folder_of_its_own_beside_the_clusters():
    cluster = "/tmp/ray-9100-1a2b3c4d"
    folders = {fast_start.node_temp_dir(cluster, node_id) for node_id in ("1", "2")}
    assert folders == {f"{cluster}-node-1", f"{cluster}-node-2"}


def test_the_heads_process_group_is_made_without_python_in_the_forked_child(monkeypatch):
    """Ray's head start asks for `os.setpgrp` in a `preexec_fn`: it becomes
    `start_new_session` (made in C). Any other `preexec_fn` is kept as it is."""
    asked: dict = {}
    monkeypatch.setattr(cluster_init, "exec_cmd", lambda command, **options: asked.update(options))
    cluster_init._start_ray_head_node(["ray", "start"], synchronous=False, extra_env=None)
    assert callable(asked["preexec_fn"])
    assert fast_start.without_python_in_the_child(asked) == {
        "synchronous": False,
        "extra_env": None,
        "start_new_session": True,
    }
    other = {"preexec_fn": os.setsid}
    assert fast_start.without_python_in_the_child(other) == other


def test_another_ray_version_keeps_rays_timings_with_one_log_line(monkeypatch, caplog):
    monkeypatch.setattr("ray.__version__", "2.61.0")
    before = ray_internals()
    with (
        caplog.at_level(logging.INFO, logger="raybricks.cluster.compat"),
        compat.fast_start_if(True, spark_context=None) as status,
    ):
        assert status == "unavailable: it was written for Ray 2.60.0, this is Ray 2.61.0"
        assert ray_internals() == before
    assert len(caplog.records) == 1
    assert "this is Ray 2.61.0" in caplog.messages[0]


@pytest.mark.parametrize(
    ("module", "name"),
    [(cluster_init, "_RAY_HEAD_STARTUP_TIMEOUT"), (spark_job_server, "_start_ray_worker_nodes")],
)
def test_a_missing_private_name_keeps_rays_own_start(monkeypatch, module, name):
    monkeypatch.delattr(module, name)
    with compat.fast_start_if(True, spark_context=None) as status:
        assert status == f"unavailable: {module.__name__}.{name} is missing"
        assert not hasattr(module, name)


def test_an_autoscaler_monitor_not_where_the_launcher_looks_keeps_rays_own_start(monkeypatch):
    moved = ("/autoscaler/_private/monitor_main.py", node_launcher.AUTOSCALER_MONITORS[1])
    monkeypatch.setattr(node_launcher, "AUTOSCALER_MONITORS", moved)
    with compat.fast_start_if(True, spark_context=None) as status:
        assert status == (
            "unavailable: ray.autoscaler._private.monitor is not a script ending in "
            "/autoscaler/_private/monitor_main.py"
        )


def test_a_missing_private_method_keeps_rays_own_start(monkeypatch):
    monkeypatch.delattr(Node, "start_api_server")
    assert compat.unavailable_reason() == "ray._private.node.Node.start_api_server is missing"


def test_the_setting_turns_it_off():
    before = ray_internals()
    with compat.fast_start_if(False, spark_context=None) as status:
        assert status == "off"
        assert ray_internals() == before


def test_worker_tasks_get_the_claim_and_reservation_by_reference_when_pickled():
    """Ray pickles its worker-node task function in the driver; the patched globals
    must travel as importable references, so executors run the same code."""
    # Defined in Ray's module namespace, as Ray's nested task function is.
    a_task_like_rays = eval(
        "lambda _: (_preallocate_ray_worker_port_range(), get_random_unused_port('h'))",
        vars(cluster_init),
    )
    with fast_start.faster_setup():
        task = cloudpickle.dumps(a_task_like_rays)
    assert b"raybricks.cluster.compat.ports" in task
    assert b"claim_worker_port_range" in task and b"reserve_unused_port" in task


def test_the_warming_task_imports_ray_on_spark_by_reference():
    """Unpickled in a Spark Python worker, the task imports this module and so Ray."""
    task = cloudpickle.dumps(fast_start.import_ray_on_spark)
    assert b"raybricks.cluster.compat.fast_start" in task and b"import_ray_on_spark" in task


def a_head(port: int, listen_after: float | None) -> subprocess.Popen[bytes]:
    """A child process that, like Ray's head, names `--port=PORT` on its command line;
    it listens on the port after `listen_after` seconds, or never (None: it exits)."""
    code = (
        "import socket, sys, time\n"
        "if sys.argv[1] == 'exit': sys.exit(1)\n"
        "time.sleep(float(sys.argv[1]))\n"
        f"server = socket.create_server(('127.0.0.1', {port}))\n"
        "time.sleep(30)\n"
    )
    when = "exit" if listen_after is None else str(listen_after)
    return subprocess.Popen([sys.executable, "-c", code, when, f"--port={port}"])


@contextmanager
def a_running_head(port: int, listen_after: float) -> Iterator[subprocess.Popen[bytes]]:
    head = a_head(port, listen_after)
    try:
        yield head
    finally:
        head.kill()
        head.wait()


def test_the_head_port_is_polled_until_it_opens():
    port = free_port()
    with a_running_head(port, listen_after=1.0):
        assert fast_start._wait_until_port_in_use("127.0.0.1", port)


def test_a_port_that_never_opens_gives_up_at_the_limit(monkeypatch):
    monkeypatch.setattr(fast_start, "HEAD_PORT_TIMEOUT_SECONDS", 0.5)
    port = free_port()
    with a_running_head(port, listen_after=60) as head:
        clock = time.monotonic()
        assert not fast_start._wait_until_port_in_use("127.0.0.1", port)
        assert 0.5 <= time.monotonic() - clock < 5
        assert head.poll() is None  # it was waited for while it ran


def test_a_head_that_exits_is_given_up_on_at_once():
    port = free_port()
    head = a_head(port, listen_after=None)
    exited = psutil.Process(head.pid)
    while exited.status() != psutil.STATUS_ZOMBIE:  # left unreaped, as Ray leaves it
        time.sleep(0.05)
    clock = time.monotonic()
    assert not fast_start._wait_until_port_in_use("127.0.0.1", port)
    assert time.monotonic() - clock < fast_start.HEAD_PORT_TIMEOUT_SECONDS / 4
