"""Finding the Ray head's process among this driver's children, by the command line Ray
on Spark 2.60 starts it with: `python -m ray.util.spark.start_ray_node --head --port=N`
(with fast start, `raybricks.cluster.node_launcher` in place of Ray's launcher)."""

from __future__ import annotations

import psutil

from raybricks.cluster import node_launcher
from raybricks.cluster.processes import end


def head_process_running(port: int) -> bool:
    """Whether a child of this process still runs the Ray head for `port`. Its
    `ray start` ends when any of the head's processes does."""
    return _head_command(port) is not None


def head_temp_dir(port: int) -> str | None:
    """The temp folder of the Ray head for `port` (a child of this process, running),
    as its command line names it: `<temp root>/ray-<port>-<id>`."""
    command = _head_command(port)
    found = node_launcher.temp_dir_of(command) if command else None
    return str(found) if found else None


def _head_command(port: int) -> list[str] | None:
    for child in psutil.Process().children():
        try:
            command = child.cmdline()
            if child.status() != psutil.STATUS_ZOMBIE and f"--port={port}" in command:
                return command
        except psutil.Error:
            continue  # it ended meanwhile
    return None


def end_head_processes(grace: float = 10.0) -> int:
    """End the Ray heads this process started (TERM, then KILL after `grace` seconds);
    how many there were."""
    heads = []
    for child in psutil.Process().children():
        try:
            command = child.cmdline()
        except psutil.Error:
            continue
        if "--head" in command and any(launcher in command for launcher in node_launcher.LAUNCHERS):
            heads.append(child)
    end(heads, grace)
    return len(heads)
