"""Every make target that runs pytest selects tests: a test renamed, or moved between
tiers, breaks its target loudly here, in `make test`, not on the day someone runs it."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

# One worker collects for them all (the fixture is per module, and per xdist worker).
pytestmark = pytest.mark.xdist_group("make-targets")

SHELL_OPERATORS = {"||", "&&", "|", ">", "2>&1"}


def pytest_arguments(target: str) -> list[list[str]]:
    """The arguments of each pytest that `make <target>` would run (make -n, the venv's
    set-up skipped; a shell loop's variables left as they are)."""
    done = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", target],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    found = []
    for line in done.stdout.replace("\\\n", " ").splitlines():
        for command in line.split(";"):
            words = shlex.split(command.replace("$venv", ".venv"))
            at = next((i for i, word in enumerate(words) if word.endswith("/pytest")), None)
            if at is not None:
                arguments = words[at + 1 :]
                ends = [i for i, word in enumerate(arguments) if word in SHELL_OPERATORS]
                found.append(arguments[: min(ends, default=len(arguments))])
    return found


TARGETS = ["test", "test-unit", "test-slow", "test-runtimes", "test-ray-versions"]


def collected_each(argument_lists: list[list[str]], folder: Path) -> list[list[str]]:
    """The test ids pytest collects, and keeps, for each argument list (one process)."""
    arguments, out = folder / "arguments.json", folder / "collected.json"
    arguments.write_text(json.dumps([["-n", "0", *each] for each in argument_lists]))
    done = subprocess.run(
        [sys.executable, "-m", "tests.collection", str(out), str(arguments)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[list[str], list[str]]]]:
    """For each make target, each pytest it runs: its arguments and the tests they keep."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PY312", sys.executable)  # test-runtimes runs only where 3.12 is
        arguments = {target: pytest_arguments(target) for target in TARGETS}
    flat = [each for target in TARGETS for each in arguments[target]]
    kept = iter(collected_each(flat, tmp_path_factory.mktemp("collected")))
    return {target: [(each, next(kept)) for each in arguments[target]] for target in TARGETS}


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_that_runs_pytest_selects_tests(target, runs):
    assert runs[target], f"make {target} runs no pytest"
    for arguments, kept in runs[target]:
        assert kept, f"make {target} selects no test: pytest {shlex.join(arguments)}"


def test_test_runtimes_runs_each_test_it_names(runs):
    ((arguments, kept),) = runs["test-runtimes"]
    named = [word for word in arguments if "::" in word]
    files = [word for word in arguments if word.endswith(".py")]
    assert len(named) == 3 and files == ["tests/unit/test_spark_apis.py"]

    def by_name(test: str) -> str:
        return test.split("[")[0]  # a parametrized test is kept as its cases

    assert set(named) <= {by_name(test) for test in kept}
    assert all(by_name(test) in named or test.startswith(files[0]) for test in kept)
    assert len(kept) > len(named)  # the Spark names' file selected tests too
