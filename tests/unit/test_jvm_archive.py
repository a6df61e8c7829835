"""The driver JVM's class archive: trained once, kept only from a clean JVM exit, one per
JVM and options. (A real JVM writes and maps one in tests/cluster/test_spark_start.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from raybricks import jvm_archive

OPTIONS = "-XX:TieredStopAtLevel=1"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "raybricks" / "jvm"


def trained(exit_code: int | None, content: bytes = b"classes") -> jvm_archive.DriverArchive:
    archive = jvm_archive.driver_archive(OPTIONS)
    assert archive is not None and archive.training
    archive.path.write_bytes(content)  # as the JVM does when it exits
    archive.keep(exit_code)
    return archive


def test_a_first_run_trains_and_a_clean_exit_makes_the_archive_the_next_run_maps(cache):
    training = jvm_archive.driver_archive(OPTIONS)
    assert training is not None and training.training
    assert f"-XX:ArchiveClassesAtExit={training.path}" in training.java_options()
    assert training.path.parent.parent == cache
    trained(0)
    mapped = jvm_archive.driver_archive(OPTIONS)
    assert mapped is not None and not mapped.training
    assert mapped.java_options().startswith(f"-XX:SharedArchiveFile={mapped.path} ")
    assert [p.name for p in mapped.path.parent.iterdir()] == ["driver.jsa"]


@pytest.mark.parametrize(("exit_code", "content"), [(1, b"half"), (None, b"half"), (0, b"")])
def test_what_a_jvm_did_not_finish_cleanly_is_dropped(exit_code, content):
    archive = trained(exit_code, content)
    assert not archive.path.exists()
    again = jvm_archive.driver_archive(OPTIONS)
    assert again is not None and again.training  # the next run trains anew


def test_each_set_of_jvm_options_has_an_archive_of_its_own():
    trained(0)
    other = jvm_archive.driver_archive(OPTIONS + " -XX:+UseSerialGC")
    assert other is not None and other.training


def test_no_archive_without_a_cache_folder_or_a_java(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert jvm_archive.driver_archive(OPTIONS) is None
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    assert jvm_archive.java_binary() is None
    assert jvm_archive.driver_archive(OPTIONS) is None
