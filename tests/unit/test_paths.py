from datetime import datetime, timezone
from pathlib import Path

import pytest

from raybricks.paths import (
    create_run_dir,
    new_run_id,
    spark_uri,
    to_local_path,
    unwritable_reason,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("dbfs:/ray/logs", "/dbfs/ray/logs"),
        ("dbfs:///ray/logs", "/dbfs/ray/logs"),
        ("/dbfs/ray/logs", "/dbfs/ray/logs"),
        ("/Volumes/main/raybricks/logs", "/Volumes/main/raybricks/logs"),
    ],
)
def test_dbfs_uris_become_fuse_paths_others_stay(given, expected):
    assert to_local_path(given) == Path(expected)


def test_relative_paths_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert to_local_path("runs") == tmp_path / "runs"


@pytest.mark.parametrize("uri", ["s3://b/x", "abfss://c@a.dfs.core.windows.net/x", "gs://b/x", " "])
def test_object_store_uris_and_empty_paths_are_refused(uri):
    with pytest.raises(ValueError):
        to_local_path(uri)


def test_unwritable_reason_only_looks(tmp_path):
    target = tmp_path / "a" / "b"
    assert unwritable_reason(target) is None
    assert not (tmp_path / "a").exists()  # nothing was created
    (tmp_path / "f").write_text("")
    assert "is a file" in (unwritable_reason(tmp_path / "f" / "x") or "")


def test_run_ids_sort_by_time_and_are_unique(tmp_path):
    early = new_run_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    late = new_run_id(datetime(2026, 1, 2, 3, 4, 6, tzinfo=timezone.utc))
    assert early.startswith("20260102T030405Z-")
    assert early < late
    assert len({new_run_id() for _ in range(200)}) == 200
    run_dir = create_run_dir(tmp_path / "logs", early)
    assert run_dir.is_dir()
    with pytest.raises(FileExistsError):
        create_run_dir(tmp_path / "logs", early)


@pytest.mark.parametrize(
    ("folder", "on_databricks", "uri"),
    [
        ("/tmp/runs/x/handoff", False, "file:///tmp/runs/x/handoff"),
        ("/dbfs/raybricks/handoff", True, "dbfs:/raybricks/handoff"),
        ("/Volumes/main/raybricks/logs/x/handoff", True, "/Volumes/main/raybricks/logs/x/handoff"),
    ],
)
def test_spark_names_a_handoff_folder_as_its_own_file_systems_do(folder, on_databricks, uri):
    assert spark_uri(Path(folder), on_databricks) == uri
