"""Class-data sharing for the JVMs of a Spark that raybricks starts itself.

Most of a local Spark's start is its JVMs (the driver, and one per executor) loading and
linking Spark's classes. A JVM can map them from an archive instead (class-data
sharing): here it halved the driver's start, and the executors' CPU time. A first run's
JVMs write the archives as they exit (`-XX:ArchiveClassesAtExit`); they are kept under
the user's cache folder, one set per JVM build, Spark install (its jar files) and JVM
options, so an upgrade or a reinstall of either simply trains anew.

A JVM that maps a partly written archive crashes. So a training run's JVMs write files
of their own, and such a file becomes the archive only once a JVM started as the one
that wrote it has mapped it, with sharing required and the archive's checksum verified.
One run trains at a time (writing archives slows its JVMs' exit); a run starting while
another trains starts without archives.

    archives = class_archives(LOCAL_SPARK_JVM)     # None: no cache folder, or no java
    archives.java_options("driver")                # for spark.driver.extraJavaOptions
    ...                                            # Spark runs; its JVMs exit
    archives.keep({"driver": driver_command, "executor": executor_command})
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pyspark

logger = logging.getLogger(__name__)

KINDS = ("driver", "executor")
# The JVM's notes on classes it cannot archive would end up on the console.
QUIET = "-Xlog:cds=off,cds+dynamic=off"
CHECK_SECONDS = 60.0
SPARK_JARS = "spark"  # in each set: the Spark install (pyspark's folder) it was made for


@dataclass(frozen=True)
class ClassArchives:
    """The archives a local Spark's JVMs map, or (for a kind without one yet) the
    files this run's JVMs of that kind write as they exit."""

    folder: Path
    mapped: frozenset[str]
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    claim: IO[bytes] | None = field(default=None, compare=False, repr=False)

    @property
    def training(self) -> bool:
        return self.mapped != frozenset(KINDS)

    def java_options(self, kind: str) -> str:
        if kind in self.mapped:
            return f"-XX:SharedArchiveFile={self.folder / f'{kind}.jsa'} {QUIET}"
        # Spark puts each executor's id in place of {{EXECUTOR_ID}}: a file each.
        each = "-{{EXECUTOR_ID}}" if kind == "executor" else ""
        written = self.folder / f"training-{self.run}-{kind}{each}.jsa"
        return f"-XX:ArchiveClassesAtExit={written} {QUIET}"

    def keep(self, commands: Mapping[str, Sequence[str]]) -> None:
        """After a training run's JVMs have exited: for each kind trained, keep the first
        file that a JVM started as `commands[kind]` maps cleanly; drop the others. Then
        another run may train."""
        try:
            self._keep(commands)
        finally:
            if self.claim is not None:
                self.claim.close()

    def _keep(self, commands: Mapping[str, Sequence[str]]) -> None:
        for kind in sorted(set(KINDS) - self.mapped):
            written = sorted(self.folder.glob(f"training-{self.run}-{kind}*.jsa"))
            command = commands.get(kind)
            kept = next((f for f in written if command and _maps(command, f)), None)
            if kept is not None:
                os.replace(kept, self.folder / f"{kind}.jsa")
                logger.debug("Spark's %s JVMs will map their classes from %s", kind, self.folder)
            else:
                logger.debug("no class archive kept for Spark's %s JVMs", kind)
            for path in written:
                path.unlink(missing_ok=True)


def class_archives(jvm_options: str, sets_kept: int = 2) -> ClassArchives | None:
    """The archives for JVMs started with `jvm_options`; None when the JVM or a
    writable cache folder cannot be found, or another run is training them. Older sets
    beyond `sets_kept` go."""
    folder = _folder(jvm_options)
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SPARK_JARS).write_text(str(_spark_jars()))
    except OSError as exc:
        logger.debug("no class archives for Spark's JVMs: %s", exc)
        return None
    os.utime(folder)  # the newest set is the one used last
    prune(sets_kept, current=folder)
    claim = _claim_training(folder)
    if claim is not None:
        _drop_unkept(folder)
    mapped = _kept(folder)  # read once claimed: a run that held the claim may have just kept them
    if mapped == frozenset(KINDS):
        if claim is not None:
            claim.close()
        return ClassArchives(folder, mapped)
    if claim is None:
        logger.debug("another run is training the class archives in %s: none this time", folder)
        return None
    return ClassArchives(folder, mapped, claim=claim)


def prune(keep: int, current: Path | None = None) -> list[Path]:
    """Keep the newest `keep` sets of archives (and `current`), remove the others (about
    280 MB each: one per JDK build, Spark install and JVM options) and those whose Spark
    install is gone (a deleted checkout's venv); a set another run is training stays.
    Returns what was removed."""
    root = cache_root()
    sets = sorted(
        (folder for folder in root.glob("*") if folder.is_dir()),
        key=lambda folder: folder.stat().st_mtime,
        reverse=True,
    )
    others = [s for s in sets if s != current]
    older = others[max(0, keep - (current in sets)) :]
    removed = []
    for folder in [s for s in others if s in older or _spark_gone(s)]:
        claim = _claim_training(folder)
        if claim is None:
            continue  # a run trains it now
        try:
            shutil.rmtree(folder, ignore_errors=True)
            folder.with_name(f"{folder.name}.training").unlink(missing_ok=True)
            removed.append(folder)
        finally:
            claim.close()
    if removed:
        logger.debug("removed %d older set(s) of Spark class archives: %s", len(removed), removed)
    return removed


def kept_options(jvm_options: str, kind: str) -> str:
    """What a JVM of `kind` started with `jvm_options` adds to map its kept archive ("" if
    none is kept): for a Spark started elsewhere with the same JVM and options."""
    folder = _folder(jvm_options)
    kept = _kept(folder) if folder is not None else frozenset()
    return ClassArchives(folder, kept).java_options(kind) if folder and kind in kept else ""


def trained(jvm_options: str) -> bool:
    """Whether JVMs started with `jvm_options` would map archives of every kind."""
    folder = _folder(jvm_options)
    return folder is not None and _kept(folder) == frozenset(KINDS)


def _spark_jars() -> Path:
    return Path(pyspark.__file__).parent


def _spark_gone(folder: Path) -> bool:
    """Whether the Spark install that `folder`'s archives were made for no longer exists."""
    try:
        return not Path((folder / SPARK_JARS).read_text()).is_dir()
    except OSError:
        return False  # made before sets named their Spark, or being made now


def _folder(jvm_options: str) -> Path | None:
    """Where the archives for JVMs started with `jvm_options` live; None without java."""
    java = java_binary()
    return None if java is None else cache_root() / _key(java, jvm_options)


def _kept(folder: Path) -> frozenset[str]:
    return frozenset(kind for kind in KINDS if (folder / f"{kind}.jsa").is_file())


def _drop_unkept(folder: Path) -> None:
    """With the claim held no run trains here: the files of one that was killed before
    it kept them (up to 170 MB each) go."""
    for path in folder.glob("training-*.jsa"):
        path.unlink(missing_ok=True)


def _claim_training(folder: Path) -> IO[bytes] | None:
    """The right to train in `folder`, held until `keep` or the process's end; None
    while another run holds it."""
    lock = folder.with_name(f"{folder.name}.training").open("wb")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock


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
    """Names what an archive depends on: the JVM build, Spark's jars (their version,
    where they are, and each one's size and time: a JVM maps an archive only with the
    very files it was made with, and a reinstall of the same Spark writes new ones), the
    options."""
    modules = java.parent.parent / "lib" / "modules"  # changes with every JDK build
    stamp = modules.stat() if modules.is_file() else java.stat()
    jars = _spark_jars()
    identity = [str(java), f"{stamp.st_size}:{stamp.st_mtime_ns}", pyspark.__version__]
    identity += [str(jars), *_stamps(sorted(jars.glob("jars/*.jar")))]
    return hashlib.sha256("\n".join([*identity, jvm_options]).encode()).hexdigest()[:16]


def _stamps(files: list[Path]) -> list[str]:
    """Each file's name, size and time."""
    stamps = []
    for file in files:
        info = file.stat()
        stamps.append(f"{file.name}:{info.st_size}:{info.st_mtime_ns}")
    return stamps


def _maps(command: Sequence[str], archive: Path) -> bool:
    """Whether a JVM started with `command`'s binary, options and class path maps
    `archive`: with sharing required it fails (or crashes) rather than run without."""
    check = [*_jvm_part(command), f"-XX:SharedArchiveFile={archive}"]
    check += ["-Xshare:on", "-XX:+VerifySharedSpaces", "-XX:ErrorFile=/dev/null", "-version"]
    try:
        done = subprocess.run(check, capture_output=True, timeout=CHECK_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _jvm_part(command: Sequence[str]) -> list[str]:
    """The java binary and its options (class path included), without the main class,
    its arguments, or the option that wrote an archive."""
    part, rest = [command[0]], iter(command[1:])
    for token in rest:
        if token in ("-cp", "-classpath", "--class-path"):
            part += [token, next(rest, "")]
        elif not token.startswith("-"):
            break  # the main class
        elif not token.startswith("-XX:ArchiveClassesAtExit="):
            part.append(token)
    return part
