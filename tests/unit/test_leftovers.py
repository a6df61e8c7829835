"""What Ray's nodes leave beside their temp folders goes once no node holds it."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from raybricks.cluster.leftovers import lock_files, remove_new_leftovers


def test_only_new_unheld_lock_files_and_their_folders_go(tmp_path):
    older = tmp_path / "ray-9000-aaaa.lock"
    older.touch()
    before = lock_files(tmp_path)
    done, held = tmp_path / "ray-9001-bbbb.lock", tmp_path / "ray-9001-bbbb-node-1.lock"
    for lock in (done, held):
        lock.touch()
        lock.with_suffix("").mkdir()
    holder = os.open(held, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_SH)  # as a running node holds its own
    try:
        removed = remove_new_leftovers(tmp_path, before)
    finally:
        os.close(holder)
    assert set(removed) == {done, done.with_suffix("")}
    assert older.exists() and held.exists() and held.with_suffix("").is_dir()


def test_this_clusters_locks_are_waited_for_until_its_nodes_let_go(tmp_path):
    import threading

    lock = tmp_path / "ray-9002-cccc.lock"
    lock.touch()
    holder = os.open(lock, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_SH)
    threading.Timer(0.5, os.close, [holder]).start()  # its node exits half a second on
    removed = remove_new_leftovers(tmp_path, set(), ours="ray-9002-", wait_seconds=10)
    assert removed == [lock] and not lock.exists()


def linger_with_a_file_open(log: Path, remove_first: Path | None = None) -> subprocess.Popen[str]:
    """A process writing to `log` until killed, as a node's agent does; it removes
    `remove_first` itself once the file is open (as the node's own cleanup does)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    code = (
        "import shutil, sys, time\n"
        "log = open(sys.argv[1], 'w')\n"
        "if sys.argv[2]: shutil.rmtree(sys.argv[2])\n"
        "print('open', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(log), str(remove_first or "")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "open\n"
    return proc


def test_a_process_still_using_this_clusters_folders_is_ended_before_they_go(tmp_path):
    ours = tmp_path / "ray-9003-dddd"
    lock = ours.with_suffix(".lock")
    lock.touch()
    # its folder already removed under it, the file it writes to deleted
    agent = linger_with_a_file_open(ours / "session" / "logs" / "agent.log", remove_first=ours)
    bystander = linger_with_a_file_open(tmp_path / "ray-9004-eeee" / "logs" / "agent.log")
    try:
        removed = remove_new_leftovers(tmp_path, set(), ours="ray-9003-", wait_seconds=1)
        agent.wait(timeout=5)  # ended (its exit code went to psutil, which reaped it)
        assert bystander.poll() is None, "another cluster's process is not this run's"
    finally:
        for proc in (agent, bystander):
            proc.kill()
            proc.wait()
    assert removed == [lock]
