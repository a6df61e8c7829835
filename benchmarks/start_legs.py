"""Where a fast start's seconds go, leg by leg, read off one run folder's logs: the
driver's (raybricks' own lines) and the nodes' (Ray's, each line stamped, copied into
the run folder as the nodes exit). All on one machine, so on one clock."""

import re
from datetime import datetime
from itertools import pairwise
from pathlib import Path

STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}")

# (leg, where it ends): each leg runs from the previous one's end; the first from the
# driver's "starting Ray on Spark". The executors' check runs beside the first legs.
LEGS = (
    "Ray on Spark sizing the cluster (one-task Spark jobs) until it launches the head",
    "the head's `ray start` until its GCS is up",
    "the head's raylet until it registers (its agents start beside it)",
    "until the autoscaler asks for the worker nodes (its 1 s loop)",
    "until the worker nodes' raylets start (Spark tasks, the launcher, `ray start`)",
    "until the last of them registers",
    "until the driver is connected, every node's agents are up, and the cluster is ready",
)
CHECK = "the executors' check (beside the legs above)"


def _first(path: Path, text: str = "", last: bool = False) -> datetime:
    found = [
        datetime.strptime(stamp[0], "%Y-%m-%d %H:%M:%S,%f")
        for line in path.read_text(errors="replace").splitlines()
        if text in line and (stamp := STAMP.search(line))
    ]
    if not found:
        raise ValueError(f"no stamped line with {text!r} in {path}")
    return found[-1] if last else found[0]


def start_legs(run_dir: Path) -> dict[str, float]:
    """Each leg's seconds in the fast-started run in `run_dir`."""
    driver = run_dir / "driver.log"
    (head,) = [p for p in run_dir.glob("ray-*-logs/*") if "-node-" not in p.parent.name]
    workers = list(run_dir.glob("ray-*-node-*-logs/*/raylet.out"))
    marks = [
        _first(driver, "starting Ray on Spark"),
        _first(driver, "Ray head hostname"),
        _first(head / "gcs_server.out"),
        _first(head / "gcs_server.out", "Registering new node"),
        _first(head / "monitor.log", "new nodes for launch"),
        max(_first(raylet) for raylet in workers),
        _first(head / "gcs_server.out", "Registering new node", last=True),
        _first(driver, "cluster ready at"),
    ]
    spans = [(end - start).total_seconds() for start, end in pairwise(marks)]
    legs = dict(zip(LEGS, spans, strict=True))
    check = re.search(r"warmed in ([\d.]+) s", driver.read_text())
    return {**legs, CHECK: float(check[1]) if check else float("nan")}
