"""Where a run writes, and how: DBFS URIs as FUSE paths, the run folder
`<log_path>/<run_id>/`, and files written whole.

Ray on Spark copies node logs with plain file I/O, so `dbfs:/x` must become `/dbfs/x`;
`/Volumes/...` and local paths are already FUSE or local paths. A Databricks FUSE mount
takes no appends and no writes in place: every file raybricks puts on the log path is
written whole, to a new name, and renamed into place (`write_whole`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

_URI_SCHEMES = (
    "s3://",
    "s3a://",
    "abfss://",
    "gs://",
    "wasbs://",
    "file://",
    "http://",
    "https://",
)


def to_local_path(path: str) -> Path:
    """`dbfs:/x` -> `/dbfs/x`; a local, `/dbfs/...` or `/Volumes/...` path as it is.

    >>> to_local_path("dbfs:/ray/logs")
    PosixPath('/dbfs/ray/logs')
    """
    if path.startswith("dbfs:"):
        return Path("/dbfs") / path.removeprefix("dbfs:").lstrip("/")
    if path.startswith(_URI_SCHEMES):
        raise ValueError(
            "object-store URIs cannot take Ray's logs; use a FUSE path such as "
            "/Volumes/<catalog>/<schema>/<volume>/..., /dbfs/... or a local folder"
        )
    if not path.strip():
        raise ValueError("the path is empty; give a folder such as ./runs")
    return Path(path).expanduser().absolute()


def spark_uri(folder: Path, on_databricks: bool) -> str:
    """How Spark names `folder`, a path every node sees: on Databricks a volume as it is
    and `/dbfs/x` as `dbfs:/x`; elsewhere a local (or mounted) `file:` path.

    >>> spark_uri(Path("/dbfs/handoff"), on_databricks=True)
    'dbfs:/handoff'
    """
    if not on_databricks:
        return f"file://{folder}"  # as Hadoop reads it: no percent-escapes
    if folder.parts[1:2] == ("dbfs",):
        return "dbfs:/" + "/".join(folder.parts[2:])
    return str(folder)


def unwritable_reason(folder: Path) -> str | None:
    """Why `folder` cannot be (made into) a writable folder, or None if it can.

    Only looks: nothing is created, so a rejected run leaves no trace."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return "no part of it exists"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def new_run_id(now: datetime | None = None, job_run_id: int | None = None) -> str:
    """A run id that sorts by start time (UTC) and is unique: `20261126T115126Z-3f9a1c`;
    for a Databricks job run, `20261126T115126Z-job<run id>`, so it can be found again."""
    now = now or datetime.now(timezone.utc)
    suffix = job_run_suffix(job_run_id) if job_run_id else f"-{secrets.token_hex(3)}"
    return f"{now:%Y%m%dT%H%M%SZ}{suffix}"


def job_run_suffix(job_run_id: int) -> str:
    return f"-job{job_run_id}"


def create_run_dir(log_root: Path, run_id: str) -> Path:
    """Create `<log_root>/<run_id>/`; call only once the settings are valid."""
    run_dir = log_root / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


def write_whole(target: Path, chunks: Iterable[bytes]) -> Path:
    """Write `target` whole: a new file beside it, written from its start, then renamed
    over it (a reader never sees half of it; a FUSE volume sees no append)."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
