"""The `raybricks` command: run, exec, stages, validate, report.

This module and the job entrypoints are the only places that print or install log
handlers; the library only logs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from raybricks import __version__
from raybricks.cluster import signals
from raybricks.cluster.ray_version import check_ray_in_range
from raybricks.console import LOG_FORMAT, RunConsole
from raybricks.errors import BadInput, Cancelled, ExitCode
from raybricks.paths import new_run_id
from raybricks.report.model import DRIVER_LOG, Report, read_report
from raybricks.report.summary import summary
from raybricks.run.folder import RunFolder
from raybricks.settings import FLAG_SETTINGS, TARGETS, Settings, load_settings
from raybricks.stages.progress import is_live_only
from raybricks.stages.registry import Catalog, stage_catalog

if TYPE_CHECKING:
    from raybricks.platform import Platform

logger = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    """Bad flags end in one line on stderr and exit 2, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        raise BadInput(f"{message}; see '{self.prog} --help'")


def main(argv: list[str] | None = None, conf_dir: Path | None = None) -> int:
    # A cancel before a run's cluster starts, or after its report is written, ends the
    # command as one during the run does (the run handles those itself).
    with signals.handled_by(signals.cancel):
        try:
            args = _parser().parse_args(argv)
            args.console = _console(getattr(args, "verbose", False))
            return int(args.handler(args, conf_dir))
        except BadInput as exc:
            print(f"raybricks: {exc}", file=sys.stderr)
            return ExitCode.BAD_INPUT
        except Cancelled as exc:
            print(f"raybricks: cancelled by {exc}", file=sys.stderr)
            return exc.exit_code


def _run(args: argparse.Namespace, conf_dir: Path | None) -> int:
    catalog = stage_catalog()
    settings = _settings(args, conf_dir, catalog)  # bad input is answered before Ray loads
    check_ray_in_range()
    selected = {name: catalog[name].load() for name in settings.stages}
    from raybricks.run.job import reported, run_stages  # imports Ray and Spark: a run starts

    platform = _checked_platform(settings)
    if platform.spark_master is not None:  # raybricks starts Spark: its size is known
        from raybricks.cluster.arguments import check_spark_keeps_a_slot

        running_spark = [name for name in settings.stages if catalog[name].runs_spark_jobs]
        check_spark_keeps_a_slot(platform.spark_master, settings.cluster, running_spark)
    what = f"stages {','.join(settings.stages)}"
    with (
        _run_folder(settings, platform, what) as folder,
        reported(settings, folder.path),
        args.console.run_output_to(folder.driver_log.fd),
    ):
        report = run_stages(settings, platform, folder.path, selected, folder.save_driver_log)
    return _finish(report, folder.path, args.console)


def _exec(args: argparse.Namespace, conf_dir: Path | None) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise BadInput("exec needs a command: raybricks exec [run flags] -- CMD ARGS...")
    settings = _settings(args, conf_dir)
    check_ray_in_range()
    from raybricks.run.job import reported, run_command  # imports Ray and Spark: a run starts

    platform = _checked_platform(settings)
    console = args.console
    with (
        _run_folder(settings, platform, f"command {shlex.join(command)}") as folder,
        reported(settings, folder.path),
        console.run_output_to(folder.driver_log.fd),
    ):
        # The command's own output goes to the console untouched: it is the user's.
        output = console.command_output()
        report = run_command(settings, platform, folder.path, command, output)
    return _finish(report, folder.path, args.console)


def _stages(args: argparse.Namespace, conf_dir: Path | None) -> int:
    catalog = stage_catalog()
    width = max(map(len, catalog))
    for name, entry in catalog.items():
        print(f"{name.ljust(width)}  {entry.load().summary}  [{entry.origin}]")
    return ExitCode.PASSED


def _validate(args: argparse.Namespace, conf_dir: Path | None) -> int:
    settings = _settings(args, conf_dir)
    print(json.dumps(settings.model_dump(mode="json"), indent=2))
    print(f"settings for target '{settings.target}' are valid", file=sys.stderr)
    return ExitCode.PASSED


def _report(args: argparse.Namespace, conf_dir: Path | None) -> int:
    if args.run_dir:
        report = read_report(Path(args.run_dir))
        if args.html:
            from raybricks.report.html import write_html

            print(write_html(report, Path(args.run_dir)))
        else:
            args.console.out.print(summary(report))
        return ExitCode.PASSED
    if args.run_id is None and not (args.job and args.latest):
        raise BadInput("report needs RUN_DIR, --run-id N, or --job NAME --latest")
    from raybricks.report import workspace  # the SDK: only when a workspace is asked

    try:
        w = workspace.client(args.profile)
        run = workspace.find_run(w, run_id=args.run_id, job_name=args.job)
        report = workspace.fetch_report(w, run)
    except workspace.WorkspaceError as exc:
        print(f"raybricks: {exc}", file=sys.stderr)
        return ExitCode.STAGE_FAILED
    args.console.out.print(summary(report, driver_gone=run.ended))
    print(f"run page: {run.url}")
    return ExitCode.PASSED


def _checked_platform(settings: Settings) -> Platform:
    """Where this run runs; on a Databricks cluster, refused (BadInput) where Ray on
    Spark cannot run."""
    from raybricks.databricks.driver import checked_platform  # reads Spark's conf

    return checked_platform(settings)


def _doctor(args: argparse.Namespace, conf_dir: Path | None) -> int:
    from raybricks.databricks.doctor import examine
    from raybricks.report import workspace

    settings = _settings(args, conf_dir, check_log_path=False)  # the cluster's, not ours
    try:
        verdict = examine(workspace.client(args.profile), args.cluster_id, settings.cluster)
    except workspace.WorkspaceError as exc:
        print(f"raybricks: {exc}", file=sys.stderr)
        return ExitCode.STAGE_FAILED
    for refusal in verdict.refusals:
        print(f"refused: {refusal}")
    for warning in verdict.warnings:
        print(f"warning: {warning}")
    if verdict.refusals:
        return ExitCode.BAD_INPUT
    print(f"cluster {args.cluster_id} can run Ray on Spark")
    return ExitCode.PASSED


def _settings(
    args: argparse.Namespace,
    conf_dir: Path | None,
    catalog: Catalog | None = None,
    check_log_path: bool = True,
) -> Settings:
    overrides = {key: getattr(args, _dest(flag), None) for flag, key in FLAG_SETTINGS.items()}
    catalog = catalog or stage_catalog()
    return load_settings(args.target, args.conf, overrides, conf_dir, catalog, check_log_path)


@contextmanager
def _run_folder(settings: Settings, platform: Platform, what: str) -> Iterator[RunFolder]:
    """The run's folder, made now, with this process's log going to its driver log."""
    run_id = new_run_id(job_run_id=settings.job_run_id)
    with (
        RunFolder.created(settings.log_root, run_id, platform.temp_root) as folder,
        open(os.dup(folder.driver_log.fd), "a", buffering=1) as log,
    ):
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.setLevel(logging.DEBUG)
        handler.addFilter(lambda record: not is_live_only(record))  # a terminal's alone
        logging.getLogger().addHandler(handler)
        logging.getLogger("raybricks").setLevel(logging.DEBUG)
        c = settings.cluster
        logger.info(
            "run %s: target %s, %s; Ray on %s, %s worker nodes%s",
            run_id,
            settings.target,
            what,
            platform.describe_spark(),
            c.max_worker_nodes
            if not c.min_worker_nodes
            else f"{c.min_worker_nodes}-{c.max_worker_nodes}",
            f" of {c.num_cpus_worker_node} CPU(s)" if c.num_cpus_worker_node else "",
        )
        try:
            yield folder
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()


def _finish(report: Report, run_dir: Path, console: RunConsole) -> int:
    console.out.print(summary(report, with_cluster=False))
    if report.status != "passed":
        print(f"tracebacks and Ray's and Spark's own output: {run_dir / DRIVER_LOG}")
    print(f"run folder: {run_dir}")
    code = report.exit_code if report.exit_code is not None else ExitCode.STAGE_FAILED
    from raybricks.cluster.compat.connection import exit_if_left_connected

    exit_if_left_connected(code)
    return code


_installed: list[RunConsole] = []


def _console(verbose: bool) -> RunConsole:
    """This command's console; one per process (tests call `main` many times)."""
    if _installed:
        _installed[0].verbose = verbose
        return _installed[0]
    console = RunConsole(verbose)
    console.install()
    _installed.append(console)
    return console


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="raybricks", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"raybricks {__version__}")
    commands = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")

    settings_flags = _Parser(add_help=False)
    settings_flags.add_argument("--target", default="local", help=f"one of {', '.join(TARGETS)}")
    settings_flags.add_argument("--conf", type=Path, help="conf file (default conf/<target>.yml)")
    run_flags = _Parser(add_help=False, parents=[settings_flags])
    for flag, key in FLAG_SETTINGS.items():
        run_flags.add_argument(flag, dest=_dest(flag), metavar="VALUE", help=f"overrides {key}")
    run_flags.add_argument(
        "--verbose", action="store_true", help="also show Ray's and Spark's own output"
    )

    def add(
        name: str, handler: Any, help: str, parents: Sequence[_Parser]
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, parents=list(parents))
        sub.set_defaults(handler=handler)
        return sub

    add("run", _run, "start Ray on Spark, run the stages, write the report", [run_flags])
    exec_cmd = add("exec", _exec, "start the cluster as run does, run CMD against it", [run_flags])
    exec_cmd.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    add("stages", _stages, "list the stages, one line each", [])
    add(
        "validate",
        _validate,
        "check the settings and exit, starting nothing",
        [run_flags],
    )
    doctor = add(
        "doctor",
        _doctor,
        "check that a Databricks cluster can run Ray on Spark (exit 2: it cannot)",
        [run_flags],
    )
    doctor.add_argument("--cluster-id", required=True, help="the cluster to check")
    doctor.add_argument("--profile", help="a profile of ~/.databrickscfg (default: the SDK's)")
    report = add("report", _report, "print a run's summary, from a run folder or a job run", [])
    report.add_argument("run_dir", metavar="RUN_DIR", nargs="?", help="a local run folder")
    report.add_argument("--run-id", type=int, help="a Databricks job run's id")
    report.add_argument("--job", metavar="NAME", help="with --latest: the job's latest run")
    report.add_argument("--latest", action="store_true")
    report.add_argument("--html", action="store_true", help="write RUN_DIR/report.html")
    report.add_argument("--profile", help="a profile of ~/.databrickscfg (default: the SDK's)")
    return parser
