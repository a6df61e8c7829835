"""On PYTHONPATH, a stand-in fault: a worker node's `ray start` launched by raybricks'
node launcher never joins its cluster (it waits until it is ended), as a node that
cannot reach its head would. Ray's own launcher's nodes join as usual."""

import os
import sys
import time


def _launched_by_raybricks() -> bool:
    if "start" not in sys.orig_argv or "--head" in sys.orig_argv:
        return False
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as parent:
            return b"raybricks.cluster.node_launcher" in parent.read()
    except OSError:
        return False


if _launched_by_raybricks():
    time.sleep(3600)
