"""Class-data sharing for the driver JVM of a Spark that raybricks starts itself.

Most of a local Spark's start is its driver JVM loading and linking Spark's classes. A
JVM can map them from an archive instead (class-data sharing): here the SparkContext
and session were ready in 3.5 s instead of 8.4 s. A first run's JVM writes the archive
as it exits (`-XX:ArchiveClassesAtExit`); it is kept under the user's cache folder, one
per JVM, Spark version and JVM options, so an upgrade of either simply trains anew.

A JVM that maps a partly written archive crashes. So a run writes to a file of its own,
and that file becomes the archive only once the JVM that wrote it has exited cleanly.

    archive = driver_archive(QUICK_START_JVM)      # None: no cache folder, or no java
    options = archive.java_options()               # for spark.driver.extraJavaOptions
    ...                                            # Spark runs, stops; its JVM exits
    archive.keep(jvm_exit_code)                    # a training run's archive is kept
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyspark

logger = logging.getLogger(__name__)

ARCHIVE = "driver.jsa"
# The JVM's own notes on classes it cannot archive would end up on the console.
QUIET = "-Xlog:cds=off,cds+dynamic=off"


@dataclass(frozen=True)
class DriverArchive:
    """The archive a driver JVM maps, or (training) the file it writes as it exits."""

    path: Path
    training: bool

    def java_options(self) -> str:
        flag = "ArchiveClassesAtExit" if self.training else "SharedArchiveFile"
        return f"-XX:{flag}={self.path} {QUIET}"

    def keep(self, jvm_exit_code: int | None) -> None:
        """After a training run's JVM has exited: keep what it wrote if it exited
        cleanly, else drop it. Nothing to do for a run that mapped the archive."""
        if not self.training:
            return
        written = self.path.is_file() and self.path.stat().st_size > 0
        if jvm_exit_code == 0 and written:
            os.replace(self.path, self.path.with_name(ARCHIVE))
            logger.info("Spark's driver JVM will load its classes from %s", self.path.parent)
        else:
            logger.info("no class archive kept (the JVM exited with %s)", jvm_exit_code)
            self.path.unlink(missing_ok=True)


def driver_archive(jvm_options: str) -> DriverArchive | None:
    """The archive for a driver JVM started with `jvm_options`, or the file a training
    run writes it to; None when the JVM or a writable cache folder cannot be found."""
    java = java_binary()
    if java is None:
        return None
    folder = cache_root() / _key(java, jvm_options)
    archive = folder / ARCHIVE
    if archive.is_file():
        return DriverArchive(archive, training=False)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        logger.info("no class archive for Spark's JVM: %s", exc)
        return None
    return DriverArchive(folder / f"training-{uuid.uuid4().hex[:12]}.jsa", training=True)


def cache_home() -> Path:
    """The user's cache folder (XDG_CACHE_HOME, else ~/.cache)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def cache_root() -> Path:
    return cache_home() / "raybricks" / "jvm"


def java_binary() -> Path | None:
    """The java that Spark's launcher runs: $JAVA_HOME/bin/java, else the PATH's."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(found).resolve() if found and Path(found).is_file() else None


def _key(java: Path, jvm_options: str) -> str:
    """Names what an archive depends on: the JVM build, Spark's jars, the options."""
    modules = java.parent.parent / "lib" / "modules"  # changes with every JDK build
    stamp = modules.stat() if modules.is_file() else java.stat()
    identity = [
        str(java),
        f"{stamp.st_size}:{stamp.st_mtime_ns}",
        pyspark.__version__,
        jvm_options,
    ]
    return hashlib.sha256("\n".join(identity).encode()).hexdigest()[:16]
