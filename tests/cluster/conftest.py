"""The cluster tier: a real local Spark (`local-cluster`, several executor JVMs) and a
real Ray-on-Spark cluster, one per test session.

Every cluster here starts under a HOME that holds a stray `~/.ray/auth_token`, as a
plain local `ray.init()` leaves behind: the explicit auth mode must make it harmless.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from benchmarks.processes import marked_env, wait_for
from benchmarks.standalone import StandaloneCluster

from raybricks.cluster import jvm_archive
from raybricks.cluster.lifecycle import ClusterInfo, ray_on_spark
from raybricks.cluster.spark import LOCAL_SPARK_JVM
from raybricks.platform import Platform
from raybricks.settings import ClusterSettings
from tests.cluster.runs import BIN, finished, only_run_dir, report_of

STRAY_TOKEN = "stray-token-left-by-an-earlier-local-ray-init"
NAMESPACE = "raybricks-tests"
HEALTH_CHECK_PERIOD = "RAY_health_check_period_ms"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.cluster)
        if "ray_cluster" in getattr(item, "fixturenames", ()):
            # One worker of pytest-xdist runs them all: one session cluster, not two.
            item.add_marker(pytest.mark.xdist_group("session-cluster"))
        elif "standalone_spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("standalone"))
        elif "full_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("full-run"))


@pytest.fixture(scope="session")
def stray_token_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("home")
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(STRAY_TOKEN)
    names = ("HOME", "XDG_CACHE_HOME", "RAY_USAGE_STATS_ENABLED", HEALTH_CHECK_PERIOD)
    saved = {name: os.environ.get(name) for name in names}
    # As every run of the tests: nothing reported to Ray's usage stats (and no actor of
    # Ray Data's to collect them on the session's cluster).
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # The head's GCS (which inherits it) declares a killed node dead after 5 checks 1 s
    # apart, not Ray's 3 s apart: the node-loss test waits 5 s, not 15. Users keep Ray's.
    os.environ[HEALTH_CHECK_PERIOD] = "1000"
    # The Spark JVMs' class archive stays in the user's cache, shared by every run.
    os.environ["XDG_CACHE_HOME"] = str(jvm_archive.cache_home())
    os.environ["HOME"] = str(home)  # before any JVM or Ray node inherits it
    yield home
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@dataclass(frozen=True)
class ClusterUnderTest:
    info: ClusterInfo
    log_dir: Path


@pytest.fixture(scope="session")
def ray_cluster(
    stray_token_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterUnderTest]:
    """The local default cluster (local-cluster[3,1,1024], two Ray worker nodes), as
    `raybricks run` starts it."""
    log_dir = tmp_path_factory.mktemp("session-run")
    # Its Spark lives as long as the session: were it to train the JVMs' class archives,
    # every whole run would start without them until the end (one run trains at a time).
    settings = ClusterSettings(spark_class_archive=jvm_archive.trained(LOCAL_SPARK_JVM))
    with ray_on_spark(
        settings, Platform.of(settings), NAMESPACE, log_dir, stream_worker_logs=False
    ) as info:
        yield ClusterUnderTest(info, log_dir)
    # Checked once the session's cluster is shut down (a failure here fails the run):
    assert "RAY_ADDRESS" not in os.environ
    assert wait_for(lambda: list(log_dir.glob("ray-*-logs/*/raylet*.out")), timeout=60), (
        f"Ray's node logs never landed under {log_dir}"
    )


@pytest.fixture(scope="session")
def standalone_spark() -> Iterator[StandaloneCluster]:
    """A Spark standalone master and three workers (separate JVMs, one core each: two
    for Ray's worker nodes, one for Spark's own) on loopback, up for the session; stopped
    however the session ends."""
    cluster = StandaloneCluster(workers=3, cores=1, memory="2g")
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@dataclass(frozen=True)
class FullRun:
    done: subprocess.CompletedProcess[str]
    run_dir: Path
    mark: str

    def evidence(self, stage: str) -> dict[str, Any]:
        """What `stage` recorded in the run's report, having passed."""
        (result,) = [s for s in report_of(self.run_dir)["stages"] if s["name"] == stage]
        assert result["status"] == "passed", result["error"]
        return dict(result["evidence"])


def whole_run(target: str, home: Path, folder: Path, *flags: object) -> FullRun:
    """`raybricks run --target <target> [flags]`, every stage, in its own process."""
    environment, mark = marked_env(HOME=str(home), RAY_USAGE_STATS_ENABLED="0")
    log_root = folder / "runs"
    command = [BIN / "raybricks", "run", "--target", target, "--log-path", log_root, *flags]
    done = finished(command, environment)
    return FullRun(done, only_run_dir(log_root) if log_root.is_dir() else log_root, mark)


@pytest.fixture(scope="session")
def full_run(stray_token_home: Path, tmp_path_factory: pytest.TempPathFactory) -> FullRun:
    """`raybricks run --target local-gpu`: the whole job as `make run` starts it, on worker
    nodes of one fake GPU each (scheduling-only, as Ray's own tests fake them), once for the
    tests that read it (its console, report, logs, and each stage's evidence). Without
    GPUs the job differs only in gpu_actors skipping itself, which the session cluster
    (the local default, CPUs only) shows."""
    return whole_run("local-gpu", stray_token_home, tmp_path_factory.mktemp("full-run"))
