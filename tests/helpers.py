"""What several test modules share: the repository's root, free ports, a head whose
liveness a test decides."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from raybricks.cluster.head import Head

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_ports(count: int) -> range:
    """`count` consecutive ports free on this machine now, below the ephemeral range
    (where the kernel hands out no ports unasked, so the cluster tests running beside
    these take them only by chance): few, so that random picks among them would collide."""
    for first in range(30000, 32768 - count, count):
        candidates = range(first, first + count)
        if all(_unused(port) for port in candidates):
            return candidates
    raise AssertionError(f"no {count} consecutive free ports in 30000-32767")


def _unused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@dataclass(frozen=True)
class ScriptedHead(Head):
    """A head that is alive while `looks()` says so."""

    host: str = "127.0.0.1"
    port: int = 0
    looks: Callable[[], bool] = field(default=lambda: True)

    def alive(self) -> bool:
        return self.looks()
