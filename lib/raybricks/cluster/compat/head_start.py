"""Inside the head node's own `ray start`, run there by Ray as its `RAY_START_HOOK`
(`head_start_hook` sets it for the start): whichever start runs, the head's temp files
go to its temp folder and it starts no Ray Client server (`lean_head`); with fast start
its raylet also starts without waiting for the dashboard (`start_head`), nor for its
agents (`agent_ports`).

A run's drivers (this one, a stage's other drivers, `exec`'s command) connect to the
head's GCS; nothing connects through Ray Client (`ray://`), whose server is a process of
its own that costs the head's start a CPU-second.

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

Kept to the Ray version it was read for: this module imports only Ray (its private
node class only on that version), since it runs on the start's critical path.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import ray

from raybricks.cluster.compat import READ_FOR_RAY
from raybricks.cluster.compat.agent_ports import agents_known_in_advance

logger = logging.getLogger(__name__)

START_HOOK_VAR = "RAY_START_HOOK"  # read by `ray start`, which the head inherits it from
_dashboard_starts: dict[int, tuple[threading.Event, list[BaseException]]] = {}


@contextmanager
def head_start_hook(fast: bool) -> Iterator[None]:
    """Within this block, a head started from this process runs `start_head` (`fast`) or
    `lean_head`. A start hook of the user's own is kept (then the head keeps
    Ray's own behaviour)."""
    if START_HOOK_VAR in os.environ:
        logger.info(
            "%s is set (%s): the head starts as in Ray", START_HOOK_VAR, os.environ[START_HOOK_VAR]
        )
        yield
        return
    hook = start_head if fast else lean_head
    os.environ[START_HOOK_VAR] = f"{__name__}.{hook.__name__}"
    try:
        yield
    finally:
        os.environ.pop(START_HOOK_VAR, None)


def lean_head(ray_params: Any, head: bool) -> None:
    """`RAY_START_HOOK(ray_params, head)`: the head's processes make their temp files in
    its temp folder (which goes with the node), and it serves no Ray Client."""
    if not head:
        return
    ray_params.ray_client_server_port = None  # `ray start` starts the server only with one
    if ray_params.temp_dir:  # None: Ray's global mode, in Ray's own temp root
        os.environ["TMPDIR"] = ray_params.temp_dir  # inherited by the node's processes


def start_head(ray_params: Any, head: bool) -> None:
    """`RAY_START_HOOK(ray_params, head)`: as `lean_head`, and on the Ray read for,
    the head's dashboard started in the background. This process starts one node, so
    Ray's class is patched in place."""
    lean_head(ray_params, head)
    if not head or ray.__version__ != READ_FOR_RAY:
        return
    agents_known_in_advance(ray_params, head=True)
    from ray._private.node import Node

    start_api_server, start_ray_processes = Node.start_api_server, Node.start_ray_processes

    def api_server_in_background(node: Any, **arguments: Any) -> None:
        start_api_server_in_background(start_api_server, node, **arguments)

    def ray_processes_then_wait(node: Any) -> None:
        start_ray_processes_then_wait(start_ray_processes, node)

    Node.start_api_server = api_server_in_background  # type: ignore[method-assign, assignment]
    Node.start_ray_processes = ray_processes_then_wait  # type: ignore[method-assign]


def start_api_server_in_background(
    start_api_server: Callable[..., None], node: Any, **arguments: Any
) -> None:
    """Ray's `Node.start_api_server` in a thread that lives as long as the node."""
    started = threading.Event()
    errors: list[BaseException] = []

    def start() -> None:
        try:
            start_api_server(node, **arguments)
        except BaseException as exc:  # raised in `ray start` once the raylet is up
            errors.append(exc)
        finally:
            started.set()
        threading.Event().wait()  # the dashboard lives as long as this thread

    _dashboard_starts[id(node)] = (started, errors)
    threading.Thread(target=start, name="dashboard", daemon=True).start()


def start_ray_processes_then_wait(start_ray_processes: Callable[[Any], None], node: Any) -> None:
    """Ray's `Node.start_ray_processes`, then the wait for the dashboard's start."""
    start_ray_processes(node)
    started, errors = _dashboard_starts.pop(id(node), (None, []))
    if started is not None:
        started.wait()
    if errors:
        raise errors[0]
