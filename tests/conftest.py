"""Fixtures for every tier."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT


@pytest.fixture(scope="session")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example stage package (tests/example_plugin), installed by pip into a folder
    of its own, offline: put the folder on PYTHONPATH to have it installed."""
    source = tmp_path_factory.mktemp("example-plugin-source")
    shutil.copytree(ROOT / "tests" / "example_plugin", source, dirs_exist_ok=True)
    site = tmp_path_factory.mktemp("example-plugin-site")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    pip += ["--no-build-isolation", "--target", str(site), str(source)]
    subprocess.run(pip, check=True, capture_output=True)
    return site
