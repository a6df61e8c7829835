"""Whether something listens on a TCP port: a connection it accepts within a timeout."""

from __future__ import annotations

import socket

TIMEOUT_SECONDS = 1.0


def listening(host: str, port: int, timeout: float = TIMEOUT_SECONDS) -> bool:
    with socket.socket() as probe:
        probe.settimeout(timeout)
        return probe.connect_ex((host, port)) == 0
