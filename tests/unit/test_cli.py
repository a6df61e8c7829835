"""The command line: parsing, exit codes, one-line errors, and nothing started on bad input."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raybricks.cli import main
from raybricks.report.model import Report, StageResult, read_report, write_report
from raybricks.stages.registry import BUILT_IN as STAGES
from tests.helpers import ROOT, imported_by


@pytest.fixture
def log_root(tmp_path):
    return tmp_path / "runs"


BAD_FLAGS = [
    ["run", "--target", "qa"],
    ["run", "--max-worker-nodes", "0"],
    ["run", "--max-worker-nodes", "many"],
    ["run", "--min-worker-nodes", "3", "--max-worker-nodes", "2"],
    ["run", "--num-cpus-worker-node", "0"],
    ["run", "--stages", "nope"],
    ["run", "--stages", "namespaces,,actor_pool"],
    ["run", "--namespace", ""],
    ["run", "--spark-master", "k8s://x"],
    ["run", "--spark-master", "local-cluster[0,1,1024]"],
    ["run", "--spark-master", "local[0]"],
    ["run", "--conf", "/nonexistent/conf.yml"],
    ["run", "--bogus"],
    ["exec", "--max-worker-nodes", "0", "--", "true"],
    ["exec"],
    ["frobnicate"],
    ["validate", "--namespace", "a b"],
]


@pytest.mark.parametrize("argv", BAD_FLAGS, ids=" ".join)
def test_bad_input_exits_2_with_one_line_and_no_run_folder(argv, log_root, capsys):
    code = main(
        [*argv, "--log-path", str(log_root)] if argv[0] != "frobnicate" else argv,
        conf_dir=ROOT / "conf",
    )
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("raybricks:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert not log_root.exists()


def test_a_conf_file_that_is_not_text_is_bad_input(tmp_path, log_root, capsys):
    conf = tmp_path / "conf.yml"
    conf.write_bytes(b"cluster:\n  max_worker_nodes: \xff\xfe\x00\n")
    assert main(["run", "--conf", str(conf), "--log-path", str(log_root)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"raybricks: conf file {conf} is not UTF-8 text")
    assert not log_root.exists()


def test_stages_lists_each_stage_on_one_line(capsys):
    assert main(["stages"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == list(STAGES)


def test_validate_prints_the_resolved_settings_and_starts_nothing(log_root, capsys):
    code = main(
        ["validate", "--max-worker-nodes", "3", "--log-path", str(log_root)], conf_dir=ROOT / "conf"
    )
    out = capsys.readouterr().out
    assert code == 0
    assert '"max_worker_nodes": 3' in out
    assert not log_root.exists()


def test_report_prints_the_summary_of_a_run_folder(tmp_path, capsys):
    report = Report.begin("20260102T030405Z-abcdef", {})
    report.stages = [StageResult("options_override", "passed", 1.0)]
    report.finish("passed", 0)
    write_report(report, tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "run 20260102T030405Z-abcdef: passed" in out
    assert "options_override" in out


def test_report_of_a_folder_without_one_is_bad_input(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no report.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "raybricks", "run", "--max-worker-nodes", "x"],
        [sys.executable, str(ROOT / "jobs" / "actor_demos.py"), "--max-worker-nodes", "x"],
        [str(Path(sys.executable).parent / "raybricks"), "run", "--nope"],
    ],
    ids=["python -m raybricks", "jobs/actor_demos.py", "raybricks"],
)
def test_every_entrypoint_rejects_bad_input_the_same_way(command, log_root):
    done = subprocess.run(
        [*command, "--log-path", str(log_root)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("raybricks: "), done.stderr
    assert not log_root.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--max-worker-nodes", "x"],
        ["run", "--stages", "no_such_stage"],
        ["exec", "--min-worker-nodes", "-1", "--", "true"],
    ],
    ids=" ".join,
)
def test_bad_input_is_answered_before_ray_or_spark_is_imported(argv, log_root):
    check = (
        "import sys\n"
        "from raybricks.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "loaded = sorted({'ray', 'pyspark'} & set(sys.modules))\n"
        "sys.exit(f'imported: {loaded}' if loaded else code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check, *argv, "--log-path", str(log_root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr


def test_the_process_starts_on_the_standard_library_alone():
    """What `raybricks.entry` imports comes before its handlers are set."""
    heavy = {"psutil", "pydantic", "rich", "yaml", "ray", "pyspark"}
    assert imported_by("raybricks.entry", heavy) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_cancel_while_the_cli_is_imported_ends_the_process_with_its_code(signum):
    """The CLI's imports take most of a second from the process's start (seen: a sweep's
    SIGTERM 0.5 s in, exit -15); the cancel comes as `raybricks.cli` starts importing."""
    check = (
        "import os, sys\n"
        "def cancel_on_cli_import(event, args):\n"
        "    if event == 'import' and args[0] == 'raybricks.cli':\n"
        f"        os.kill(os.getpid(), {int(signum)})\n"
        "sys.addaudithook(cancel_on_cli_import)\n"
        "from raybricks.entry import entry\n"
        "entry(['stages'])\n"
        "sys.exit('the cancel did not end the process')\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 128 + signum, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_cancel_once_the_command_is_over_ends_the_process_with_its_code(signum):
    """What follows `main` (Python finalizing Ray's and Spark's modules) takes a moment;
    a cancel then ends the process at once: 128 + the signal, no traceback."""
    check = (
        "import os, sys, time\n"
        "from raybricks.entry import entry\n"
        "assert entry(['stages']) == 0\n"
        "import ray, pyspark  # as after a run: finalizing them takes a while\n"
        f"os.kill(os.getpid(), {int(signum)})\n"
        "time.sleep(10)\n"
        "sys.exit('the cancel did not end the process')\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 128 + signum, done.stderr
    assert "Traceback" not in done.stderr


def test_a_cancel_while_python_finalizes_leaves_the_commands_own_exit_code():
    """Python's exit puts its handlers back to the default actions before it finalizes
    modules (seen: the last moment of a swept run, exit -15): the cancel is ignored."""
    check = (
        "import sys, time\n"
        "from raybricks.entry import entry\n"
        "code = entry(['stages'])\n"
        "class SlowToFinalize:\n"
        "    def __del__(self):\n"
        "        time.sleep(3)\n"
        "held = SlowToFinalize()  # finalized with this module, as Ray's and Spark's are\n"
        "print('over', flush=True)\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", check], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert "over\n" in iter(proc.stdout.readline, "")  # the stage list comes first
    time.sleep(1.0)  # Python's exit is finalizing `held`
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


@pytest.mark.parametrize("command", [["run"], ["exec", "--", "true"]], ids=["run", "exec"])
@pytest.mark.parametrize("report_first", [False, True], ids=["no-report", "report-running"])
def test_a_cancel_between_the_run_folder_and_its_report_leaves_a_cancelled_report(
    command, report_first, log_root, monkeypatch
):
    """SIGTERM after the run folder is made and before the run's own handling has
    written its report (the reliability sweep found one with none)."""
    from raybricks.run import job

    def cancelled(settings, platform, run_dir, *_):
        if report_first:  # the run's first report is written, its handling not begun
            write_report(Report.begin(run_dir.name, {}), run_dir)
        raise job.Cancelled(signal.SIGTERM)

    monkeypatch.setattr(job, "run_stages", cancelled)
    monkeypatch.setattr(job, "run_command", cancelled)
    code = main([*command[:1], "--log-path", str(log_root), *command[1:]], conf_dir=ROOT / "conf")
    (run_dir,) = log_root.iterdir()
    report = read_report(run_dir)
    assert code == 143
    assert (report.status, report.exit_code, report.error) == (
        "cancelled",
        143,
        "cancelled by SIGTERM",
    )


def test_a_report_that_says_the_run_ended_is_kept_by_a_late_cancel(log_root, monkeypatch):
    from raybricks.run import job

    def passed_then_cancelled(settings, platform, run_dir, *_):
        report = Report.begin(run_dir.name, {})
        report.finish("passed", 0)
        write_report(report, run_dir)
        raise job.Cancelled(signal.SIGTERM)

    monkeypatch.setattr(job, "run_stages", passed_then_cancelled)
    assert main(["run", "--log-path", str(log_root)], conf_dir=ROOT / "conf") == 143
    (run_dir,) = log_root.iterdir()
    assert read_report(run_dir).status == "passed"


def in_a_platforms_process(command: list[str]) -> str:
    """The wheel's entry point called in-process, as a platform that set cancel handlers
    of its own calls it: how the call ended, and the handler the platform has after."""
    check = (
        "import signal, sys\n"
        "def platforms(signum, frame): pass\n"
        "signal.signal(signal.SIGTERM, platforms)\n"
        "from raybricks.entry import entry\n"
        "try:\n"
        f"    ended = 'returned ' + repr(entry({command!r}))\n"
        "except SystemExit as exc:\n"
        "    ended = f'raised SystemExit({exc.code!r})'\n"
        "print(ended, signal.getsignal(signal.SIGTERM) is platforms)\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1]


def test_the_entry_point_raises_systemexit_with_any_code_but_0_however_it_is_called():
    """A platform that calls the function rather than running the script (a Databricks
    python_wheel_task) sees a failure as a process would; its own handlers come back."""
    assert in_a_platforms_process(["stages"]) == "returned 0 True"
    assert in_a_platforms_process(["run", "--stages", "nope"]) == "raised SystemExit(2) True"
