"""The Parquet route's Spark side: the handoff's files written and read in the proleptic
Gregorian calendar, which Arrow (and so Ray) uses.

Spark 3.5 by default refuses to write dates before 1582 and timestamps before 1900 to
Parquet (`EXCEPTION`; `LEGACY` would shift them to the old hybrid calendar), and reads
files that Spark did not write by the same setting; Spark 4's default, `CORRECTED`,
is what a handoff needs on every Spark. Reads take it as an option of their own; writes
only from the session's conf, set for the write and then put back (one write at a time,
so that stages side by side do not put back each other's).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

CORRECTED = "CORRECTED"
READ_OPTIONS = {"datetimeRebaseMode": CORRECTED, "int96RebaseMode": CORRECTED}
WRITE_CONF = (
    "spark.sql.parquet.datetimeRebaseModeInWrite",
    "spark.sql.parquet.int96RebaseModeInWrite",
)
_writing = threading.Lock()


@contextmanager
def proleptic_writes(session: SparkSession) -> Iterator[None]:
    """Within this block, Parquet that `session` writes keeps every date and timestamp
    as it is."""
    with _writing:
        saved = {key: session.conf.get(key) for key in WRITE_CONF}
        for key in WRITE_CONF:
            session.conf.set(key, CORRECTED)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    session.conf.unset(key)
                else:
                    session.conf.set(key, value)
