"""What every Ray node of a run takes from this driver's environment, through the start
hook Ray on Spark asks for the nodes' environment: the auth mode and token (`auth`), and
how often each node exports its metrics (`metrics_exported_every`). The head, a child of
this driver, inherits them too."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from ray.util.spark.start_hook_base import RayOnSparkStartHook

from raybricks import environment
from raybricks.cluster.auth import auth_environment

METRICS_INTERVAL_VAR = "RAY_metrics_report_interval_ms"  # Ray's system config, as a variable


def node_environment() -> dict[str, str]:
    shared = auth_environment()
    if METRICS_INTERVAL_VAR in os.environ:
        shared[METRICS_INTERVAL_VAR] = os.environ[METRICS_INTERVAL_VAR]
    return shared


class NodeEnvironmentStartHook(RayOnSparkStartHook):
    """Hands every Ray node it starts what the node shares with this driver."""

    def __init__(self, is_global: bool = False) -> None:  # Ray passes no arguments
        super().__init__(is_global)

    def custom_environment_variables(self) -> dict[str, str]:
        return {**super().custom_environment_variables(), **node_environment()}


@contextmanager
def metrics_exported_every(seconds: float) -> Iterator[None]:
    """Within this block, nodes started from here export their metrics every `seconds`
    (Ray's default: every 10 s), so that each sample sees fresh figures; 0 keeps Ray's,
    as does a pace the user set."""
    with environment.defaults(
        {METRICS_INTERVAL_VAR: str(int(seconds * 1000))} if seconds > 0 else {}
    ):
        yield
