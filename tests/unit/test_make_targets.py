"""Every make target that runs pytest selects tests: a test renamed, or moved between
tiers, breaks its target loudly here, in `make test`, not on the day someone runs it."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from tests.helpers import ROOT

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


def collected(arguments: list[str]) -> list[str]:
    """The test ids pytest collects, and keeps, for `arguments`."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    return [line for line in done.stdout.splitlines() if "::" in line]


@pytest.mark.parametrize(
    "target", ["test", "test-unit", "test-slow", "test-runtimes", "test-ray-versions"]
)
def test_every_target_that_runs_pytest_selects_tests(target, monkeypatch):
    monkeypatch.setenv("PY312", sys.executable)  # test-runtimes runs only where 3.12 is
    runs = pytest_arguments(target)
    assert runs, f"make {target} runs no pytest"
    for arguments in runs:
        assert collected(["-p", "no:cacheprovider", "-n", "0", *arguments]), (
            f"make {target} selects no test: pytest {shlex.join(arguments)}"
        )


def test_test_runtimes_runs_each_test_it_names():
    (arguments,) = set(map(tuple, pytest_arguments("test-runtimes")))
    named = [word for word in arguments if "::" in word]
    files = [word for word in arguments if word.endswith(".py")]
    assert len(named) == 2 and files == ["tests/unit/test_spark_apis.py"]
    kept = collected(["-p", "no:cacheprovider", "-n", "0", *arguments])
    assert set(named) <= set(kept)
    assert all(test in named or test.startswith(files[0]) for test in kept)
    assert len(kept) > len(named)  # the Spark names' file selected tests too
