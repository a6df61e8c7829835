"""The head's raylet starts beside its dashboard and its temp files stay in its temp
folder (the start hook run by `ray start`), and `faster_setup` hands that hook to the
head only within its block."""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace

import pytest
from ray._private.node import Node

from raybricks.cluster.compat import fast_start, head_start


@pytest.fixture
def events(monkeypatch):
    """A dashboard that comes up only once the raylet has started, and a raylet."""
    seen: list[str] = []
    raylet_started = threading.Event()

    def dashboard(node, **arguments):
        assert arguments == {"include_dashboard": True, "raise_on_failure": True}
        raylet_started.wait(5)
        seen.append("dashboard up")

    def raylet(node):
        seen.append("raylet started")
        raylet_started.set()

    monkeypatch.setattr(head_start, "_start_api_server", dashboard)
    monkeypatch.setattr(head_start, "_start_ray_processes", raylet)
    return seen


def test_the_raylet_starts_before_the_dashboard_is_up_and_the_node_waits_for_both(events):
    node = object()
    head_start._start_api_server_in_background(node, include_dashboard=True, raise_on_failure=True)
    head_start._start_ray_processes_then_wait(node)
    assert events == ["raylet started", "dashboard up"]


def test_a_dashboard_that_fails_fails_the_start_once_the_raylet_is_up(events, monkeypatch):
    def failing(node, **arguments):
        raise RuntimeError("dashboard died")

    monkeypatch.setattr(head_start, "_start_api_server", failing)
    node = object()
    head_start._start_api_server_in_background(node, include_dashboard=True, raise_on_failure=True)
    with pytest.raises(RuntimeError, match="dashboard died"):
        head_start._start_ray_processes_then_wait(node)
    assert events == ["raylet started"]


@pytest.fixture
def node_methods(monkeypatch):
    """Ray's own Node methods, restored after the test whatever the hook did."""
    for name in ("start_api_server", "start_ray_processes"):
        monkeypatch.setattr(Node, name, getattr(Node, name))
    return Node.start_api_server, Node.start_ray_processes


@pytest.fixture
def tmpdir_env(monkeypatch):
    monkeypatch.delenv("TMPDIR", raising=False)  # and whatever the hook sets is undone


def test_the_hook_changes_the_head_only_and_only_on_the_ray_it_was_read_for(
    node_methods, tmpdir_env, monkeypatch
):
    params = SimpleNamespace(temp_dir="/tmp/ray-9123-abcd")
    head_start.start_head(params, head=False)
    assert (Node.start_api_server, Node.start_ray_processes) == node_methods
    assert "TMPDIR" not in os.environ
    monkeypatch.setattr("ray.__version__", "2.61.0")
    head_start.start_head(params, head=True)
    assert (Node.start_api_server, Node.start_ray_processes) == node_methods
    monkeypatch.setattr("ray.__version__", head_start.READ_FOR_RAY)
    head_start.start_head(params, head=True)
    assert Node.start_api_server is head_start._start_api_server_in_background
    assert Node.start_ray_processes is head_start._start_ray_processes_then_wait


def test_the_heads_processes_make_their_temp_files_in_its_temp_folder(node_methods, tmpdir_env):
    head_start.start_head(SimpleNamespace(temp_dir=None), head=True)  # Ray's global mode
    assert "TMPDIR" not in os.environ
    head_start.start_head(SimpleNamespace(temp_dir="/tmp/ray-9123-abcd"), head=True)
    assert os.environ["TMPDIR"] == "/tmp/ray-9123-abcd"


def test_fast_start_hands_the_hook_to_the_head_within_its_block(monkeypatch):
    monkeypatch.delenv("RAY_START_HOOK", raising=False)
    with fast_start.faster_setup():
        hook = os.environ["RAY_START_HOOK"]
    assert hook == "raybricks.cluster.compat.head_start.start_head"
    assert "RAY_START_HOOK" not in os.environ


def test_a_start_hook_of_the_users_own_is_kept(monkeypatch, caplog):
    monkeypatch.setenv("RAY_START_HOOK", "mine.hook")
    with (
        caplog.at_level("INFO", logger="raybricks.cluster.compat.fast_start"),
        fast_start.faster_setup(),
    ):
        assert os.environ["RAY_START_HOOK"] == "mine.hook"
    assert os.environ["RAY_START_HOOK"] == "mine.hook"
    assert "RAY_START_HOOK is set (mine.hook)" in caplog.text
