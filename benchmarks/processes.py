"""Finding the processes a run left behind, by a mark in their environment that every
child inherits (Spark's JVMs, executors, Ray's nodes and workers), and Ray's processes
that outlived their node, which the mark cannot find."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import psutil

from raybricks.cluster.node_launcher import LAUNCHERS

MARK = "RAYBRICKS_TEST_RUN"
# Ray titles its agents, workers and dashboard modules so; the title takes the place of
# their environment (/proc/<pid>/environ), and of the mark with it.
RAY_TITLES = ("ray::", "ray-dashboard-")
T = TypeVar("T")


def marked_env(**extra: str) -> tuple[dict[str, str], str]:
    mark = uuid.uuid4().hex
    return {**os.environ, MARK: mark, "SPARK_LOCAL_IP": "127.0.0.1", **extra}, mark


def marked_processes(mark: str) -> list[str]:
    found = []
    for proc in running_marked(mark):
        try:
            found.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def running_marked(mark: str, name: str | None = None) -> list[psutil.Process]:
    """The running processes with `mark` in their environment (and that name, if given)."""
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if name not in (None, proc.info["name"]) or proc.environ().get(MARK) != mark:
                continue
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_for(check: Callable[[], T], timeout: float, interval: float = 0.5) -> T:
    """The first truthy result of `check` within `timeout` seconds, else the last one."""
    deadline = time.monotonic() + timeout
    result = check()
    while not result and time.monotonic() < deadline:
        time.sleep(interval)
        result = check()
    return result


def left_after(mark: str, timeout: float = 60, orphan_timeout: float = 10) -> list[str]:
    """Wait up to `timeout` for the marked processes to end, and up to `orphan_timeout`
    for Ray's orphaned ones (a node's processes may take a moment after its raylet);
    those still running."""
    wait_for(lambda: not marked_processes(mark), timeout)
    wait_for(lambda: not orphaned_ray_processes(), orphan_timeout)
    return marked_processes(mark) + orphaned_ray_processes()


def orphaned_ray_processes() -> list[str]:
    """Titled Ray processes whose parent is gone: a raylet starts each agent and worker,
    the dashboard each of its modules, so one whose parent is neither outlived its node
    (whichever run it was of: the mark is hidden by the title)."""
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if (
                not proc.info["name"].startswith(RAY_TITLES)
                or proc.status() == psutil.STATUS_ZOMBIE
            ):
                continue  # a zombie has ended: it waits for init, which may take its time
            parent = proc.parent()
            if parent is None or not parent.name().startswith(("raylet", "python")):
                found.append(f"{proc.pid} {proc.info['name']} (orphaned)")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def kill_node(node_id: str) -> int:
    """Kill a Ray node on this machine from outside, as a lost machine would end it:
    every process of the node (in Ray on Spark, the tree under the Spark task's
    launcher), at once, then remove the temp folder it can no longer remove
    itself. Returns how many processes were killed."""
    raylet = next(
        proc
        for proc in psutil.process_iter(["name", "cmdline"])
        if proc.info["name"] == "raylet" and f"--node_id={node_id}" in (proc.info["cmdline"] or [])
    )
    root = next(
        (p for p in raylet.parents() if any(name in p.cmdline() for name in LAUNCHERS)), raylet
    )
    tree = [root, *root.children(recursive=True)]
    temp_dirs = [arg.split("=", 1)[1] for arg in root.cmdline() if arg.startswith("--temp-dir=")]
    for proc in tree:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    for folder in temp_dirs:  # SIGKILL leaves nothing running that writes there
        shutil.rmtree(folder, ignore_errors=True)
    return len(tree)


def of_ray_cluster(port: str) -> list[str]:
    """Processes still serving the Ray cluster whose head listens on `port`, wherever
    they were started (on a standalone cluster, worker nodes run under Spark's workers,
    outside a run's marked processes)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        command = " ".join(proc.info["cmdline"] or [])
        if f":{port} " in f"{command} " or f"--port={port} " in f"{command} ":
            found.append(f"{proc.pid} {command[:120]}")
    return found


def live_driver_log(pid: int) -> str:
    """The driver log of the run in process `pid`, as it grows: a file with no name in
    the temp root, its stdout and stderr once the run began ('' before, or once it has
    ended). The run folder's copy is renewed only as stages end."""
    folder = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(folder)
    except OSError:
        return ""
    for fd in fds:
        try:
            target = os.readlink(f"{folder}/{fd}")
            if os.path.basename(target).startswith("raybricks-") and "(deleted)" in target:
                with open(f"{folder}/{fd}", errors="replace") as log:
                    return log.read()
        except OSError:
            continue  # closed meanwhile
    return ""
