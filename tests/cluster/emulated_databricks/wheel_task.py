"""A Databricks `python_wheel_task`, emulated. Run by spark-submit, this process is the
platform's: it makes its SparkSession first, in a thread of its own (so the session
exists before the task's code and is not the calling thread's active one), watches
every file opened under the volume with an audit hook, then calls the wheel's entry
point in-process with each case's task parameters (`sys.argv`, as the platform passes
them). After each case it asks its session for a Spark job. Prints one JSON line per
case: how the entry point ended, whether Spark still answered, and every open under the
volume that appended to a file or updated one that existed.

    spark-submit ... wheel_task.py VOLUME CASES_JSON
    CASES_JSON: {"case": {"parameters": [...], "cancel_at": ["log line", ...]}}
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from importlib.metadata import entry_points

from pyspark.sql import SparkSession

WRITES = os.O_WRONLY | os.O_RDWR
RAYBRICKS = logging.getLogger("raybricks")  # its loggers' records pass here


def watch_the_volume(volume: str, seen: list[str]) -> None:
    """Record each open under `volume` that appends, or writes a file that exists."""

    def hook(event: str, args: tuple) -> None:
        if event != "open" or isinstance(args[0], int):
            return
        path, mode, flags = os.path.abspath(os.fsdecode(args[0])), args[1], args[2]
        if not path.startswith(volume):
            return
        if flags & os.O_APPEND or (flags & WRITES and os.path.exists(path)):
            seen.append(f"{path} mode={mode} flags={flags:#o}")

    sys.addaudithook(hook)


def platform_session() -> SparkSession:
    """The platform's session, made by a thread of its own before the task runs."""
    made: list[SparkSession] = []
    maker = threading.Thread(target=lambda: made.append(SparkSession.builder.getOrCreate()))
    maker.start()
    maker.join()
    assert SparkSession.getActiveSession() is None, "the task's thread has no active session"
    return made[0]


class CancelWhenLogged(logging.Handler):
    """SIGTERM this process as each of `lines` is logged by raybricks (the first a second
    later), as the platform cancels a task: sent from the thread that logs it, so that
    it lands in the phase the line begins, however short (a teardown takes 0.3 s)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = list(lines)
        self.first = True

    def emit(self, record: logging.LogRecord) -> None:
        if self.lines and self.lines[0] in record.getMessage():
            self.lines.pop(0)
            delay, self.first = (1.0 if self.first else 0.0), False
            threading.Timer(delay, os.kill, (os.getpid(), signal.SIGTERM)).start()


def call_the_entry_point(parameters: list[str]) -> dict:
    """The wheel's entry point `raybricks`, called as the platform calls it."""
    (point,) = entry_points(group="console_scripts", name="raybricks")
    sys.argv = [point.name, *parameters]
    try:
        returned = point.load()()
        return {"returned": returned, "exit_code": None}
    except SystemExit as exc:
        return {"returned": None, "exit_code": exc.code}


def main() -> None:
    volume, cases = sys.argv[1], json.loads(sys.argv[2])
    opened: list[str] = []
    session = platform_session()
    watch_the_volume(volume, opened)
    for case, given in cases.items():
        canceller = CancelWhenLogged(given.get("cancel_at", []))
        RAYBRICKS.addHandler(canceller)
        try:
            ended = call_the_entry_point(given["parameters"])
        finally:
            RAYBRICKS.removeHandler(canceller)
        answered = session.range(5).count() == 5  # the platform's Spark still works
        line = {"case": case, **ended, "spark_answers": answered, "opened": opened}
        print(json.dumps(line))  # noqa: T201
        sys.stdout.flush()
        opened.clear()


if __name__ == "__main__":
    main()
