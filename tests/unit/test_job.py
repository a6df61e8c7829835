"""`exec`'s command gets the cluster and gives the run its exit code; waiting on what
needs the cluster (the command, the timeline) ends once the cluster's head exits;
without the Ray that was read for it, the head is looked for at its port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading

import pytest

from raybricks.cluster.head import Head
from raybricks.cluster.lifecycle import ClusterInfo
from raybricks.errors import ClusterLost
from raybricks.report.model import Report
from raybricks.run.job import COMMAND_NOT_RUNNABLE, command_on
from tests.helpers import ScriptedHead, free_port

HANDED_ON = ("RAY_ADDRESS", "RAY_NAMESPACE", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")


def cluster_info(head: Head) -> ClusterInfo:
    return ClusterInfo(
        platform="local",
        spark_master="local-cluster[1,1,1024]",
        address="127.0.0.1:6379",
        dashboard_url="",
        max_worker_nodes=1,
        min_worker_nodes=1,
        num_cpus_worker_node=1,
        gpus_per_worker_node=0,
        total_cpus=1.0,
        total_gpus=0.0,
        namespace="ns-exec",
        auth_mode="token",
        fast_start="on",
        spark_startup_seconds=1.0,
        startup_seconds=1.0,
        head=head,
    )


def test_execs_command_gets_the_cluster_and_its_exit_code_is_the_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t" * 64)
    seen = tmp_path / "environment.json"
    script = (
        "import json, os, sys\n"
        f"json.dump({{k: os.environ.get(k) for k in {HANDED_ON!r}}}, open(sys.argv[1], 'w'))\n"
        "sys.exit(42)\n"
    )
    argv = [sys.executable, "-c", script, str(seen)]
    report = Report.begin("exec-run", {})
    assert command_on(argv)(cluster_info(ScriptedHead()), report) == 42
    assert report.command == {"argv": argv, "exit_code": 42}
    assert json.loads(seen.read_text()) == {
        "RAY_ADDRESS": "127.0.0.1:6379",
        "RAY_NAMESPACE": "ns-exec",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": "t" * 64,
    }


def test_a_command_that_cannot_start_ends_the_run_with_127(tmp_path):
    report = Report.begin("exec-run", {})
    argv = [str(tmp_path / "no-such-command")]
    assert command_on(argv)(cluster_info(ScriptedHead()), report) == COMMAND_NOT_RUNNABLE
    assert report.command == {"argv": argv, "exit_code": 127}


def test_the_commands_exit_code_while_the_head_runs():
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5); exit(7)"]) as child:
        ScriptedHead().wait_for(child.wait)
        assert child.returncode == 7


def test_a_head_that_exits_first_ends_the_wait():
    looks = iter([True, False])  # the head goes between the first look and the second
    with subprocess.Popen(["sleep", "30"]) as child:
        with pytest.raises(ClusterLost, match="the Ray cluster's head exited"):
            ScriptedHead(looks=looks.__next__).wait_for(child.wait)
        assert child.poll() is None  # ending the command is left to the caller
        child.kill()


def test_a_call_into_the_cluster_is_given_up_on_once_the_head_goes():
    finished, never = [], threading.Event()
    ScriptedHead(looks=lambda: False).wait_for(lambda: finished.append(True))  # done first: fine
    assert finished == [True]
    looks = iter([True, False])
    with pytest.raises(ClusterLost):
        ScriptedHead(looks=looks.__next__).wait_for(never.wait)  # hangs, as into a headless cluster
    never.set()


def test_on_another_ray_the_head_is_alive_while_its_port_takes_connections(monkeypatch):
    monkeypatch.setattr("ray.__version__", "2.61.0")
    port = free_port()
    head = Head("127.0.0.1", port)
    assert not head.alive()
    with socket.create_server(("127.0.0.1", port)):
        assert head.alive()


def test_an_exec_command_writes_to_the_console_while_the_runs_own_output_goes_to_its_log(
    tmp_path,
):
    """Within a run's redirect, what this process (and Ray, Spark) print goes to the
    driver log; the command's own output reaches the console untouched."""
    log = tmp_path / "driver.log"
    check = (
        "import os, subprocess, sys\n"
        "from raybricks.console import RunConsole\n"
        "console = RunConsole()\n"
        f"fd = os.open({str(log)!r}, os.O_WRONLY | os.O_CREAT | os.O_APPEND)\n"
        "with console.run_output_to(fd):\n"
        "    print('Ray and Spark banners', flush=True)\n"
        "    subprocess.run(['echo', 'also theirs'])\n"
        "    output = console.command_output()\n"
        "    command = [sys.executable, '-c', 'print(42)']\n"
        "    subprocess.run(command, stdout=output[0], stderr=output[1], check=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "42\n"
    assert log.read_text() == "Ray and Spark banners\nalso theirs\n"
