"""How `raybricks exec` waits for its command: the command's exit code, unless the
cluster's head exits first."""

from __future__ import annotations

import subprocess
import sys

import pytest

from raybricks.errors import ClusterLost
from raybricks.job import wait_while_the_head_runs


def test_the_commands_exit_code_while_the_head_runs():
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5); exit(7)"]) as child:
        assert wait_while_the_head_runs(child, lambda: True) == 7


def test_a_head_that_exits_first_ends_the_wait():
    looks = iter([True, False])  # the head goes between the first look and the second
    with subprocess.Popen(["sleep", "30"]) as child:
        with pytest.raises(ClusterLost, match="the Ray cluster's head exited"):
            wait_while_the_head_runs(child, looks.__next__)
        assert child.poll() is None  # ending the command is left to the caller
        child.kill()
