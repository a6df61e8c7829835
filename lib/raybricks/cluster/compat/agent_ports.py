"""A fast-started node's raylet starts without waiting for its agents, and the cluster
waits for all of them at once.

As it starts, a raylet waits for its dashboard agent and its runtime env agent to write
the ports they bound into the node's session folder, 15 s at most per port (a fixed wait
in Ray 2.60), and then aborts, taking the node with it; `ray start` itself waits for the
metrics export port the same way. An agent's imports took 1.3 s on an idle machine here,
and 18 s beside a busy test session: the head died, and the run started again with
Ray's own start. Here each of those ports is picked before the node starts (kept from
other raybricks clusters until bound, as the ports Ray on Spark picks), given to the
agents, and written where the raylet and `ray start` look for it, before the raylet
starts: both go on at once, and reach the agents once they are up. The cluster is ready
once every node's agent serves its metrics (`wait_for_agents`), as with Ray's own start,
but the agents start beside the rest of the cluster, not as each node's raylet waits.

Each node's `ray start` runs it from its start hook: the head's (`head_start.start_head`),
a worker node's launcher's (`worker_node_start`), on the Ray this was read for only.
"""

from __future__ import annotations

import time
from typing import Any

import ray

from raybricks.cluster import compat  # `compat` names this module's Ray names as needed
from raybricks.cluster.sockets import listening

# `RayParams` attributes, by the name of the port file each agent writes (`ray._raylet`).
AGENT_PORTS = {
    "METRICS_AGENT_PORT_NAME": "metrics_agent_port",
    "DASHBOARD_AGENT_LISTEN_PORT_NAME": "dashboard_agent_listen_port",
    "RUNTIME_ENV_AGENT_PORT_NAME": "runtime_env_agent_port",
    "METRICS_EXPORT_PORT_NAME": "metrics_export_port",
}
# Where the agents' ports are picked: where Ray on Spark picks the head's own ports, and
# a worker node's dashboard agent port (below the 1000-port ranges of its workers, from
# 20000); the node's own worker ports left out (Ray refuses an agent one of them).
HEAD_PORTS = (9000, 10000)
WORKER_NODE_PORTS = (10002, 19999)
RAYS_WORKER_PORTS = (10002, 19999)  # a node's, where none are given
# How long a start waits for the agents once every node has joined (they start beside
# the rest of the cluster, and the run's metrics come from them), and how often it looks.
AGENTS_WAIT_SECONDS = 60.0
AGENTS_POLL_SECONDS = 0.1


def worker_node_start(ray_params: Any, head: bool) -> None:
    """`RAY_START_HOOK(ray_params, head)` of a worker node's `ray start`."""
    if not head:
        agents_known_in_advance(ray_params, head=False)


def agents_known_in_advance(ray_params: Any, head: bool) -> None:
    """On the Ray read for: a port picked for each agent's port not given, and the node
    made to write them all into its session folder as its raylet starts. This process
    starts one node, so Ray's class is patched in place."""
    if ray.__version__ != compat.READ_FOR_RAY:
        return
    from ray import _raylet
    from ray._private.node import Node

    from raybricks.cluster.compat.ports import reserve_unused_port

    host = ray_params.node_ip_address or "127.0.0.1"
    workers = _worker_ports(ray_params)
    picked_from = HEAD_PORTS if head else WORKER_NODE_PORTS
    for attribute in AGENT_PORTS.values():
        if not getattr(ray_params, attribute, None):
            port = reserve_unused_port(host, *picked_from, exclude_list=workers)
            setattr(ray_params, attribute, port)
    start_raylet = Node.start_raylet

    def start_raylet_with_agent_ports(node: Any, *arguments: Any, **keywords: Any) -> Any:
        for name, attribute in AGENT_PORTS.items():
            port = getattr(node._ray_params, attribute)
            file_name = getattr(_raylet, name)
            _raylet.persist_port(node._session_dir, node._node_id, file_name, port)  # type: ignore[attr-defined]
        return start_raylet(node, *arguments, **keywords)

    Node.start_raylet = start_raylet_with_agent_ports  # type: ignore[method-assign, assignment]


def _worker_ports(ray_params: Any) -> list[int]:
    """The ports the node's workers may take, as `ray start` was given them."""
    if ray_params.worker_port_list:
        return [int(port) for port in str(ray_params.worker_port_list).split(",")]
    low = ray_params.min_worker_port or RAYS_WORKER_PORTS[0]
    high = ray_params.max_worker_port or RAYS_WORKER_PORTS[1]
    return list(range(low, high + 1))


def wait_for_agents(timeout: float = AGENTS_WAIT_SECONDS) -> list[str]:
    """Until every live node's dashboard agent serves its metrics (its port accepts a
    connection), as Ray's own start waited for it; at most `timeout` seconds. The IDs
    of the nodes whose agents were not up by then."""
    deadline = time.monotonic() + timeout
    waiting = {
        node["NodeID"]: (node["NodeManagerAddress"], node["MetricsExportPort"])
        for node in ray.nodes()
        if node["Alive"] and node.get("MetricsExportPort")
    }
    while waiting:
        waiting = {node: address for node, address in waiting.items() if not listening(*address)}
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(AGENTS_POLL_SECONDS)
    return sorted(waiting)
