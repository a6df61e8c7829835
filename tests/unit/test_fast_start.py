"""The guarded fast start: patches only the Ray version it was written for, restores
everything, and falls back to Ray's own behaviour with one log line elsewhere."""

import logging
import socket
import time

from ray.util.spark import cluster_init

from raybricks import fast_start


def ray_waits():
    return (
        cluster_init._RAY_HEAD_STARTUP_TIMEOUT,
        cluster_init._RAY_CLUSTER_STARTUP_PROGRESS_CHECKING_INTERVAL,
        cluster_init._RAY_WORKER_NODE_STARTUP_INTERVAL,
        cluster_init.is_port_in_use,
    )


def test_patches_inside_the_block_and_restores_after():
    before = ray_waits()
    task_env = {"PATH": "/bin"}
    with fast_start.faster_setup(task_env) as fast:
        assert fast
        assert cluster_init._RAY_HEAD_STARTUP_TIMEOUT == 0
        assert cluster_init._RAY_WORKER_NODE_STARTUP_INTERVAL == 1
        assert task_env[fast_start.LOCK_HOLD_VAR] == "1"
    assert ray_waits() == before
    assert task_env == {"PATH": "/bin"}


def test_another_ray_version_keeps_rays_timings_with_one_log_line(monkeypatch, caplog):
    monkeypatch.setattr("ray.__version__", "2.61.0")
    before = ray_waits()
    with (
        caplog.at_level(logging.INFO, logger="raybricks.fast_start"),
        fast_start.faster_setup({}) as fast,
    ):
        assert not fast
        assert ray_waits() == before
    assert len(caplog.records) == 1
    assert "this is Ray 2.61.0" in caplog.messages[0]


def test_the_setting_turns_it_off():
    before = ray_waits()
    with fast_start.faster_setup({}, enabled=False) as fast:
        assert not fast
        assert ray_waits() == before


def test_the_head_port_is_polled_until_it_opens():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        server.listen()
        assert fast_start._wait_until_port_in_use("127.0.0.1", port)


def test_a_port_that_never_opens_gives_up_at_the_limit(monkeypatch):
    monkeypatch.setattr(fast_start, "HEAD_PORT_TIMEOUT_SECONDS", 0.3)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, not listening: connections are refused
        clock = time.monotonic()
        assert not fast_start._wait_until_port_in_use("127.0.0.1", port)
    assert time.monotonic() - clock < 5
