"""The head's raylet starts beside its dashboard, its temp files stay in its temp folder
and it starts no Ray Client server (the start hooks run by `ray start`), and
`head_start_hook` hands a hook to the head only within its block: with fast start, or
the lean head alone for Ray's own start."""

from __future__ import annotations

import os
import threading

import pytest
from ray._private.node import Node
from ray._private.parameter import RayParams

from raybricks.cluster.compat import head_start


@pytest.fixture
def events():
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

    return seen, dashboard, raylet


def test_the_raylet_starts_before_the_dashboard_is_up_and_the_node_waits_for_both(events):
    seen, dashboard, raylet = events
    node = object()
    options = {"include_dashboard": True, "raise_on_failure": True}
    head_start.start_api_server_in_background(dashboard, node, **options)
    head_start.start_ray_processes_then_wait(raylet, node)
    assert seen == ["raylet started", "dashboard up"]


def test_a_dashboard_that_fails_fails_the_start_once_the_raylet_is_up(events):
    seen, _, raylet = events

    def failing(node, **arguments):
        raise RuntimeError("dashboard died")

    node = object()
    head_start.start_api_server_in_background(failing, node)
    with pytest.raises(RuntimeError, match="dashboard died"):
        head_start.start_ray_processes_then_wait(raylet, node)
    assert seen == ["raylet started"]


@pytest.fixture
def node_methods(monkeypatch):
    """Ray's own Node methods, restored after the test whatever the hook did."""
    for name in ("start_api_server", "start_ray_processes", "start_raylet"):
        monkeypatch.setattr(Node, name, getattr(Node, name))
    return Node.start_api_server, Node.start_ray_processes


@pytest.fixture
def tmpdir_env(monkeypatch):
    monkeypatch.delenv("TMPDIR", raising=False)  # and whatever the hook sets is undone


def test_the_hook_changes_the_head_only_and_only_on_the_ray_it_was_read_for(
    node_methods, tmpdir_env, monkeypatch
):
    params = RayParams(temp_dir="/tmp/ray-9123-abcd", ray_client_server_port=10001)
    head_start.start_head(params, head=False)
    assert (Node.start_api_server, Node.start_ray_processes) == node_methods
    assert "TMPDIR" not in os.environ and params.ray_client_server_port == 10001
    monkeypatch.setattr("ray.__version__", "2.61.0")
    head_start.start_head(params, head=True)
    assert (Node.start_api_server, Node.start_ray_processes) == node_methods
    monkeypatch.setattr("ray.__version__", head_start.READ_FOR_RAY)
    head_start.start_head(params, head=True)
    assert Node.start_api_server.__name__ == "api_server_in_background"
    assert Node.start_ray_processes.__name__ == "ray_processes_then_wait"
    assert Node.start_raylet.__name__ == "start_raylet_with_agent_ports"


@pytest.mark.parametrize("hook", [head_start.start_head, head_start.lean_head])
def test_the_heads_processes_make_their_temp_files_in_its_temp_folder(
    node_methods, tmpdir_env, hook
):
    hook(RayParams(temp_dir=None, ray_client_server_port=None), head=True)  # global mode
    assert "TMPDIR" not in os.environ
    hook(RayParams(temp_dir="/tmp/ray-9123-abcd", ray_client_server_port=None), head=True)
    assert os.environ["TMPDIR"] == "/tmp/ray-9123-abcd"


@pytest.mark.parametrize("hook", [head_start.start_head, head_start.lean_head])
def test_the_head_starts_no_ray_client_server(node_methods, tmpdir_env, hook):
    params = RayParams(temp_dir=None, ray_client_server_port=9477)  # Ray on Spark's
    hook(params, head=True)
    assert params.ray_client_server_port is None


@pytest.mark.parametrize(("fast", "hook"), [(True, "start_head"), (False, "lean_head")])
def test_the_head_gets_the_hook_within_the_start_only(monkeypatch, fast, hook):
    monkeypatch.delenv("RAY_START_HOOK", raising=False)
    with head_start.head_start_hook(fast):
        given = os.environ["RAY_START_HOOK"]
    assert given == f"raybricks.cluster.compat.head_start.{hook}"
    assert "RAY_START_HOOK" not in os.environ


def test_a_start_hook_of_the_users_own_is_kept(monkeypatch, caplog):
    monkeypatch.setenv("RAY_START_HOOK", "mine.hook")
    with (
        caplog.at_level("INFO", logger="raybricks.cluster.compat.head_start"),
        head_start.head_start_hook(fast=True),
    ):
        assert os.environ["RAY_START_HOOK"] == "mine.hook"
    assert os.environ["RAY_START_HOOK"] == "mine.hook"
    assert "RAY_START_HOOK is set (mine.hook)" in caplog.text
