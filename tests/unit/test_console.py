"""What the console and driver.log leave out."""

from __future__ import annotations

import logging

from raybricks.console import not_a_py4j_retry


def record(level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord("root", level, "java_gateway.py", 1056, msg, (), None)


def test_py4j_retrying_a_command_is_left_out_and_its_failures_kept():
    assert not not_a_py4j_retry(record(logging.INFO, "Exception while sending command."))
    assert not_a_py4j_retry(record(logging.ERROR, "Exception while sending command."))
    assert not_a_py4j_retry(record(logging.INFO, "Spark up: local-cluster[2,1,1024]"))
