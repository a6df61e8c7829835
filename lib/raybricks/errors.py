"""Exit codes of a run, and the errors that map onto them."""

from __future__ import annotations

import enum
import signal


class ExitCode(enum.IntEnum):
    PASSED = 0
    STAGE_FAILED = 1
    BAD_INPUT = 2
    CLUSTER_FAILED = 3
    INTERRUPTED = 128 + signal.SIGINT  # 130
    TERMINATED = 128 + signal.SIGTERM  # 143


class BadInput(Exception):
    """Settings, flags or paths are wrong. The message is one line naming the setting,
    the value and the fix; nothing has been started when this is raised."""


class ClusterError(Exception):
    """The cluster failed the run: exit code 3."""


class ClusterStartError(ClusterError):
    """Spark or the Ray-on-Spark cluster could not start."""


class ClusterLost(ClusterError):
    """The Ray cluster's head exited while the run used it."""

    def __init__(self) -> None:
        super().__init__("the Ray cluster's head exited")


class Cancelled(BaseException):
    """The run got SIGTERM or SIGINT. A BaseException, like KeyboardInterrupt, so that
    `except Exception` in a stage cannot swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode(128 + self.signum)


def root_cause(exc: BaseException) -> str:
    """The first line of what started `exc` (its last `__cause__`), with its type."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"
