"""Inside the head node's own `ray start`: the raylet starts without waiting for the
dashboard, and the head's temp files go to its temp folder. Ray runs it there as its
`RAY_START_HOOK`; `fast_start` sets that.

`ray start --head` starts the dashboard and waits until it has published its URL, which
it does once all of its module processes are up (about 3 s here), and only then starts
the head's raylet. Ray on Spark asks for worker nodes once that raylet has registered,
so the whole cluster waits for the dashboard. Here the dashboard starts in a thread
beside the raylet, and `ray start` still waits for both before it reports the node up.

Ray starts the dashboard as a child that Linux kills when the *thread* that started it
ends (PR_SET_PDEATHSIG), so that thread stays, idle, for the life of the node.

The dashboard starts its modules through a multiprocessing forkserver, whose socket
folder (`pymp-*`, in the temp root) is removed only by a Python exit the dashboard never
gets: every run left one in /tmp. In the head's folder it goes when the folder does.

Kept to the Ray version it was read for: this module imports only Ray, since it runs
on the start's critical path.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import ray
from ray._private.node import Node

from raybricks.cluster.compat import READ_FOR_RAY

logger = logging.getLogger(__name__)


_start_api_server = Node.start_api_server
_start_ray_processes = Node.start_ray_processes
_dashboard_starts: dict[int, tuple[threading.Event, list[BaseException]]] = {}


def start_head(ray_params: Any, head: bool) -> None:
    """`RAY_START_HOOK(ray_params, head)`: on the head, its processes' temp files in its
    temp folder, and the dashboard started in the background. This process starts one
    node, so Ray's class is patched in place."""
    if not head:
        return
    if ray_params.temp_dir:  # None: Ray's global mode, in Ray's own temp root
        os.environ["TMPDIR"] = ray_params.temp_dir  # inherited by the node's processes
    if ray.__version__ != READ_FOR_RAY:
        return
    Node.start_api_server = _start_api_server_in_background  # type: ignore[method-assign, assignment]
    Node.start_ray_processes = _start_ray_processes_then_wait  # type: ignore[method-assign]


def _start_api_server_in_background(node: Node, **arguments: Any) -> None:
    started = threading.Event()
    errors: list[BaseException] = []

    def start() -> None:
        try:
            _start_api_server(node, **arguments)
        except BaseException as exc:  # raised in `ray start` once the raylet is up
            errors.append(exc)
        finally:
            started.set()
        threading.Event().wait()  # the dashboard lives as long as this thread

    _dashboard_starts[id(node)] = (started, errors)
    threading.Thread(target=start, name="dashboard", daemon=True).start()


def _start_ray_processes_then_wait(node: Node) -> None:
    _start_ray_processes(node)
    started, errors = _dashboard_starts.pop(id(node), (None, []))
    if started is not None:
        started.wait()
    if errors:
        raise errors[0]
