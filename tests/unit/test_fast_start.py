"""The guarded fast start: patches only the Ray version it was written for, restores
everything, and falls back to Ray's own behaviour with one log line elsewhere."""

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from types import SimpleNamespace

import psutil
import pytest
from pyspark import cloudpickle
from ray._private.node import Node
from ray.autoscaler._private.spark import spark_job_server
from ray.util.spark import cluster_init

from raybricks.cluster import compat, node_launcher
from raybricks.cluster.compat import fast_start, ports
from raybricks.cluster.compat.fast_start import Attempt
from raybricks.cluster.executors import launcher_check
from tests.helpers import free_port


def an_attempt() -> Attempt:
    return Attempt(Future())


def ray_internals():
    return tuple(getattr(module, name) for module, name, _ in fast_start._patches(an_attempt()))


def test_patches_inside_the_block_and_restores_after():
    before = ray_internals()
    with fast_start.faster_setup(an_attempt()):
        assert cluster_init._RAY_HEAD_STARTUP_TIMEOUT == 0
        assert cluster_init._RAY_CONNECT_CLUSTER_POLL_PROGRESS_TIMEOUT == 30
        assert cluster_init._preallocate_ray_worker_port_range is ports.claim_worker_port_range
        assert spark_job_server._start_ray_worker_nodes is not fast_start._start_ray_worker_nodes
    assert ray_internals() == before
    assert spark_job_server._start_ray_worker_nodes is fast_start._start_ray_worker_nodes


def test_no_worker_node_is_launched_where_an_executor_cannot_run_the_launcher(monkeypatch):
    """The launch gives way at once, and Ray's wait for worker nodes ends with why."""
    waiting = SimpleNamespace(background_job_exception=None)
    monkeypatch.setattr(cluster_init, "_active_ray_cluster", waiting)
    launched = []
    monkeypatch.setattr(fast_start, "_start_ray_worker_nodes", lambda **a: launched.append(a))
    attempt = an_attempt()
    attempt.executors.set_result("executor h cannot import raybricks (python: ...)")
    with fast_start.faster_setup(attempt):
        error = spark_job_server._start_ray_worker_nodes(ray_temp_dir="/tmp/ray-1-a", node_id="1")
    assert error == "executor h cannot import raybricks (python: ...)" and launched == []
    assert isinstance(waiting.background_job_exception, fast_start.ExecutorsCannotLaunchNodes)
    attempt = an_attempt()
    attempt.executors.set_result(None)
    with fast_start.faster_setup(attempt):
        spark_job_server._start_ray_worker_nodes(ray_temp_dir="/tmp/ray-1-a", node_id="2")
    assert launched == [{"ray_temp_dir": "/tmp/ray-1-a-node-2", "node_id": "2"}]


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
    with caplog.at_level(logging.INFO, logger="raybricks.cluster.compat"):
        status = compat.fast_start_status(True)
    assert status == "unavailable: it was written for Ray 2.60.0, this is Ray 2.61.0"
    assert len(caplog.records) == 1
    assert "this is Ray 2.61.0" in caplog.messages[0]


@pytest.mark.parametrize(
    ("module", "name"),
    [
        (cluster_init, "_RAY_HEAD_STARTUP_TIMEOUT"),
        (cluster_init, "_active_ray_cluster"),
        (spark_job_server, "_start_ray_worker_nodes"),
    ],
)
def test_a_missing_private_name_keeps_rays_own_start(monkeypatch, module, name):
    monkeypatch.delattr(module, name)
    assert compat.fast_start_status(True) == f"unavailable: {module.__name__}.{name} is missing"


def test_an_autoscaler_monitor_not_where_the_launcher_looks_keeps_rays_own_start(monkeypatch):
    moved = ("/autoscaler/_private/monitor_main.py", node_launcher.AUTOSCALER_MONITORS[1])
    monkeypatch.setattr(node_launcher, "AUTOSCALER_MONITORS", moved)
    assert compat.fast_start_status(True) == (
        "unavailable: ray.autoscaler._private.monitor is not a script ending in "
        "/autoscaler/_private/monitor_main.py"
    )


def test_a_missing_private_method_keeps_rays_own_start(monkeypatch):
    monkeypatch.delattr(Node, "start_api_server")
    assert compat.unavailable_reason() == "ray._private.node.Node.start_api_server is missing"


def test_the_setting_turns_it_off():
    assert compat.fast_start_status(False) == "off"


def test_worker_tasks_get_the_claim_and_reservation_by_reference_when_pickled():
    """Ray pickles its worker-node task function in the driver; the patched globals
    must travel as importable references (never the attempt's state), so executors run
    the same code."""
    # Defined in Ray's module namespace, as Ray's nested task function is.
    a_task_like_rays = eval(
        "lambda _: (_preallocate_ray_worker_port_range(), get_random_unused_port('h'), exec_cmd)",
        vars(cluster_init),
    )
    with fast_start.faster_setup(an_attempt()):
        task = cloudpickle.dumps(a_task_like_rays)
    assert b"raybricks.cluster.compat.ports" in task
    assert b"claim_worker_port_range" in task and b"reserve_unused_port" in task
    assert b"raybricks.cluster.compat.fast_start" in task and b"_exec_with_own_launcher" in task


def run_pickled(task: bytes, *path: str) -> tuple[list, bool]:
    """`task` (a pickled executors' check) run by a fresh Python, on `path` first: its
    answers, and whether it imported `json.tool`."""
    runner = (
        "import pickle, sys\n"
        f"sys.path[:0] = {list(path)!r}\n"
        "print(list(pickle.loads(sys.stdin.buffer.read())([0])))\n"
        "print('json.tool' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", runner], input=task, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    answers, warmed = done.stdout.decode().splitlines()
    return eval(answers), warmed == "True"


def test_the_executors_check_finds_the_launcher_and_warms_the_worker():
    (answer,), warmed = run_pickled(cloudpickle.dumps(launcher_check(warm="json.tool")))
    assert answer[1:] == (sys.executable, None) and warmed


def test_the_executors_check_runs_where_raybricks_is_not_installed(tmp_path):
    """Pickled by value: an executor without raybricks runs it, and says what is wrong."""
    hidden = tmp_path / "raybricks"
    hidden.mkdir()
    (hidden / "__init__.py").write_text("raise ImportError('raybricks is not installed here')\n")
    task = cloudpickle.dumps(launcher_check(warm="json.tool"))
    (answer,), warmed = run_pickled(task, str(tmp_path))
    assert answer[2] == "ImportError: raybricks is not installed here" and not warmed


def test_a_fast_start_is_retried_once_its_head_was_up_and_says_why():
    attempt = an_attempt()
    failure = RuntimeError("Launch Ray-on-Spark cluster failed")
    failure.__cause__ = RuntimeError("Starting Ray worker node failed, error:\nboom")
    assert attempt.retry_reason(failure) is None  # the head never came up: no retry
    attempt.head_up = True
    assert attempt.retry_reason(failure) == (
        "fast-started worker nodes did not join within 30 s "
        "(RuntimeError: Starting Ray worker node failed, error:)"
    )
    attempt.executors.set_result("raybricks' node launcher cannot run on executor h")
    assert attempt.retry_reason(failure) == "raybricks' node launcher cannot run on executor h"


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
