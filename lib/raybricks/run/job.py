"""One run, start to end: cluster up, the work (stages, or a command), cluster down,
report written. Whatever happens, the report is written and an exit code returned; as
each stage ends it is written again (and `on_progress` told), so a driver killed
outright leaves what its stages proved.

    report = run_stages(settings, platform, run_dir, stages)    # raybricks run
    report = run_command(settings, platform, run_dir, ["pytest", "-x"])   # raybricks exec
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import IO

import ray

from raybricks.cluster import signals
from raybricks.cluster.auth import auth_environment
from raybricks.cluster.lifecycle import ClusterInfo, live_worker_nodes, ray_on_spark
from raybricks.cluster.node_environment import metrics_exported_every
from raybricks.errors import Cancelled, ClusterError, ClusterLost, ExitCode
from raybricks.metrics.sampler import Sampler
from raybricks.paths import spark_uri, write_whole
from raybricks.platform import Platform
from raybricks.report.html import write_html
from raybricks.report.mlflow_run import log_to_mlflow
from raybricks.report.model import REPORT_FILE, Report, read_report, write_report
from raybricks.run.runner import Runner
from raybricks.settings import Settings
from raybricks.stages.base import Stage, StageContext

logger = logging.getLogger(__name__)

TIMELINE_FILE = "ray-timeline.json"
HANDOFF_FOLDER = "handoff"
MB = 1024 * 1024
COMMAND_NOT_RUNNABLE = 127  # as a shell says it

# The work done on a running cluster: fills in the report, returns the run's exit code.
Work = Callable[[ClusterInfo, Report], int]


def run_stages(
    settings: Settings,
    platform: Platform,
    run_dir: Path,
    stages: Mapping[str, type[Stage]],
    on_progress: Callable[[], None] = lambda: None,
) -> Report:
    """Run `stages` (the selected ones, by name, in order) on a cluster of their own."""
    report = _begun(settings, run_dir)
    sampler = _sampler(settings, report)

    def stage_ended() -> None:
        report.seconds = report.elapsed()  # how far it got, if nothing is written after
        report.metrics = sampler.series()
        write_report(report, run_dir)

    runner = Runner(
        stages.items(),
        settings.params_for,
        settings.stage_timeout_seconds,
        live_worker_nodes,
        settings.parallel_stages,
        settings.autoscaling,
        stage_ended,
        on_progress,  # once the stage's end is in the log
        clock=report.clock,
    )
    # The report lists every selected stage from the start (skipped until run), and the
    # worker nodes as the runner counts them.
    report.stages, report.worker_nodes = runner.results, runner.node_counts

    handoffs = _handoff_root(settings, run_dir)

    def work(cluster: ClusterInfo, report: Report) -> int:
        def context(stage: str) -> StageContext:
            folder = handoffs / stage
            return StageContext(
                settings.namespace,
                run_dir,
                cluster.address,
                spark=cluster.spark,
                handoff=folder,
                handoff_uri=spark_uri(folder, platform.on_databricks),
                keep_handoff=settings.data.keep_handoff,
                handoff_route=settings.data.route,
                to_ray_arrow_max_bytes=int(settings.data.to_ray_arrow_max_mb * MB),
                to_spark_arrow_max_bytes=int(settings.data.to_spark_arrow_max_mb * MB),
                stage=stage,
            )

        try:
            runner.run(context, cluster.head)
        finally:
            report.cluster["worker_nodes_seen"] = nodes_seen(runner.node_counts)
            with contextlib.suppress(OSError):  # empty once every stage's went
                handoffs.rmdir()
        began = report.elapsed()
        cluster.head.wait_for(partial(_save_timeline, run_dir))
        report.add_phase("Ray's timeline saved", began, report.elapsed())
        return ExitCode.PASSED if runner.passed else ExitCode.STAGE_FAILED

    # This driver takes no output from its workers (log_to_driver=False): no log monitors.
    return _run(settings, platform, report, run_dir, work, sampler, stream_worker_logs=False)


def run_command(
    settings: Settings,
    platform: Platform,
    run_dir: Path,
    argv: list[str],
    output: tuple[IO[str] | None, IO[str] | None] = (None, None),
) -> Report:
    """Run `argv` as a driver of a cluster of its own (see `command_on`), its stdout
    and stderr to `output` (None: this process's)."""
    report = _begun(settings, run_dir)
    return _run(
        settings, platform, report, run_dir, command_on(argv, output), _sampler(settings, report)
    )


def command_on(
    argv: list[str], output: tuple[IO[str] | None, IO[str] | None] = (None, None)
) -> Work:
    """`exec`'s work: `argv` as a driver of the cluster, writing to `output`. It gets the
    address, the auth mode and token, and `RAY_NAMESPACE` (Ray Client reads it; a plain
    `ray.init()` does not, so pass `namespace=os.environ["RAY_NAMESPACE"]`); its exit
    code is the run's."""

    def work(cluster: ClusterInfo, report: Report) -> int:
        env = {
            **os.environ,
            **auth_environment(),
            "RAY_ADDRESS": cluster.address,
            "RAY_NAMESPACE": cluster.namespace,
        }
        report.command = {"argv": argv, "exit_code": None}
        logger.info("running the command against %s", cluster.address)  # the first line named it
        try:
            with _child(argv, env, output) as child:
                cluster.head.wait_for(child.wait)
                code = child.returncode
        except OSError as exc:
            logger.error("cannot run %r: %s", argv[0], exc.strerror)
            code = COMMAND_NOT_RUNNABLE
        report.command["exit_code"] = code
        return code

    return work


@contextmanager
def reported(settings: Settings, run_dir: Path) -> Iterator[None]:
    """Within this block a cancel that ends the run before its own handling has written
    the report (between its run folder and its first report) still leaves one:
    cancelled, nothing started. A report that says the run ended is kept."""
    try:
        yield
    except Cancelled as exc:
        ended = (run_dir / REPORT_FILE).exists() and read_report(run_dir).status != "running"
        if not ended:
            report = _begun(settings, run_dir)
            _ended(report, exc)
            write_report(report, run_dir)
        raise


def _run(
    settings: Settings,
    platform: Platform,
    report: Report,
    run_dir: Path,
    work: Work,
    sampler: Sampler,
    stream_worker_logs: bool = True,
) -> Report:
    write_report(report, run_dir)
    marks: dict[str, float] = {}  # when the cluster was ready, and the work ended

    def started(cluster: ClusterInfo) -> None:
        report.cluster = cluster.as_dict()
        marks["ready"] = ready = report.elapsed()
        ray_began = ready - cluster.startup_seconds
        report.add_phase("Spark start", ray_began - cluster.spark_startup_seconds, ray_began)
        report.add_phase("Ray cluster start", ray_began, ready)

    try:
        with (
            signals.handled_by(signals.cancel),
            metrics_exported_every(sampler.every_seconds),
            ray_on_spark(
                settings.cluster, platform, settings.namespace, run_dir, stream_worker_logs, started
            ) as cluster,
        ):
            try:
                with _sampled(sampler, cluster, report, run_dir):
                    code = work(cluster, report)
            except (Cancelled, KeyboardInterrupt, ClusterLost) as exc:
                # Written before teardown: Ray can end the process during a disconnect
                # that comes right after its connect (or a minute after losing the
                # head), and the report must say why the run ended.
                _ended(report, exc)
                write_report(report, run_dir)
                raise
            finally:
                marks["work"] = report.elapsed()
    except (Cancelled, KeyboardInterrupt) as exc:
        _ended(report, exc)
        logger.warning("run %s; the cluster was shut down", report.error)
    except ClusterError as exc:
        logger.error("%s", exc, exc_info=True)
        _ended(report, exc)
    except Exception as exc:
        logger.exception("run failed")
        _ended(report, exc)
    else:
        report.finish("passed" if code == ExitCode.PASSED else "failed", code)
    finally:
        if report.status == "running":  # something beyond Exception, e.g. SystemExit
            report.finish("failed", ExitCode.STAGE_FAILED)
        _teardown_phases(report, marks)
        write_report(report, run_dir)
        _write_html(report, run_dir)
        log_to_mlflow(report, run_dir, settings.mlflow)
    return report


@contextmanager
def _sampled(
    sampler: Sampler, cluster: ClusterInfo, report: Report, run_dir: Path
) -> Iterator[None]:
    """The cluster's metrics sampled while the work runs; the series go in the report,
    the last scrapes in `metrics.prom`, while the cluster still runs."""
    try:
        with sampler.running(head=cluster.head):
            yield
    finally:
        report.metrics = sampler.series()
        try:
            sampler.write_last_scrapes(run_dir)
        except Exception:  # the series are in the report; the file is for other tools
            logger.warning("could not write the nodes' last metrics", exc_info=True)


def _teardown_phases(report: Report, marks: dict[str, float]) -> None:
    """A command's phase (exec's: its stages have bars of their own) and the teardown,
    from the work's end to the report's."""
    if "ready" not in marks or "work" not in marks:
        return
    if report.command is not None:
        report.add_phase("command", marks["ready"], marks["work"])
    report.add_phase("teardown", marks["work"], report.seconds)


def _handoff_root(settings: Settings, run_dir: Path) -> Path:
    """Where this run's stages hand data over, a folder per stage: the run folder's
    `handoff/`, or one for this run under `data.handoff_root`."""
    root = settings.data.handoff_root
    return Path(root) / run_dir.name if root else run_dir / HANDOFF_FOLDER


def _begun(settings: Settings, run_dir: Path) -> Report:
    return Report.begin(run_dir.name, settings.model_dump(mode="json"))


def _sampler(settings: Settings, report: Report) -> Sampler:
    """The run's sampler of its cluster's metrics, on the report's clock."""
    return Sampler(settings.metrics.sample_seconds, report.clock)


def _write_html(report: Report, run_dir: Path) -> None:
    try:
        write_html(report, run_dir)
    except Exception:  # the page is for people; report.json is the record
        logger.warning("could not write report.html", exc_info=True)


def nodes_seen(samples: list[list[float]]) -> dict[str, int]:
    """The fewest, the most and the last count of live Ray worker nodes seen."""
    counts = [int(count) for _, count in samples] or [0]
    return {"min": min(counts), "peak": max(counts), "end": counts[-1]}


def _ended(report: Report, exc: BaseException) -> None:
    """Record on the report how `exc` ended the run."""
    if isinstance(exc, (Cancelled, KeyboardInterrupt)):
        cancel = exc if isinstance(exc, Cancelled) else Cancelled(signal.SIGINT)
        report.error = f"cancelled by {cancel}"
        report.finish("cancelled", cancel.exit_code)
    elif isinstance(exc, ClusterError):
        report.error = str(exc)
        report.finish("failed", ExitCode.CLUSTER_FAILED)
    else:
        report.error = f"{type(exc).__name__}: {exc}"
        report.finish("failed", ExitCode.STAGE_FAILED)


@contextmanager
def _child(
    argv: list[str], env: dict[str, str], output: tuple[IO[str] | None, IO[str] | None]
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process that is ended (TERM, then KILL) if the run stops before it does."""
    child = subprocess.Popen(argv, env=env, stdout=output[0], stderr=output[1])
    try:
        yield child
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _save_timeline(run_dir: Path) -> None:
    """Ray's timeline, written whole as every file of the run folder; encoded in one go
    (Ray's own writer streams it through json's pure-Python encoder: seconds for a
    few MB)."""
    try:
        events = ray.timeline()
        write_whole(run_dir / TIMELINE_FILE, [json.dumps(events).encode()])
    except Exception:
        logger.warning("could not save Ray's timeline", exc_info=True)
