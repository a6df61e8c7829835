"""What Ray's nodes leave beside their temp folders goes once no node holds it."""

from __future__ import annotations

import fcntl
import os

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
