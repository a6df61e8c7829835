"""What Ray's nodes leave beside their temp folders goes once no node holds it."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from raybricks.cluster.leftovers import remove_leftovers
from raybricks.cluster.leftovers_watch import LeftoversWatch


def node_folder(tmp_path: Path, name: str) -> Path:
    """A node's temp folder and its lock file beside it, as Ray's launcher makes them."""
    (tmp_path / name).mkdir()
    (tmp_path / f"{name}.lock").touch()
    return tmp_path / name


def test_only_this_clusters_folders_go_another_on_the_same_port_stays(tmp_path):
    ours = [node_folder(tmp_path, name) for name in ("ray-9001-bbbb", "ray-9001-bbbb-node-1")]
    others = [node_folder(tmp_path, name) for name in ("ray-9001-cccc", "ray-9000-aaaa")]
    removed = remove_leftovers(tmp_path, "ray-9001-bbbb", wait_seconds=0)
    assert set(removed) == {*ours, *(f.with_name(f"{f.name}.lock") for f in ours)}
    assert all(f.is_dir() and f.with_name(f"{f.name}.lock").exists() for f in others)


def test_a_folder_still_held_after_the_wait_stays(tmp_path):
    held = node_folder(tmp_path, "ray-9001-bbbb-node-2")
    holder = os.open(f"{held}.lock", os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_SH)  # as a running node holds its own
    try:
        assert remove_leftovers(tmp_path, "ray-9001-bbbb", wait_seconds=0.3) == []
    finally:
        os.close(holder)
    assert held.is_dir()


def test_this_clusters_locks_are_waited_for_until_its_nodes_let_go(tmp_path):
    import threading

    folder = node_folder(tmp_path, "ray-9002-cccc")
    lock = tmp_path / "ray-9002-cccc.lock"
    holder = os.open(lock, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_SH)
    threading.Timer(0.5, os.close, [holder]).start()  # its node exits half a second on
    removed = remove_leftovers(tmp_path, "ray-9002-cccc", wait_seconds=10)
    assert removed == [folder, lock] and not lock.exists()


def test_a_folder_its_node_never_locked_goes_too(tmp_path):
    (tmp_path / "ray-9005-ffff").mkdir()  # a head that never started
    assert remove_leftovers(tmp_path, "ray-9005-ffff", wait_seconds=0) == [
        tmp_path / "ray-9005-ffff"
    ]


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
    # another cluster's, even on the same port
    bystander = linger_with_a_file_open(tmp_path / "ray-9003-eeee" / "logs" / "agent.log")
    try:
        removed = remove_leftovers(tmp_path, "ray-9003-dddd", wait_seconds=1)
        agent.wait(timeout=5)  # ended (its exit code went to psutil, which reaped it)
        assert bystander.poll() is None, "another cluster's process is not this run's"
    finally:
        for proc in (agent, bystander):
            proc.kill()
            proc.wait()
    assert removed == [lock]


DRIVER = """
import sys, time
from pathlib import Path
from raybricks.cluster.leftovers_watch import LeftoversWatch
watch = LeftoversWatch(Path(sys.argv[1]))
for folder in sys.argv[3:]:
    watch.add(folder)
if sys.argv[2] == "teardown":
    watch.cleaned_up()
    print("ended", flush=True)
else:
    print("watched", flush=True)
    time.sleep(60)
"""


def driver_watching(temp_root: Path, how: str, *folders: str) -> subprocess.Popen[str]:
    """A driver whose watch knows `folders`; `how`: "teardown" (it cleaned up and
    ends) or "killed" (it waits to be killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(temp_root), how, *folders],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() in ("ended\n", "watched\n")
    return proc


def watchers_of(temp_root: Path) -> list[psutil.Process]:
    return [
        proc
        for proc in psutil.process_iter(["cmdline"])
        if "raybricks.cluster.leftovers_watch" in (proc.info["cmdline"] or [])
        and str(temp_root) in proc.info["cmdline"]
    ]


def test_a_driver_killed_outright_has_its_clusters_leftovers_removed_after_it(tmp_path):
    ours = [node_folder(tmp_path, n) for n in ("ray-9006-gggg", "ray-9006-gggg-node-1")]
    (tmp_path / "ray-9007-hhhh.lock").touch()  # Ray's own launcher's, the folder gone
    other = node_folder(tmp_path, "ray-9006-iiii")
    driver = driver_watching(tmp_path, "killed", "ray-9006-gggg", "ray-9007-hhhh")
    (watcher,) = watchers_of(tmp_path)
    driver.kill()
    driver.wait()
    watcher.wait(timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, f"{other.name}.lock"]
    assert not any(folder.exists() for folder in ours)


def test_after_a_teardown_the_watcher_ends_with_the_driver_and_touches_nothing(tmp_path):
    kept = node_folder(tmp_path, "ray-9008-jjjj")  # as if a node still held it
    driver = driver_watching(tmp_path, "teardown", "ray-9008-jjjj")
    assert driver.wait(timeout=30) == 0
    assert watchers_of(tmp_path) == []
    assert kept.is_dir() and kept.with_name(f"{kept.name}.lock").exists()


STARTING = """
import sys, tempfile, time
from pathlib import Path
from raybricks.cluster.leftovers_watch import LeftoversWatch
watch = LeftoversWatch(Path(sys.argv[1]))
with watch.python_temp_files_in("raybricks-spark-start-"):
    # As PySpark's gateway start: a temp folder, removed only if the process lives on.
    tempfile.mkstemp(dir=tempfile.mkdtemp())
    print("started", flush=True)
    time.sleep(60)
"""


def test_python_temp_files_made_as_a_killed_driver_starts_spark_are_removed_after_it(tmp_path):
    driver = subprocess.Popen(
        [sys.executable, "-c", STARTING, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert driver.stdout is not None and driver.stdout.readline() == "started\n"
    ((started,),) = [list(folder.iterdir()) for folder in tmp_path.iterdir()]
    assert started.is_dir() and len(list(started.iterdir())) == 1
    (watcher,) = watchers_of(tmp_path)
    driver.kill()
    driver.wait()
    watcher.wait(timeout=30)
    assert list(tmp_path.iterdir()) == []


def test_python_temp_files_go_to_their_own_folder_only_within_the_block(tmp_path):
    watch = LeftoversWatch(tmp_path)
    before = tempfile.gettempdir()
    with watch.python_temp_files_in("raybricks-spark-start-") as folder:
        assert Path(tempfile.mkdtemp()).parent == folder
    assert tempfile.gettempdir() == before and not folder.exists()
    watch.cleaned_up()
    assert watchers_of(tmp_path) == []


def test_a_process_naming_a_path_in_the_folder_in_its_environment_is_ended(tmp_path):
    """As the JVM of a Spark start whose driver was killed before the JVM wrote its
    connection file there: it waits for nothing, and keeps the folder's name."""
    ours = tmp_path / "raybricks-spark-start-abcd"
    ours.mkdir()
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    named = {**os.environ, "_PYSPARK_DRIVER_CONN_INFO_PATH": f"{ours}/tmp1/tmp2"}
    jvm = subprocess.Popen(sleep, env=named)
    bystander = subprocess.Popen(sleep, env={**os.environ, "ELSEWHERE": f"{ours}-other/x"})
    try:
        assert remove_leftovers(tmp_path, ours.name, wait_seconds=0) == [ours]
        jvm.wait(timeout=5)
        assert bystander.poll() is None, "a process naming another folder is not this run's"
    finally:
        for proc in (jvm, bystander):
            proc.kill()
            proc.wait()
