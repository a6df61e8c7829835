"""Whether the Ray cluster's head still runs, and waits that give up once it has gone.

A call into a cluster without its head hangs until Ray ends the process a minute later
(no cleanup, no report), so every wait on the cluster looks once a second.

    head = Head("10.0.0.1", 9123)
    head.wait_for(child.wait)   # raises ClusterLost if the head goes first
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from raybricks.cluster import compat
from raybricks.cluster.sockets import listening
from raybricks.errors import ClusterLost

CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Head:
    host: str
    port: int

    @classmethod
    def at(cls, address: str) -> Head:
        host, port = address.rsplit(":", 1)
        return cls(host, int(port))

    def alive(self) -> bool:
        """On the Ray read for it, whether the head's process (a child of this driver)
        still runs; elsewhere whether its GCS port still takes connections."""
        if compat.known_ray():
            from raybricks.cluster.compat.head_process import head_process_running

            return head_process_running(self.port)
        return listening(self.host, self.port, CHECK_SECONDS)

    def check(self) -> None:
        if not self.alive():
            raise ClusterLost

    def wait_for(self, call: Callable[[], object]) -> None:
        """Run `call` (a call into the cluster, or a wait for a driver of it) in a
        thread; raise `ClusterLost` if the head goes first."""
        calling = threading.Thread(target=call, name="raybricks-head-watched", daemon=True)
        calling.start()
        while calling.is_alive():
            calling.join(CHECK_SECONDS)
            if calling.is_alive():
                self.check()
