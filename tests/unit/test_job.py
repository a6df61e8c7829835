"""Waiting on what needs the cluster (`exec`'s command, the timeline) ends once the
cluster's head exits."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from raybricks.errors import ClusterLost
from raybricks.run.job import while_the_head_runs


def test_the_commands_exit_code_while_the_head_runs():
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5); exit(7)"]) as child:
        while_the_head_runs(child.wait, lambda: True)
        assert child.returncode == 7


def test_a_head_that_exits_first_ends_the_wait():
    looks = iter([True, False])  # the head goes between the first look and the second
    with subprocess.Popen(["sleep", "30"]) as child:
        with pytest.raises(ClusterLost, match="the Ray cluster's head exited"):
            while_the_head_runs(child.wait, looks.__next__)
        assert child.poll() is None  # ending the command is left to the caller
        child.kill()


def test_a_call_into_the_cluster_is_given_up_on_once_the_head_goes():
    finished, never = [], threading.Event()
    while_the_head_runs(lambda: finished.append(True), lambda: False)  # done first: fine
    assert finished == [True]
    looks = iter([True, False])
    with pytest.raises(ClusterLost):
        while_the_head_runs(never.wait, looks.__next__)  # hangs, as into a headless cluster
    never.set()
