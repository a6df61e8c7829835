"""The reliability sweep's tally of what a scenario left in the temp root."""

from __future__ import annotations

from pathlib import Path

from benchmarks.reliability import added, counted, run_files, top_entries


def test_what_is_new_in_the_temp_root_is_counted_and_named_by_its_top_entry(tmp_path):
    (tmp_path / "old.lock").write_text("")
    before = run_files(tmp_path)
    (tmp_path / "ray-9000-abc-node-1" / "session_1").mkdir(parents=True)
    (tmp_path / "ray-9000-abc-node-1" / "session_1" / "raylet.out").write_text("12345")
    (tmp_path / "ray-9000-abc.lock").write_text("")
    (tmp_path / "reliability-x").mkdir()  # the sweep's own: never counted
    new = added(before, run_files(tmp_path))
    assert counted(new) == (4, 5)
    assert top_entries(new, tmp_path) == [
        f"{Path(tmp_path, 'ray-9000-abc-node-1')} (3)",
        f"{Path(tmp_path, 'ray-9000-abc.lock')} (1)",
    ]
