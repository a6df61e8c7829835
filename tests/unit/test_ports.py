"""Port ranges and reserved ports: distinct across processes racing for them, freed when
their process ends, and the shared lock never left taken."""

import multiprocessing
import os
import subprocess
import time
from functools import partial

import pytest

from raybricks.cluster.compat import ports
from tests.helpers import free_ports


@pytest.fixture
def port_files(tmp_path, monkeypatch):
    monkeypatch.setattr(ports, "PORT_LOCK_FILE", tmp_path / "ports.lock")
    monkeypatch.setattr(ports, "PORT_TABLE_FILE", tmp_path / "ports.txt")
    monkeypatch.setattr(ports, "RESERVED_PORTS_LOCK_FILE", tmp_path / "reserved.lock")
    monkeypatch.setattr(ports, "RESERVED_PORTS_FILE", tmp_path / "reserved.txt")
    return tmp_path / "ports.txt"


def test_port_ranges_never_overlap_and_dead_slots_are_reused(port_files):
    ended = subprocess.Popen(["true"])
    ended.wait()
    port_files.write_text(f"{os.getppid()} 0\n{ended.pid} 1\n")
    begin, end = ports.claim_worker_port_range()
    assert (begin, end) == (21000, 22000)  # slot 1 was a dead process's
    rows = dict(line.split() for line in port_files.read_text().splitlines())
    assert rows == {str(os.getppid()): "0", str(os.getpid()): "1"}


def test_a_taken_lock_is_waited_for_and_free_again_right_after_a_claim(port_files, monkeypatch):
    monkeypatch.setattr(ports, "LOCK_TIMEOUT_SECONDS", 0.3)
    taken = ports._acquire(ports.PORT_LOCK_FILE)
    with pytest.raises(TimeoutError, match="stayed locked"):
        ports.claim_worker_port_range()
    ports._release(taken)
    ports.claim_worker_port_range()
    ports._release(ports._acquire(ports.PORT_LOCK_FILE))  # free at once


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
    begin, _ = ports.claim_worker_port_range()
    claimed.put(begin)
    ready.wait()  # stay alive until every one has claimed, as Ray nodes do


def test_no_range_left_raises_and_takes_nothing(port_files, monkeypatch):
    monkeypatch.setattr(ports, "LAST_PORT", 21000)  # room for slot 0 only
    port_files.write_text(f"{os.getppid()} 0\n")
    with pytest.raises(RuntimeError, match="no free worker port range"):
        ports.claim_worker_port_range()
    assert port_files.read_text() == f"{os.getppid()} 0\n"
    ports._release(ports._acquire(ports.PORT_LOCK_FILE))  # and the lock is free


def test_ports_picked_at_once_by_many_processes_are_distinct(port_files):
    some_ports = free_ports(6)
    fork = multiprocessing.get_context("fork")
    ready, picked = fork.Barrier(len(some_ports), timeout=30), fork.Queue()
    pickers = [fork.Process(target=_pick, args=(ready, picked, some_ports)) for _ in some_ports]
    for picker in pickers:
        picker.start()
    picked_ports = sorted(picked.get(timeout=30) for _ in pickers)
    for picker in pickers:
        picker.join(30)
    # none bound them: only the reservations kept them apart
    assert picked_ports == list(some_ports)


def _pick(ready, picked, some_ports: range) -> None:
    ready.wait()  # all at once
    picked.put(ports.reserve_unused_port("127.0.0.1", some_ports[0], some_ports[-1]))
    ready.wait()  # alive until every one has picked


def test_a_reservation_ends_with_its_process_or_after_its_time(port_files):
    ended = subprocess.Popen(["true"])
    ended.wait()
    long_ago = time.time() - ports.RESERVED_SECONDS - 1
    first, second = free_ports(2)
    ports.RESERVED_PORTS_FILE.write_text(
        f"{ended.pid} {first} {time.time()}\n{os.getppid()} {second} {long_ago}\n"
    )
    pick = partial(ports.reserve_unused_port, "127.0.0.1", first, second)
    assert {pick(), pick()} == {first, second}
    with pytest.raises(RuntimeError, match="Get available port"):
        pick()  # both are reserved now, by this live process


def test_the_shared_tables_open_to_every_user_but_never_executable(port_files):
    ports.claim_worker_port_range()
    for made in (ports.PORT_LOCK_FILE, ports.PORT_TABLE_FILE):
        assert made.stat().st_mode & 0o777 == 0o666, made


def test_a_symlink_planted_where_a_table_goes_is_not_followed(port_files, tmp_path):
    """/tmp is anyone's: a link there must not turn a claim into a write elsewhere."""
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    os.chmod(victim, 0o600)
    ports.PORT_TABLE_FILE.symlink_to(victim)
    with pytest.raises(OSError):
        ports.claim_worker_port_range()
    assert victim.read_text() == "untouched\n"
    assert victim.stat().st_mode & 0o777 == 0o600
