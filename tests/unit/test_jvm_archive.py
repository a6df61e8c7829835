"""The Spark JVMs' class archives: trained once per kind, a written file kept only once a
JVM maps it, one set per JVM and options. Real (small) archives, written by a real JVM;
Spark's own JVMs write and map theirs in tests/cluster/test_spark_start.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from raybricks.cluster import jvm_archive

OPTIONS = "-XX:TieredStopAtLevel=1"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "raybricks" / "jvm"


@pytest.fixture(scope="module")
def java() -> str:
    found = jvm_archive.java_binary()
    assert found is not None, "Java 17 must be installed"
    return str(found)


def written_by_a_jvm(java: str, archives: jvm_archive.ClassArchives, kind: str) -> Path:
    """Run a JVM with the training options of `kind`, as Spark would (executor 0)."""
    options = archives.java_options(kind).replace("{{EXECUTOR_ID}}", "0").split()
    subprocess.run([java, *options, "-version"], check=True, capture_output=True)
    (path,) = archives.folder.glob(f"training-{archives.run}-{kind}*.jsa")
    return path


def test_a_first_run_trains_and_keeps_what_a_jvm_maps_for_the_next_run(java, cache):
    archives = jvm_archive.class_archives(OPTIONS)
    assert archives is not None and archives.training and archives.mapped == frozenset()
    assert archives.folder.parent == cache
    assert "-{{EXECUTOR_ID}}.jsa" in archives.java_options("executor")  # a file per executor
    for kind in jvm_archive.KINDS:
        written_by_a_jvm(java, archives, kind)
    assert not jvm_archive.trained(OPTIONS)
    archives.keep({kind: [java] for kind in jvm_archive.KINDS})
    assert jvm_archive.trained(OPTIONS)

    again = jvm_archive.class_archives(OPTIONS)
    assert again is not None and not again.training
    assert again.java_options("executor").startswith(
        f"-XX:SharedArchiveFile={again.folder / 'executor.jsa'} "
    )
    assert sorted(p.name for p in again.folder.glob("*.jsa")) == ["driver.jsa", "executor.jsa"]


def test_a_spark_started_elsewhere_maps_only_the_archives_kept(java):
    """As the tests' spark-submit: without a claim, and nothing for a kind not kept."""
    assert [jvm_archive.kept_options(OPTIONS, kind) for kind in jvm_archive.KINDS] == ["", ""]
    archives = jvm_archive.class_archives(OPTIONS)
    assert archives is not None
    written_by_a_jvm(java, archives, "driver")
    archives.keep({"driver": [java]})
    driver = jvm_archive.kept_options(OPTIONS, "driver")
    assert driver.startswith(f"-XX:SharedArchiveFile={archives.folder / 'driver.jsa'} ")
    assert jvm_archive.kept_options(OPTIONS, "executor") == ""


def test_a_partly_written_archive_is_dropped_and_the_next_run_trains_again(java):
    archives = jvm_archive.class_archives(OPTIONS)
    assert archives is not None
    written = written_by_a_jvm(java, archives, "driver")
    written.write_bytes(written.read_bytes()[: written.stat().st_size // 2])  # cut short
    archives.keep({"driver": [java]})
    assert list(archives.folder.glob("*.jsa")) == []
    again = jvm_archive.class_archives(OPTIONS)
    assert again is not None and "driver" not in again.mapped


def test_without_the_command_of_the_jvm_that_wrote_it_nothing_is_kept(java):
    archives = jvm_archive.class_archives(OPTIONS)
    assert archives is not None
    written_by_a_jvm(java, archives, "executor")
    archives.keep({})  # no executor seen
    assert list(archives.folder.glob("*.jsa")) == []


def test_one_run_trains_at_a_time_and_one_starting_meanwhile_has_none(java):
    trainer = jvm_archive.class_archives(OPTIONS)
    assert trainer is not None and trainer.training
    assert jvm_archive.class_archives(OPTIONS) is None  # while it trains
    for kind in jvm_archive.KINDS:
        written_by_a_jvm(java, trainer, kind)
    trainer.keep({kind: [java] for kind in jvm_archive.KINDS})
    after = jvm_archive.class_archives(OPTIONS)
    assert after is not None and not after.training


def test_a_trainer_killed_before_keeping_lets_the_next_run_train_and_leaves_no_file(java, cache):
    # Another process claims the training, its JVM writes each kind's file, and it is killed.
    killed = (
        "import os, signal, sys\n"
        "from raybricks.cluster import jvm_archive\n"
        "from tests.unit.test_jvm_archive import written_by_a_jvm\n"
        "archives = jvm_archive.class_archives(sys.argv[1])\n"
        "for kind in jvm_archive.KINDS:\n"
        "    written_by_a_jvm(sys.argv[2], archives, kind)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", killed, OPTIONS, java], capture_output=True)
    assert done.returncode == -9, done.stderr
    assert len(list(cache.glob("*/training-*.jsa"))) == len(jvm_archive.KINDS)
    nothing_kept = jvm_archive.class_archives(OPTIONS)
    assert nothing_kept is not None and nothing_kept.training
    assert list(cache.glob("*/training-*.jsa")) == []  # the killed run's files are gone
    nothing_kept.keep({})
    again = jvm_archive.class_archives(OPTIONS)
    assert again is not None and again.training


def test_each_set_of_jvm_options_has_archives_of_its_own():
    one = jvm_archive.class_archives(OPTIONS)
    other = jvm_archive.class_archives(OPTIONS + " -XX:+UseSerialGC")
    assert one is not None and other is not None and one.folder != other.folder


def test_a_reinstall_of_the_same_spark_has_archives_of_its_own(tmp_path, monkeypatch):
    """A JVM refuses an archive made with other jar files (their size and time), and
    without sharing required it silently runs without one: Spark's start took twice as
    long after a `make setup` anew, with the old set found and never mapped."""
    spark = tmp_path / "pyspark"
    (spark / "jars").mkdir(parents=True)
    jar = spark / "jars" / "spark-core.jar"
    jar.write_bytes(b"jar")
    monkeypatch.setattr(jvm_archive, "_spark_jars", lambda: spark)
    before = jvm_archive.class_archives(OPTIONS)
    os.utime(jar, ns=(1, 1))  # the same file, written anew
    after = jvm_archive.class_archives(OPTIONS)
    assert before is not None and after is not None and before.folder != after.folder


def test_no_archives_without_a_cache_folder_or_a_java(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert jvm_archive.class_archives(OPTIONS) is None
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    assert jvm_archive.java_binary() is None
    assert jvm_archive.class_archives(OPTIONS) is None


def test_the_check_starts_the_jvm_as_it_ran_without_its_program_or_the_writing_option():
    command = ["java", "-cp", "a:b", "-Xmx1g", "-XX:ArchiveClassesAtExit=x.jsa", "Main", "-v"]
    assert jvm_archive._jvm_part(command) == ["java", "-cp", "a:b", "-Xmx1g"]


def test_only_the_newest_sets_are_kept_and_a_set_in_training_stays(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    root = jvm_archive.cache_root()
    sets = [root / name for name in ("oldest", "older", "training", "newest", "current")]
    for age, folder in enumerate(sets):
        folder.mkdir(parents=True)
        (folder / "driver.jsa").write_bytes(b"x" * 10)
        os.utime(folder, (1_000_000 + age, 1_000_000 + age))
    os.utime(sets[-1], (1, 1))  # in use now, however old
    held = jvm_archive._claim_training(sets[2])  # another run trains it
    try:
        with caplog.at_level("DEBUG", logger="raybricks"):
            removed = jvm_archive.prune(keep=2, current=sets[-1])
    finally:
        held.close()
    assert sorted(removed) == sorted([sets[0], sets[1]])
    assert [folder.is_dir() for folder in sets] == [False, False, True, True, True]
    assert "removed 2 older set(s)" in caplog.text


def test_a_set_whose_spark_install_is_gone_is_removed_however_new(monkeypatch, tmp_path):
    """Each set names the Spark it was made for: a deleted checkout's venv frees its
    280 MB at the next run, not only once newer sets push it out."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    root = jvm_archive.cache_root()
    gone, here, unnamed = (root / name for name in ("gone", "here", "unnamed"))
    for folder in (gone, here, unnamed):
        folder.mkdir(parents=True)
    (gone / jvm_archive.SPARK_JARS).write_text(str(tmp_path / "deleted-clone" / "pyspark"))
    (here / jvm_archive.SPARK_JARS).write_text(str(tmp_path))
    assert jvm_archive.prune(keep=5) == [gone]
    assert here.is_dir() and unnamed.is_dir()


def test_each_set_names_the_spark_install_it_is_for():
    archives = jvm_archive.class_archives(OPTIONS)
    assert archives is not None
    named = Path((archives.folder / jvm_archive.SPARK_JARS).read_text())
    assert named == Path(jvm_archive.pyspark.__file__).parent
