"""raybricks' Ray node launcher, in place of Ray on Spark's `start_ray_node`: it imports
nothing of Ray, keeps that script's names, and fast start swaps it into the commands
Ray on Spark runs. A real node's start and end under it: tests/cluster/test_node_launcher.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from benchmarks.processes import wait_for
from ray.util.spark import cluster_init

from raybricks.cluster import node_launcher
from raybricks.cluster.compat.fast_start import with_own_launcher
from tests.helpers import ended


def test_the_launcher_imports_nothing_of_ray():
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, raybricks.cluster.node_launcher; print(*sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "raybricks.cluster.node_launcher" in imported
    assert not [name for name in imported if name == "ray" or name.startswith("ray.")]


def test_the_launcher_reads_the_environment_ray_on_spark_sets():
    assert cluster_init.RAY_ON_SPARK_COLLECT_LOG_TO_PATH == node_launcher.COLLECT_LOG_TO_PATH
    assert cluster_init.RAY_ON_SPARK_START_RAY_PARENT_PID == node_launcher.START_RAY_PARENT_PID


def test_fast_start_swaps_only_rays_launcher_module():
    command = [sys.executable, "-m", "ray.util.spark.start_ray_node", "--head", "--block"]
    assert with_own_launcher(command) == [
        sys.executable,
        "-m",
        "raybricks.cluster.node_launcher",
        "--head",
        "--block",
    ]
    assert with_own_launcher(["ray", "stop"]) == ["ray", "stop"]


def test_the_nodes_temp_folder_is_its_last_temp_dir_argument_normalized():
    arguments = ["--block", "--temp-dir=/tmp/a", "--temp-dir=/tmp/ray-1//node-2/"]
    assert node_launcher.temp_dir_of(arguments) == Path("/tmp/ray-1/node-2")
    assert node_launcher.temp_dir_of(["--head", "--port=9123"]) is None


def launcher_beside(tmp_path: Path, ray_script: str | None) -> tuple[Path, dict[str, str]]:
    """This venv's Python linked elsewhere, with `ray_script` as the `ray` beside it (or
    none), and an environment in which it finds the launcher and nothing else."""
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.symlink_to(sys.executable)
    if ray_script is not None:
        (python.parent / "ray").write_text(ray_script)
    return python, {
        "PATH": "/usr/bin:/bin",
        "PYTHONHOME": sys.base_prefix,
        "PYTHONPATH": str(Path(node_launcher.__file__).parents[2]),
    }


def test_without_a_ray_script_it_says_so_in_one_line_and_makes_nothing(tmp_path):
    """A Python with no `ray` beside it and none on PATH (this venv's, linked elsewhere)."""
    python, env = launcher_beside(tmp_path, ray_script=None)
    temp_dir = tmp_path / "ray-9123-abcd"
    ended = subprocess.run(
        [python, "-m", node_launcher.__name__, "--block", f"--temp-dir={temp_dir}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ended.returncode == 1
    assert ended.stderr.strip().splitlines() == [
        f"no `ray` command beside {python} or on PATH for `ray start`"
    ]
    assert list(tmp_path.iterdir()) == [python.parent]


# As Ray's `ray` script, saying what `ray start` would have imported by then.
IMPORTS_OF_RAY_START = """
import json, sys
from ray.scripts.scripts import cli
imported = [name for name in ("ray.serve", "pandas", "fastapi") if name in sys.modules]
print(json.dumps({"imported": imported, "start": "start" in cli.commands, "argv": sys.argv}))
"""


def lean_ray_start(tmp_path: Path, **environment: str) -> dict:
    script = tmp_path / "ray"
    script.write_text(IMPORTS_OF_RAY_START)
    started = subprocess.run(
        [sys.executable, "-c", node_launcher.LEAN_RAY_START, script, "start", "--block"],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 0, started.stderr[-2000:]
    return json.loads(started.stdout)


def test_ray_start_imports_none_of_the_cli_commands_it_does_not_run(tmp_path):
    said = lean_ray_start(tmp_path)
    assert said == {
        "imported": [],
        "start": True,
        "argv": [str(tmp_path / "ray"), "start", "--block"],
    }


def test_a_ray_cli_that_needs_its_other_commands_gets_them(tmp_path):
    """A stand-in Ray whose CLI imports Ray Serve's commands unguarded: `ray start` runs."""
    stand_in = tmp_path / "stand-in"
    for package in ("ray", "ray/scripts", "ray/serve"):
        (stand_in / package).mkdir(parents=True)
        (stand_in / package / "__init__.py").write_text("")
    (stand_in / "ray" / "serve" / "scripts.py").write_text("")
    (stand_in / "ray" / "scripts" / "scripts.py").write_text(
        "import ray.serve.scripts\ncli = type('Cli', (), {'commands': {'start': None}})\n"
    )
    said = lean_ray_start(tmp_path, PYTHONPATH=str(stand_in))
    assert said["imported"] == ["ray.serve"] and said["start"] is True


REPORTING_RAY_START = """
import json, os
prefixes = ("RAY_raylet_client_", "RAY_GRACEFUL_SHUTDOWN_", "RAY_START_HOOK")
names = [name for name in os.environ if name.startswith(prefixes)]
json.dump({name: os.environ[name] for name in names}, open(os.environ["OUT"], "w"))
"""


def ray_start_settings(tmp_path: Path, **environment: str) -> dict[str, str]:
    """The socket and drain settings (`RAY_raylet_client_*`, `RAY_GRACEFUL_SHUTDOWN_*`)
    and the start hook `ray start` gets from a launcher run in `environment`."""
    python, env = launcher_beside(tmp_path, REPORTING_RAY_START)
    out = tmp_path / "env.json"
    launched = subprocess.run(
        [python, "-m", node_launcher.__name__, "--block", f"--temp-dir={tmp_path / 'ray-9125'}"],
        env={**env, **environment, "OUT": str(out)},
        timeout=30,
    )
    assert launched.returncode == 0
    return json.loads(out.read_text())


def test_ray_start_polls_its_sockets_and_its_drain_every_tenth_and_twentieth_of_a_second(
    tmp_path,
):
    assert ray_start_settings(tmp_path) == {
        "RAY_raylet_client_connect_timeout_milliseconds": "100",
        "RAY_raylet_client_num_connect_attempts": "100",
        "RAY_GRACEFUL_SHUTDOWN_POLL_INTERVAL_S": "0.05",
        "RAY_START_HOOK": "raybricks.cluster.compat.agent_ports.worker_node_start",
    }


def test_a_socket_poll_the_user_set_is_left_as_it_is(tmp_path):
    own = {"RAY_raylet_client_connect_timeout_milliseconds": "500"}
    assert ray_start_settings(tmp_path, **own) == {
        **own,
        **node_launcher.DRAIN_POLL,
        **node_launcher.START_HOOK,
    }


def test_a_drain_poll_the_user_set_is_left_as_it_is(tmp_path):
    own = {"RAY_GRACEFUL_SHUTDOWN_POLL_INTERVAL_S": "1"}
    assert ray_start_settings(tmp_path, **own) == {
        **node_launcher.SOCKET_CONNECT_POLL,
        **own,
        **node_launcher.START_HOOK,
    }


def test_a_start_hook_already_set_the_heads_or_the_users_is_left_as_it_is(tmp_path):
    own = {"RAY_START_HOOK": "raybricks.cluster.compat.head_start.start_head"}
    settings = ray_start_settings(tmp_path, **own)
    assert settings["RAY_START_HOOK"] == own["RAY_START_HOOK"]


DRAINING_RAY_START = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a worker node's drain, waiting on its head
raylet = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(os.environ["PIDS"], "w") as out:
    out.write(f"{os.getpid()} {raylet.pid}")
time.sleep(120)
"""


def test_a_ray_start_that_outlives_the_grace_is_killed_with_every_process_below_it(tmp_path):
    """A stand-in `ray` (beside the launcher's Python) that ignores the TERM, as a worker
    node's drain does, and has a child, as `ray start` has its raylet: both are gone
    once the launcher ends, and so is the node's folder."""
    python, env = launcher_beside(tmp_path, DRAINING_RAY_START)
    temp_dir = tmp_path / "ray-9124-abcd"
    assert left_after_a_stop(tmp_path, python, env, temp_dir) == []
    assert not temp_dir.exists() and not Path(f"{temp_dir}.lock").exists()


def left_after_a_stop(
    tmp_path: Path, python: Path, env: dict[str, str], temp_dir: Path, ready: Path | None = None
) -> list[int]:
    """Launch a node with the stand-in `ray` beside `python`, TERM the launcher once the
    stand-in has written the two PIDs it keeps (to $PIDS) and `ready` exists, and return
    those of the two still running once it has exited (killed then, not to outlive a
    failing test)."""
    pids = tmp_path / "pids"
    launcher = subprocess.Popen(
        [python, "-m", node_launcher.__name__, "--block", f"--temp-dir={temp_dir}"],
        env={**env, "PIDS": str(pids)},
    )
    started = wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, 30, 0.05)
    assert started and (ready is None or wait_for(ready.exists, 30, 0.05)), "no stand-in"
    launcher.terminate()
    assert launcher.wait(timeout=30) == node_launcher.TERMINATED
    left = [pid for pid in map(int, pids.read_text().split()) if not ended(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


# As `ray start` ends its node on a TERM: its processes one by one, the autoscaler
# monitor among them, and the dashboard's modules not at all (they end late by themselves).
STOPPING_RAY_START = """
import os, signal, subprocess, sys, time
monitor = subprocess.Popen([sys.executable, os.environ["MONITOR"]])
module = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])

def end_node(*_):
    monitor.terminate()
    monitor.wait()
    sys.exit(0)

signal.signal(signal.SIGTERM, end_node)
with open(os.environ["PIDS"], "w") as out:
    out.write(f"{monitor.pid} {module.pid}")
time.sleep(120)
"""
MONITOR = """
import os, signal, time
signal.signal(signal.SIGTERM, lambda *_: open(os.environ["MONITOR_TERMED"], "w").close())
open(os.environ["MONITOR_READY"], "w").close()
time.sleep(120)
"""


def test_a_stopped_node_has_its_monitor_killed_first_and_nothing_below_it_outlives_it(
    tmp_path,
):
    """A stand-in `ray start` with an autoscaler monitor (by its script's path, which on a
    TERM would spend a second) and a process it leaves running as it exits: the monitor
    is KILLed before `ray start` hears of the stop, and the other ends with the node."""
    python, env = launcher_beside(tmp_path, STOPPING_RAY_START)
    monitor = tmp_path / "ray" / node_launcher.AUTOSCALER_MONITORS[0].strip("/")
    monitor.parent.mkdir(parents=True)
    monitor.write_text(MONITOR)
    temp_dir = tmp_path / "ray-9126-abcd"
    ready, termed = tmp_path / "monitor-ready", tmp_path / "monitor-termed"
    env |= {"MONITOR": str(monitor), "MONITOR_READY": str(ready), "MONITOR_TERMED": str(termed)}
    assert left_after_a_stop(tmp_path, python, env, temp_dir, ready) == []
    assert not termed.exists(), "the monitor was TERMed, not killed first"
    assert not temp_dir.exists() and not Path(f"{temp_dir}.lock").exists()


# As a worker node runs: a session folder with logs, a raylet naming it.
RUNNING_RAY_START = """
import os, subprocess, sys, time
temp_dir = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--temp-dir=")][-1]
session = os.path.join(temp_dir, "session_latest")
os.makedirs(os.path.join(session, "logs"))
open(os.path.join(session, "logs", "raylet.out"), "w").write("raylet's log")
raylet = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(120)", f"--session-dir={session}"]
)
with open(os.environ["PIDS"], "w") as out:
    out.write(f"{os.getpid()} {raylet.pid}")
time.sleep(120)
"""


def janitors_of(temp_dir: Path) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            arguments = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if node_launcher.JANITOR in arguments and str(temp_dir) in arguments:
            found.append(int(cmdline.parent.name))
    return found


def test_a_launcher_killed_outright_leaves_its_janitor_to_clean_up_and_go(tmp_path):
    """The launcher and `ray start` KILLed together (as a driver killed outright takes
    its executors' Python workers and their process groups): the janitor ends the
    raylet left running, collects the node's logs, removes its folder and lock, and
    ends itself."""
    python, env = launcher_beside(tmp_path, RUNNING_RAY_START)
    temp_dir, logs, pids = tmp_path / "ray-9127-abcd-node-1", tmp_path / "logs", tmp_path / "pids"
    launcher = subprocess.Popen(
        [python, "-m", node_launcher.__name__, "--block", f"--temp-dir={temp_dir}"],
        env={**env, "PIDS": str(pids), node_launcher.COLLECT_LOG_TO_PATH: str(logs)},
    )
    assert wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, 30, 0.05)
    ray_start, raylet = map(int, pids.read_text().split())
    assert len(janitors_of(temp_dir)) == 1  # one, waiting while the node runs
    for pid in (launcher.pid, ray_start):
        os.kill(pid, signal.SIGKILL)
    launcher.wait(timeout=30)
    assert wait_for(lambda: not temp_dir.exists(), 30, 0.05), "the folder was left"
    assert wait_for(lambda: ended(raylet) and not janitors_of(temp_dir), 30, 0.05)
    assert not Path(f"{temp_dir}.lock").exists()
    (copied,) = logs.glob(f"{temp_dir.name}-logs/*/raylet.out")
    assert copied.read_text() == "raylet's log"


def test_a_node_that_ends_as_it_should_leaves_its_janitor_nothing_to_do(tmp_path):
    python, env = launcher_beside(tmp_path, DRAINING_RAY_START)
    temp_dir = tmp_path / "ray-9128-abcd-node-1"
    assert left_after_a_stop(tmp_path, python, env, temp_dir) == []
    assert wait_for(lambda: not janitors_of(temp_dir), 30, 0.05)
    assert not temp_dir.exists() and not Path(f"{temp_dir}.lock").exists()


def test_a_launcher_killed_between_its_folder_and_its_lock_leaves_the_janitor_the_lock(
    tmp_path,
):
    """Killed once its temp folder was removed but before its lock file was: the
    janitor removes the lock, so nothing of the node is left."""
    temp_dir = tmp_path / "ray-1-abc-node-1"
    lock = Path(f"{temp_dir}.lock")
    lock.touch()
    node_launcher.janitor(temp_dir)
    assert not lock.exists() and not temp_dir.exists()


def test_the_folder_s_users_are_found_but_never_its_janitor_nor_a_worker_node_s(tmp_path):
    """The head's folder `ray-1-abc`: a process naming a file in it, or it as a flag's
    value, uses it; its janitor, and a process of worker node `ray-1-abc-node-1`, do not."""
    temp_dir = tmp_path / "ray-1-abc"
    temp_dir.mkdir()
    Path(f"{temp_dir}.lock").touch()
    sleep = [sys.executable, "-c", "import time; time.sleep(30)"]
    processes = {
        "user": subprocess.Popen([*sleep, f"{temp_dir}/session_latest/sockets/raylet"]),
        "flag": subprocess.Popen([*sleep, f"--temp-dir={temp_dir}"]),
        "janitor": subprocess.Popen([*sleep, node_launcher.JANITOR, str(temp_dir)]),
        "worker node": subprocess.Popen([*sleep, f"{temp_dir}-node-1/session_latest"]),
    }
    try:
        using = set(node_launcher._processes_using(temp_dir))
        found = {name for name, process in processes.items() if process.pid in using}
        assert found == {"user", "flag"}
    finally:
        for process in processes.values():
            process.kill()
            process.wait()
