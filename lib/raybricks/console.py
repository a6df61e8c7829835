"""What a person sees of a run, set up by the entrypoints (the library only logs).

The console shows raybricks' own lines: the settings, Spark up, the Ray cluster ready,
each stage as it starts and ends (and, every 30 s, how far a long one is), and the
summary. On a terminal, a live line says which stages are running and how far each
is; in a pipe or a Databricks job's output, plain lines.
Everything else a run's processes print (Ray's banners and warnings, Spark's JVMs,
the stages' deliberate crashes) goes to `driver.log`; `--verbose` shows it all here
too. Ray's advice that matters to the user is said once, in our words.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from rich.console import Console
from rich.logging import RichHandler
from rich.status import Status

from raybricks.stages import progress

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(message)s"
PLAIN_WIDTH = 1000  # rich wraps at the width; a pipe or a job's output should not wrap

# Ray's warnings worth a user's attention: (logger, words in it) -> what we say.
RAY_ADVICE = {
    ("ray.util.spark", "memory"): (
        "Ray finds the memory per worker node below what it recommends "
        "(its advice is in driver.log)"
    ),
    ("ray.util.spark", "CPU"): (
        "Ray finds the CPUs per worker node below what it recommends (its advice is in driver.log)"
    ),
}


class _WithoutTraceback(logging.Formatter):
    """One line: the console shows no tracebacks (driver.log has them)."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        return self.formatMessage(record)


class _RunningStages(logging.Handler):
    """Keeps a terminal's live line on the stages running and how far each is, from the
    runner's records and the stages' progress records."""

    def __init__(self, status: Status) -> None:
        super().__init__(logging.DEBUG)
        self.status = status
        self.running: dict[str, str] = {}  # stage -> how far it is ("" until it says)

    def emit(self, record: logging.LogRecord) -> None:
        stage, event = getattr(record, "stage", None), getattr(record, "event", None)
        if stage is None:
            return
        if event == "started":
            self.running[stage] = ""
        elif event == progress.EVENT and stage in self.running:
            done, total = record.__dict__["done"], record.__dict__["total"]
            share = f"{100 * done // total}%, " if total else ""
            self.running[stage] = f" {share}{done:,}/{total:,} {record.__dict__['unit']}"
        else:
            self.running.pop(stage, None)
        if self.running:
            self.status.update(
                "running: " + ", ".join(f"{s}{far}" for s, far in self.running.items())
            )
            self.status.start()
        else:
            self.status.stop()


class _SaidOnce(logging.Filter):
    """Ray's known advice, once each, in our words; its other records not at all."""

    def __init__(self) -> None:
        super().__init__()
        self.said: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        for (prefix, words), ours in RAY_ADVICE.items():
            if record.name.startswith(prefix) and words in record.getMessage():
                if ours in self.said:
                    return False
                self.said.add(ours)
                record.msg, record.args, record.exc_info = ours, (), None
                return True
        return False


class _ToConsole(logging.StreamHandler):
    """Plain lines to whatever file the console writes to now."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    @property
    def stream(self) -> Any:
        return self.console.file

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class RunConsole:
    """The console of one command: `out` for results, `err` for log lines. Both write
    to this process's stdout and stderr as they are now, or, while a run's output goes
    to its driver.log, to copies of the ones the run began with."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        self.out = _console(stderr=False)
        self.err = _console(stderr=True)

    def install(self) -> None:
        """Log raybricks' own lines (and Ray's advice) to the console."""
        root = logging.getLogger()
        root.setLevel(logging.INFO)
        ours = self._handler()
        ours.addFilter(lambda r: self.verbose or r.name.split(".")[0] == "raybricks")
        root.addHandler(ours)
        if not self.verbose:
            advice = self._handler()
            advice.setLevel(logging.WARNING)
            advice.addFilter(_SaidOnce())
            logging.getLogger("ray").addHandler(advice)
        for noisy in ("py4j", "pyspark"):
            logging.getLogger(noisy).setLevel(logging.WARNING)

    def _handler(self) -> logging.Handler:
        handler: logging.Handler
        if self.err.is_terminal:
            handler = RichHandler(console=self.err, show_path=False, markup=False)
            handler.setFormatter(_WithoutTraceback("%(message)s"))
            # The live line says how far a stage is: no progress lines besides it.
            handler.addFilter(lambda r: getattr(r, "event", None) != progress.EVENT)
        else:
            handler = _ToConsole(self.err)
            handler.setFormatter(_WithoutTraceback(PLAIN_FORMAT, "%H:%M:%S"))
        handler.setLevel(logging.INFO)
        return handler

    @contextmanager
    def run_output_to(self, log_fd: int) -> Iterator[None]:
        """Within this block, whatever this process and its children write to stdout
        and stderr goes to the file `log_fd` (unless verbose). On a terminal, a live line
        shows the running stages."""
        with self._redirected(log_fd), self._live_stages():
            yield

    def command_output(self) -> tuple[IO[str] | None, IO[str] | None]:
        """Where a command run within `run_output_to` writes its stdout and stderr: to
        the console as the run began, untouched (None: this process's own)."""
        if self.verbose:
            return None, None
        return self.out.file, self.err.file

    @contextmanager
    def _live_stages(self) -> Iterator[None]:
        if not self.err.is_terminal:
            yield
            return
        status = Status("", console=self.err)
        handler = _RunningStages(status)
        logging.getLogger("raybricks").addHandler(handler)
        try:
            yield
        finally:
            logging.getLogger("raybricks").removeHandler(handler)
            status.stop()

    @contextmanager
    def _redirected(self, log_fd: int) -> Iterator[None]:
        if self.verbose:
            yield
            return
        sys.stdout.flush()
        sys.stderr.flush()
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        self.out.file = os.fdopen(os.dup(saved[1]), "w", buffering=1)
        self.err.file = os.fdopen(os.dup(saved[2]), "w", buffering=1)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            for console in (self.out, self.err):
                console.file.close()
                console.file = None  # type: ignore[assignment]  # back to sys.stdout/err


def _console(stderr: bool) -> Console:
    terminal = (sys.stderr if stderr else sys.stdout).isatty()
    return Console(stderr=stderr, width=None if terminal else PLAIN_WIDTH, soft_wrap=not terminal)
