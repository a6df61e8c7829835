"""The Ray range raybricks declares, and the preflight's refusal of a Ray outside it."""

from __future__ import annotations

from importlib import metadata

import pytest
import ray
from packaging.specifiers import SpecifierSet

from raybricks.cli import main
from raybricks.cluster import ray_version
from raybricks.cluster.ray_version import check_ray_in_range
from raybricks.errors import BadInput
from tests.helpers import ROOT


def test_the_range_is_the_package_s_own_and_holds_the_pinned_ray():
    assert ray_version.tested_range() == SpecifierSet(">=2.52,<2.61")
    assert check_ray_in_range() == ray.__version__


def test_raybricks_run_from_its_source_uninstalled_checks_nothing(monkeypatch):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr("raybricks.cluster.ray_version.metadata.requires", not_installed)
    assert ray_version.tested_range() is None and check_ray_in_range("2.37.0") == "2.37.0"


@pytest.mark.parametrize("version", ["2.52.0", "2.55.1", "2.60.0"])
def test_a_ray_in_range_passes(version):
    assert check_ray_in_range(version) == version


@pytest.mark.parametrize("version", ["2.37.0", "2.51.2", "2.61.0", "3.0.0"])
def test_a_ray_outside_the_range_is_refused_in_one_line_naming_it_and_the_fix(version):
    with pytest.raises(BadInput) as refused:
        check_ray_in_range(version)
    assert str(refused.value) == (
        f"Ray {version} is outside the Ray versions raybricks is tested on (<2.61,>=2.52); "
        "install one in range, e.g. ray[default,data]==2.60.0 (the bundle variable "
        "ray_requirement)"
    )


def test_a_run_on_a_ray_outside_the_range_exits_2_before_anything_starts(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.setattr("raybricks.cluster.ray_version.metadata.version", lambda _: "2.37.0")
    log_root = tmp_path / "runs"
    assert main(["run", "--log-path", str(log_root)], conf_dir=ROOT / "conf") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("raybricks: Ray 2.37.0 is outside the Ray versions")
    assert not log_root.exists()
