"""Waiting on what needs the cluster (`exec`'s command, the timeline) ends once the
cluster's head exits; without the Ray that was read for it, the head is looked for at
its port."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from raybricks.cluster.head import Head
from raybricks.errors import ClusterLost
from tests.helpers import ScriptedHead, free_port


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
