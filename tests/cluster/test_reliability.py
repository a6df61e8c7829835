"""The slow promises: 10 consecutive runs with the same settings, runs side by side,
repeated cancels, a cancel and a worker node's loss swept over a run, all passing and
leaving nothing behind. It is the reliability
script itself, which writes the table the README quotes (`make test-slow`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_reruns_neighbours_and_cancels_all_pass_and_leave_nothing(tmp_path):
    table = tmp_path / "RELIABILITY.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.reliability", "--runs", "10", "--out", str(table)],
        cwd=ROOT,
        timeout=5400,
    )
    assert done.returncode == 0, table.read_text() if table.exists() else "no table written"
