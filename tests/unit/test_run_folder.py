"""The run folder takes whole files only (a Databricks volume takes no append): the
driver log grows on local disk, with no name, and is copied in whole; report.json is
replaced whole."""

from __future__ import annotations

import os
import subprocess
import sys

from raybricks.paths import write_whole
from raybricks.report.model import Report, read_report, write_report
from raybricks.run.folder import RunFolder


def test_the_driver_log_grows_on_local_disk_with_no_name_and_is_copied_in_whole(tmp_path):
    temp_root, log_root = tmp_path / "local_disk0", tmp_path / "volume"
    with RunFolder.created(log_root, "run-1", temp_root) as folder:
        assert list(temp_root.iterdir()) == []  # nothing with a name: none to leave behind
        fd = folder.driver_log.fd
        os.write(fd, b"raybricks: started\n")
        # a child process writes to it as Ray's and Spark's own processes do
        subprocess.run([sys.executable, "-c", "print('a child')"], stdout=fd, check=True)
        assert not (folder.path / "driver.log").exists()  # not until it is saved
        folder.save_driver_log()
        assert (folder.path / "driver.log").read_text() == "raybricks: started\na child\n"
        os.write(fd, b"the end\n")
    saved = (log_root / "run-1" / "driver.log").read_text()
    assert saved.endswith("a child\nthe end\n")  # saved once more as the run ended
    assert [p.name for p in (log_root / "run-1").iterdir()] == ["driver.log"]  # no temp files


def test_a_file_written_whole_replaces_the_old_one_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    write_whole(target, [b"old"])
    write_whole(target, [b"n", b"ew"])
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_the_report_is_replaced_whole_each_time(tmp_path):
    report = Report.begin("run-2", {})
    write_report(report, tmp_path)
    report.finish("passed", 0)
    write_report(report, tmp_path)
    assert read_report(tmp_path).status == "passed"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
