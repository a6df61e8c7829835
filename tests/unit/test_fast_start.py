"""The guarded fast start: patches only the Ray version it was written for, restores
everything, and falls back to Ray's own behaviour with one log line elsewhere."""

import logging
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import psutil
import pytest
from pyspark import cloudpickle
from ray.autoscaler._private.spark import spark_job_server
from ray.util.spark import cluster_init

from raybricks import fast_start


def ray_internals():
    return tuple(getattr(module, name) for module, name, _ in fast_start._patches())


def test_patches_inside_the_block_and_restores_after():
    before = ray_internals()
    with fast_start.faster_setup() as fast:
        assert fast
        assert cluster_init._RAY_HEAD_STARTUP_TIMEOUT == 0
        assert cluster_init._preallocate_ray_worker_port_range is (
            fast_start.claim_worker_port_range
        )
        assert spark_job_server._start_ray_worker_nodes is not before[-1]
    assert ray_internals() == before
    assert spark_job_server._start_ray_worker_nodes is fast_start._start_ray_worker_nodes


def test_each_worker_node_gets_a_temp_folder_of_its_own_beside_the_clusters():
    cluster = "/tmp/ray-9100-1a2b3c4d"
    folders = {fast_start.node_temp_dir(cluster, node_id) for node_id in ("1", "2")}
    assert folders == {f"{cluster}-node-1", f"{cluster}-node-2"}


def test_another_ray_version_keeps_rays_timings_with_one_log_line(monkeypatch, caplog):
    monkeypatch.setattr("ray.__version__", "2.61.0")
    before = ray_internals()
    with (
        caplog.at_level(logging.INFO, logger="raybricks.fast_start"),
        fast_start.faster_setup() as fast,
    ):
        assert not fast
        assert ray_internals() == before
    assert len(caplog.records) == 1
    assert "this is Ray 2.61.0" in caplog.messages[0]


def test_the_setting_turns_it_off():
    before = ray_internals()
    with fast_start.faster_setup(enabled=False) as fast:
        assert not fast
        assert ray_internals() == before


def test_worker_tasks_get_the_claim_and_reservation_by_reference_when_pickled():
    """Ray pickles its worker-node task function in the driver; the patched globals
    must travel as importable references, so executors run the same code."""
    # Defined in Ray's module namespace, as Ray's nested task function is.
    a_task_like_rays = eval(
        "lambda _: (_preallocate_ray_worker_port_range(), get_random_unused_port('h'))",
        vars(cluster_init),
    )
    with fast_start.faster_setup():
        task = cloudpickle.dumps(a_task_like_rays)
    assert b"raybricks.fast_start" in task
    assert b"claim_worker_port_range" in task and b"reserve_unused_port" in task


def test_the_warming_task_imports_ray_on_spark_by_reference():
    """Unpickled in a Spark Python worker, the task imports this module and so Ray."""
    task = cloudpickle.dumps(fast_start.import_ray_on_spark)
    assert b"raybricks.fast_start" in task and b"import_ray_on_spark" in task


def a_head(port: int, listen_after: float | None) -> subprocess.Popen[bytes]:
    """A child process that, like Ray's head, names `--port=PORT` on its command line;
    it listens on the port after `listen_after` seconds, or never (None: it exits)."""
    code = (
        "import socket, sys, time\n"
        "if sys.argv[1] == 'exit': sys.exit(1)\n"
        "time.sleep(float(sys.argv[1]))\n"
        f"server = socket.create_server(('127.0.0.1', {port}))\n"
        "time.sleep(30)\n"
    )
    when = "exit" if listen_after is None else str(listen_after)
    return subprocess.Popen([sys.executable, "-c", code, when, f"--port={port}"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def a_running_head(port: int, listen_after: float) -> Iterator[subprocess.Popen[bytes]]:
    head = a_head(port, listen_after)
    try:
        yield head
    finally:
        head.kill()
        head.wait()


def test_the_head_port_is_polled_until_it_opens():
    port = free_port()
    with a_running_head(port, listen_after=1.0):
        assert fast_start._wait_until_port_in_use("127.0.0.1", port)


def test_a_port_that_never_opens_gives_up_at_the_limit(monkeypatch):
    monkeypatch.setattr(fast_start, "HEAD_PORT_TIMEOUT_SECONDS", 0.5)
    port = free_port()
    with a_running_head(port, listen_after=60) as head:
        clock = time.monotonic()
        assert not fast_start._wait_until_port_in_use("127.0.0.1", port)
        assert 0.5 <= time.monotonic() - clock < 5
        assert head.poll() is None  # it was waited for while it ran


def test_a_head_that_exits_is_given_up_on_at_once():
    port = free_port()
    head = a_head(port, listen_after=None)
    exited = psutil.Process(head.pid)
    while exited.status() != psutil.STATUS_ZOMBIE:  # left unreaped, as Ray leaves it
        time.sleep(0.05)
    clock = time.monotonic()
    assert not fast_start._wait_until_port_in_use("127.0.0.1", port)
    assert time.monotonic() - clock < fast_start.HEAD_PORT_TIMEOUT_SECONDS / 4


@pytest.fixture
def port_files(tmp_path, monkeypatch):
    monkeypatch.setattr(fast_start, "PORT_LOCK_FILE", tmp_path / "ports.lock")
    monkeypatch.setattr(fast_start, "PORT_TABLE_FILE", tmp_path / "ports.txt")
    monkeypatch.setattr(fast_start, "RESERVED_PORTS_LOCK_FILE", tmp_path / "reserved.lock")
    monkeypatch.setattr(fast_start, "RESERVED_PORTS_FILE", tmp_path / "reserved.txt")
    return tmp_path / "ports.txt"


def test_port_ranges_never_overlap_and_dead_slots_are_reused(port_files):
    ended = subprocess.Popen(["true"])
    ended.wait()
    port_files.write_text(f"{os.getppid()} 0\n{ended.pid} 1\n")
    begin, end = fast_start.claim_worker_port_range()
    assert (begin, end) == (21000, 22000)  # slot 1 was a dead process's
    rows = dict(line.split() for line in port_files.read_text().splitlines())
    assert rows == {str(os.getppid()): "0", str(os.getpid()): "1"}


def test_a_taken_lock_is_waited_for_and_free_again_right_after_a_claim(port_files, monkeypatch):
    monkeypatch.setattr(fast_start, "LOCK_TIMEOUT_SECONDS", 0.3)
    taken = fast_start._acquire(fast_start.PORT_LOCK_FILE)
    with pytest.raises(TimeoutError, match="stayed locked"):
        fast_start.claim_worker_port_range()
    fast_start._release(taken)
    fast_start.claim_worker_port_range()
    fast_start._release(fast_start._acquire(fast_start.PORT_LOCK_FILE))  # free at once


def test_claims_racing_from_many_processes_get_distinct_ranges(port_files):
    fork = multiprocessing.get_context("fork")
    ready, claimed = fork.Barrier(6), fork.SimpleQueue()
    claimants = [fork.Process(target=_claim, args=(ready, claimed)) for _ in range(6)]
    for claimant in claimants:
        claimant.start()
    begins = sorted(claimed.get() for _ in claimants)
    for claimant in claimants:
        claimant.join(30)
    assert begins == [20000 + slot * 1000 for slot in range(6)]


def _claim(ready, claimed) -> None:
    ready.wait()  # all at once
    begin, _ = fast_start.claim_worker_port_range()
    claimed.put(begin)
    ready.wait()  # stay alive until every one has claimed, as Ray nodes do


def test_no_range_left_raises_and_takes_nothing(port_files, monkeypatch):
    monkeypatch.setattr(fast_start, "LAST_PORT", 21000)  # room for slot 0 only
    port_files.write_text(f"{os.getppid()} 0\n")
    with pytest.raises(RuntimeError, match="no free worker port range"):
        fast_start.claim_worker_port_range()
    assert port_files.read_text() == f"{os.getppid()} 0\n"
    fast_start._release(fast_start._acquire(fast_start.PORT_LOCK_FILE))  # and the lock is free


# Free on this machine (Ray's own check), and few, so that random picks would collide.
SOME_PORTS = range(41000, 41006)


def test_ports_picked_at_once_by_many_processes_are_distinct(port_files):
    fork = multiprocessing.get_context("fork")
    ready, picked = fork.Barrier(len(SOME_PORTS)), fork.SimpleQueue()
    pickers = [fork.Process(target=_pick, args=(ready, picked)) for _ in SOME_PORTS]
    for picker in pickers:
        picker.start()
    ports = sorted(picked.get() for _ in pickers)
    for picker in pickers:
        picker.join(30)
    assert ports == list(SOME_PORTS)  # none bound them: only the reservations kept them apart


def _pick(ready, picked) -> None:
    ready.wait()  # all at once
    picked.put(fast_start.reserve_unused_port("127.0.0.1", SOME_PORTS[0], SOME_PORTS[-1]))
    ready.wait()  # alive until every one has picked


def test_a_reservation_ends_with_its_process_or_after_its_time(port_files):
    ended = subprocess.Popen(["true"])
    ended.wait()
    long_ago = time.time() - fast_start.RESERVED_SECONDS - 1
    fast_start.RESERVED_PORTS_FILE.write_text(
        f"{ended.pid} 41000 {time.time()}\n{os.getppid()} 41001 {long_ago}\n"
    )
    pick = partial(fast_start.reserve_unused_port, "127.0.0.1", 41000, 41001)
    assert {pick(), pick()} == {41000, 41001}
    with pytest.raises(RuntimeError, match="Get available port"):
        pick()  # both are reserved now, by this live process
