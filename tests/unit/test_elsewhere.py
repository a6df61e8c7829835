"""A second driver ends with the driver that started it, however that one ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
from benchmarks.processes import wait_for

# A parent that starts a "second driver" (which asks to end with it), prints its pid,
# and then waits, to be killed outright by the test.
PARENT = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import sys, time; from raybricks.stages.elsewhere import _end_with; "
    "_end_with(int(sys.argv[1])); print('ready', flush=True); time.sleep(60)", str(os.getpid())],
    stdout=subprocess.PIPE, text=True)
assert child.stdout.readline() == "ready\\n"
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_second_driver_is_killed_with_the_driver_that_started_it():
    with subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        child = psutil.Process(int(parent.stdout.readline()))
        os.kill(parent.pid, signal.SIGKILL)  # no cleanup of its own runs
        parent.wait()
        assert wait_for(lambda: not child.is_running() or child.status() == "zombie", timeout=5)
