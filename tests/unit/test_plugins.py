"""Stages of one's own, from other installed packages (entry-point group
`raybricks.stages`): listed, selected, validated like built-ins; a clash or an import
failure is one line and exit 2. The example package is installed for real (pip, into
a folder of its own); the broken ones are bare metadata."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from raybricks.stages.registry import BUILT_IN
from tests.helpers import ROOT

ORIGIN = "package raybricks-example-stage 0.1.0"


def raybricks(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    command = [sys.executable, "-m", "raybricks", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)


def a_broken_package(tmp_path: Path, name: str, entry: str) -> Path:
    """Installed metadata of a package `broken` whose entry point names `entry`."""
    info = tmp_path / "broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[raybricks.stages]\n{name} = {entry}\n")
    return tmp_path


def test_the_example_stage_is_listed_after_the_built_ins_with_its_package(example_plugin):
    done = raybricks(example_plugin, "stages")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [*BUILT_IN, "greeter"]
    assert lines[-1].endswith(f"[{ORIGIN}]") and "greets" in lines[-1]


def test_its_parameters_are_validated_like_any_setting(example_plugin, tmp_path):
    conf = tmp_path / "conf.yml"
    conf.write_text("stage_params:\n  greeter:\n    calls: 0\n")
    done = raybricks(example_plugin, "validate", "--conf", str(conf), "--stages", "greeter")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("raybricks: stage_params.greeter.calls = 0")
    conf.write_text("stage_params:\n  greeter:\n    greeting: hi\n")
    done = raybricks(example_plugin, "validate", "--conf", str(conf), "--log-path", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert '"greeting": "hi"' in done.stdout and '"greeter"' in done.stdout


@pytest.mark.parametrize(
    ("name", "entry", "words"),
    [
        ("namespaces", "raybricks_example_stage:Greeter", ["clashes", "raybricks (built-in)"]),
        ("nowhere", "no_such_module:Stage", ["cannot be imported", "ModuleNotFoundError"]),
        ("not_a_stage", "os:path", ["not a subclass of raybricks.stages.Stage"]),
    ],
)
def test_a_clash_or_a_broken_entry_point_is_one_line_naming_the_package(
    tmp_path, example_plugin, name, entry, words
):
    broken = a_broken_package(tmp_path, name, entry)
    env = {**os.environ, "PYTHONPATH": f"{broken}{os.pathsep}{example_plugin}"}
    done = subprocess.run(
        [sys.executable, "-m", "raybricks", "run", "--stages", "namespaces"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"raybricks: stage '{name}' of package broken 1.0")
    assert all(word in line for word in words), line
