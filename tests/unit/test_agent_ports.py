"""A fast-started node's raylet starts without waiting for its agents: their ports are
picked before the node starts and written where the raylet looks for them, so agents
slower to import than Ray's fixed 15 s wait no longer take the node down."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import ray
from benchmarks.processes import wait_for
from ray import _raylet
from ray._private.node import Node
from ray._private.parameter import RayParams

from raybricks.cluster import node_launcher
from raybricks.cluster.compat import agent_ports
from raybricks.cluster.compat.ports import reserve_unused_port
from raybricks.cluster.sockets import listening


@pytest.fixture
def start_raylet(monkeypatch):
    """Ray's own `Node.start_raylet` replaced by one that records the port files there
    as it is called; restored after the test whatever the hook did."""
    seen: dict[str, str] = {}

    def recording(node, *arguments, **keywords):
        seen.update({p.name: p.read_text() for p in Path(node._session_dir).iterdir()})

    monkeypatch.setattr(Node, "start_raylet", recording)
    return seen


def test_each_agent_port_not_given_is_picked_and_all_are_written_before_the_raylet(
    start_raylet, tmp_path
):
    params = RayParams(
        node_ip_address="127.0.0.1",
        dashboard_agent_listen_port=10500,  # Ray on Spark's, kept
        min_worker_port=10002,
        max_worker_port=15000,  # a range of its own overlapping the one picked from
    )
    agent_ports.worker_node_start(params, head=False)
    attributes = agent_ports.AGENT_PORTS.values()
    ports = {attribute: getattr(params, attribute) for attribute in attributes}
    assert ports.pop("dashboard_agent_listen_port") == 10500
    assert len(set(ports.values())) == 3
    assert all(15000 < port <= agent_ports.WORKER_NODE_PORTS[1] for port in ports.values())
    ports["dashboard_agent_listen_port"] = 10500
    node = SimpleNamespace(_ray_params=params, _session_dir=str(tmp_path), _node_id="ab" * 28)
    Node.start_raylet(node)
    assert {name: int(text) for name, text in start_raylet.items()} == {
        f"{getattr(_raylet, name)}_{'ab' * 28}": ports[attribute]
        for name, attribute in agent_ports.AGENT_PORTS.items()
    }


def test_a_heads_agents_get_ports_where_ray_on_spark_picks_the_heads_own(start_raylet):
    params = RayParams(node_ip_address="127.0.0.1")  # its workers take Ray's 10002-19999
    agent_ports.agents_known_in_advance(params, head=True)
    low, high = agent_ports.HEAD_PORTS
    assert params.dashboard_agent_listen_port == 52365  # Ray's own default, kept
    picked = [params.metrics_agent_port, params.runtime_env_agent_port, params.metrics_export_port]
    assert len(set(picked)) == 3 and all(low <= port <= high for port in picked)


def test_a_head_or_another_ray_is_left_as_it_is(start_raylet, monkeypatch):
    params = RayParams(node_ip_address="127.0.0.1")
    agent_ports.worker_node_start(params, head=True)  # the head's own hook does it
    monkeypatch.setattr("ray.__version__", "2.61.0")
    agent_ports.worker_node_start(params, head=False)
    assert Node.start_raylet.__name__ == "recording"
    assert params.metrics_agent_port is None and params.runtime_env_agent_port is None


# Every agent of the node (the dashboard's, the runtime env's) sleeps as it starts.
SLOW_AGENTS = "import sys, time\nif 'agent' in sys.argv[0]:\n    time.sleep({seconds})\n"


@pytest.mark.skipif(ray.__version__ != agent_ports.compat.READ_FOR_RAY, reason="fast start's Ray")
def test_a_head_whose_agents_take_longer_than_rays_wait_starts_and_runs_a_task(tmp_path):
    """Agents 20 s late to start: without their ports written first the raylet aborts
    after 15 s and `ray start` fails; here the node is up within seconds and runs a
    task while its agents still import."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SLOW_AGENTS.format(seconds=20))
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-agents-", dir="/tmp"))  # short socket paths
    port = reserve_unused_port("127.0.0.1", *agent_ports.HEAD_PORTS)  # as Ray on Spark's head
    # The mode explicit, as raybricks gives it: a stray ~/.ray/auth_token (the cluster
    # tier's HOME has one) would turn token auth on in the head alone.
    plain = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    environment = {
        **plain,
        "PYTHONPATH": str(tmp_path / "site"),
        "RAY_START_HOOK": "raybricks.cluster.compat.head_start.start_head",
    }
    head = subprocess.Popen(
        [
            *(sys.executable, "-m", node_launcher.__name__, "--head", f"--port={port}"),
            *("--block", "--include-dashboard=false", f"--temp-dir={temp_dir}"),
            "--num-cpus=1",
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    driver = (
        "import ray, sys\n"
        "ray.init(address=sys.argv[1], logging_level='ERROR')\n"
        "print(ray.get(ray.remote(lambda: 42).remote()))\n"
    )
    try:
        assert wait_for(lambda: listening("127.0.0.1", port) or head.poll() is not None, timeout=60)
        assert head.poll() is None, "the head ended before its GCS listened"
        clock = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", driver, f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=30,
            env=plain,
        )
        answered_after = time.monotonic() - clock
        assert done.stdout.strip() == "42", done.stderr[-2000:]
        assert answered_after < 15, "the task waited for the agents"
        assert head.poll() is None, "the head ended"
    finally:
        head.terminate()
        head.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)
        Path(f"{temp_dir}.lock").unlink(missing_ok=True)
