"""A Databricks job run's report, fetched through databricks-sdk.

The job passes `--log-path` and `--job-run-id {{job.run_id}}` (to its wheel task, or a
`spark_python_task` of one's own), so its run folder is
`<log_path>/<time>-job<run id>/`. From a run id (or a job's latest run) this finds the
run, reads those parameters back, lists `log_path` for the folder and downloads its
`report.json`: with the Files API under `/Volumes/...`, the DBFS API under `/dbfs/...`.
Authentication is the SDK's own (env variables, a profile in ~/.databrickscfg, ...).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import DatabricksError, NotFound, PermissionDenied, Unauthenticated

from raybricks.paths import job_run_suffix
from raybricks.report.model import REPORT_FILE, Report

logger = logging.getLogger(__name__)

DBFS_READ_BYTES = 1024 * 1024  # the DBFS read API's maximum per call
ENDED_STATES = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}  # a job run's life-cycle states


class WorkspaceError(Exception):
    """The workspace could not give the report; the message says why, in one line."""


@dataclass(frozen=True)
class JobRun:
    run_id: int
    url: str
    parameters: list[str]
    ended: bool = False  # the job run has terminated (its report may still say running)

    @property
    def log_path(self) -> str:
        value = _flag_value(self.parameters, "--log-path")
        if value is None:
            raise WorkspaceError(
                f"run {self.run_id} was not given --log-path; its report cannot be found"
            )
        return value.rstrip("/")


def client(profile: str | None = None) -> WorkspaceClient:
    try:
        return WorkspaceClient(profile=profile)
    except ValueError as exc:  # the SDK's "cannot configure default credentials"
        raise WorkspaceError(f"no Databricks credentials: {first_line(exc)}") from None


@contextmanager
def asking(w: WorkspaceClient, what: str) -> Iterator[None]:
    """The SDK's errors within the block as one-line `WorkspaceError`s; `what` names
    the thing asked for, for when it does not exist."""
    try:
        yield
    except (Unauthenticated, PermissionDenied) as exc:
        raise WorkspaceError(
            f"{w.config.host} refused the credentials: {first_line(exc)}"
        ) from None
    except NotFound:
        raise WorkspaceError(f"{what} does not exist in {w.config.host}") from None
    except DatabricksError as exc:
        raise WorkspaceError(f"{w.config.host}: {first_line(exc)}") from None


def find_run(w: WorkspaceClient, run_id: int | None = None, job_name: str | None = None) -> JobRun:
    """The run `run_id`, or the latest run of the job named `job_name`."""
    if run_id is None:
        with asking(w, f"job {job_name!r}"):
            run_id = _latest_run_id(w, job_name or "")
    with asking(w, f"run {run_id}"):
        run = w.jobs.get_run(run_id, include_resolved_values=True)
    given = [task.python_wheel_task or task.spark_python_task for task in run.tasks or []]
    parameters = next((list(t.parameters or []) for t in given if t is not None), [])
    state = run.state.life_cycle_state if run.state else None
    ended = getattr(state, "value", state) in ENDED_STATES
    return JobRun(run_id, run.run_page_url or "", parameters, ended)


def fetch_report(w: WorkspaceClient, run: JobRun) -> Report:
    log_path = run.log_path
    try:
        if log_path.startswith("/Volumes/"):
            data = _from_volume(w, log_path, run.run_id)
        elif log_path.startswith("/dbfs/"):
            data = _from_dbfs(w, log_path.removeprefix("/dbfs"), run.run_id)
        else:
            raise WorkspaceError(
                f"run {run.run_id} logs to {log_path}, a path only its cluster can read"
            )
    except NotFound:
        data = None
    except (Unauthenticated, PermissionDenied) as exc:
        raise WorkspaceError(
            f"{w.config.host} refused the credentials: {first_line(exc)}"
        ) from None
    if data is None:
        raise WorkspaceError(
            f"run {run.run_id} left no {REPORT_FILE} under {log_path} (did it start?)"
        )
    return Report.from_dict(json.loads(data))


def _latest_run_id(w: WorkspaceClient, job_name: str) -> int:
    jobs = list(w.jobs.list(name=job_name))
    if not jobs:
        raise WorkspaceError(f"no job named {job_name!r} in {w.config.host}")
    runs = list(w.jobs.list_runs(job_id=jobs[0].job_id, limit=1))
    if not runs or runs[0].run_id is None:
        raise WorkspaceError(f"job {job_name!r} has no runs yet")
    return runs[0].run_id


def _from_volume(w: WorkspaceClient, log_path: str, run_id: int) -> bytes | None:
    for entry in w.files.list_directory_contents(log_path):
        if entry.is_directory and (entry.name or "").endswith(job_run_suffix(run_id)):
            response = w.files.download(f"{log_path}/{entry.name}/{REPORT_FILE}")
            return response.contents.read() if response.contents else None
    return None


def _from_dbfs(w: WorkspaceClient, dbfs_path: str, run_id: int) -> bytes | None:
    for info in w.dbfs.list(dbfs_path):
        if info.is_dir and (info.path or "").endswith(job_run_suffix(run_id)):
            return _read_dbfs(w, f"{info.path}/{REPORT_FILE}")
    return None


def _read_dbfs(w: WorkspaceClient, path: str) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while True:
        part = w.dbfs.read(path, offset=offset, length=DBFS_READ_BYTES)
        if not part.bytes_read:
            return b"".join(chunks)
        chunks.append(base64.b64decode(part.data or ""))
        offset += part.bytes_read


def _flag_value(parameters: list[str], flag: str) -> str | None:
    for i, item in enumerate(parameters):
        if item == flag and i + 1 < len(parameters):
            return parameters[i + 1]
        if item.startswith(f"{flag}="):
            return item.split("=", 1)[1]
    return None


def first_line(exc: Any) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
