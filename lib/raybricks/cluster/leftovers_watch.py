"""What a run's clusters leave on this machine, removed also when the driver is killed
outright (out of memory, SIGKILL, a lost driver), whichever start ran.

A watcher, a process of its own session (out of reach of a kill of the driver's process
group), is told each cluster's temp folder as the start learns it, over a pipe. When the
pipe closes without the driver's "cleaned up" (the driver ended without its teardown),
it removes what the cluster's nodes left (`remove_leftovers`: once they let go of their
locks, ending what still runs in the folders).

A fast-started node's own janitor (`raybricks.cluster.node_launcher`) cleans its folder
on any machine; this one covers the driver's machine with Ray's own start too, whose
`start_ray_node` never removes its lock file. A folder is known once the cluster's head
is up: a kill while Ray's own start launches the head may leave its lock file.

`python_temp_files_in` gives this process's own temp files a watched folder of their own
while a step that makes some runs: PySpark's start writes its gateway's address and
secret to a file in a temp folder it removes only if it lives on.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from raybricks.cluster.leftovers import remove_leftovers

logger = logging.getLogger(__name__)

CLEANED_UP = "."  # the driver's last line when its teardown removed the leftovers
WAIT_SECONDS = 10.0  # for the watcher to exit after a teardown


class LeftoversWatch:
    """The watcher of one run's cluster folders in `temp_root`, started with the first."""

    def __init__(self, temp_root: Path) -> None:
        self.temp_root = temp_root
        self._watcher: subprocess.Popen[str] | None = None

    def add(self, folder: str) -> None:
        """Watch `temp_root/folder` (and its worker nodes' siblings)."""
        if self._watcher is None:
            self._watcher = subprocess.Popen(
                [sys.executable, "-m", __name__, str(self.temp_root)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                text=True,
            )
        self._send(self._watcher.stdin, folder)

    @contextmanager
    def python_temp_files_in(self, prefix: str) -> Iterator[Path]:
        """Within this block, Python's temp files and folders of this process go in a
        folder of `temp_root`, watched, removed at the block's end."""
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=self.temp_root))
        self.add(folder.name)
        before, tempfile.tempdir = tempfile.tempdir, str(folder)
        try:
            yield folder
        finally:
            tempfile.tempdir = before
            shutil.rmtree(folder, ignore_errors=True)

    def cleaned_up(self) -> None:
        """The teardown removed the leftovers: the watcher exits without looking."""
        if self._watcher is None:
            return
        self._send(self._watcher.stdin, CLEANED_UP)
        if self._watcher.stdin:
            self._watcher.stdin.close()
        try:
            self._watcher.wait(WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self._watcher.kill()
            self._watcher.wait()
        self._watcher = None

    @staticmethod
    def _send(pipe: IO[str] | None, line: str) -> None:
        try:
            if pipe is not None:
                pipe.write(f"{line}\n")
                pipe.flush()
        except OSError as exc:  # the watcher is gone: the teardown still cleans up
            logger.debug("the leftovers' watcher did not take %r: %r", line, exc)


def watch(temp_root: Path, lines: IO[str]) -> list[Path]:
    """The watcher's work: read folder names until the pipe closes; unless the last
    line said the driver cleaned up, remove each folder's leftovers. What it removed."""
    folders = [line.strip() for line in lines]
    if folders[-1:] == [CLEANED_UP]:
        return []
    return [path for folder in folders for path in remove_leftovers(temp_root, folder)]


if __name__ == "__main__":
    watch(Path(sys.argv[1]), sys.stdin)
