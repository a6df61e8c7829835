"""A run's folder, `<log_path>/<run_id>/`, as the run writes it.

On Databricks the log path is a FUSE volume that takes files written whole, never an
append. So what grows during a run, `driver.log`, grows on local disk, in the temp root,
and is copied whole into the run folder as each stage ends and as the run ends. The
growing file has no name: it is gone with the run's last process, however that ends
(a killed driver leaves the copy of its last stage's end).

    with RunFolder.created(settings.log_root, run_id, platform.temp_root) as folder:
        os.dup2(folder.driver_log.fd, 2)   # what the run prints goes to it
        ...
        folder.save_driver_log()           # as a stage ends; and once more on exit
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from raybricks.paths import create_run_dir, write_whole
from raybricks.report.model import DRIVER_LOG

CHUNK = 1 << 20


class GrowingFile:
    """A file on local disk that this process and its children append to, with no name
    (so nothing of it outlives them), read back whole at any time."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.fd, name = tempfile.mkstemp(prefix="raybricks-", suffix=".log", dir=folder)
        os.unlink(name)
        flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
        fcntl.fcntl(self.fd, fcntl.F_SETFL, flags | os.O_APPEND)  # children write at its end

    def chunks(self) -> Iterator[bytes]:
        """What it holds now, read without moving the offset its writers share."""
        size, offset = os.fstat(self.fd).st_size, 0
        while offset < size:
            chunk = os.pread(self.fd, min(CHUNK, size - offset), offset)
            if not chunk:
                return
            offset += len(chunk)
            yield chunk

    def close(self) -> None:
        os.close(self.fd)


@dataclass(frozen=True)
class RunFolder:
    path: Path
    driver_log: GrowingFile

    @classmethod
    @contextmanager
    def created(cls, log_root: Path, run_id: str, temp_root: Path) -> Iterator[RunFolder]:
        """The run folder, made now (call only once the settings are valid), its driver
        log growing under `temp_root`; on exit the log is saved a last time."""
        folder = cls(create_run_dir(log_root, run_id), GrowingFile(temp_root))
        try:
            yield folder
        finally:
            try:
                folder.save_driver_log()
            finally:
                folder.driver_log.close()

    def save_driver_log(self) -> None:
        """Copy the driver log, as it is now, whole into the run folder."""
        write_whole(self.path / DRIVER_LOG, self.driver_log.chunks())
