"""The Ray versions raybricks is tested on: the range its package declares for `ray`
(pyproject.toml, one source), checked before a run starts, since a cluster may bring a
Ray of its own (a Databricks ML runtime ships one) that pip did not choose."""

from __future__ import annotations

from importlib import metadata

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from raybricks.errors import BadInput

PINNED = "ray[default,data]==2.60.0"  # the bundle's default, as constraints.txt pins it


def tested_range() -> SpecifierSet | None:
    """The `ray` versions raybricks' own package metadata asks for; None where raybricks
    runs from its source folder uninstalled (no metadata: nothing to check against)."""
    try:
        requires = metadata.requires("raybricks") or []
    except metadata.PackageNotFoundError:
        return None
    for line in requires:
        requirement = Requirement(line)
        if requirement.name == "ray" and requirement.marker is None:
            return requirement.specifier
    raise LookupError("raybricks' package metadata names no ray requirement")


def check_ray_in_range(version: str | None = None) -> str:
    """This Ray's version, or BadInput where it is outside the tested range."""
    found = version or metadata.version("ray")
    tested = tested_range()
    if tested is not None and not tested.contains(found, prereleases=True):
        raise BadInput(
            f"Ray {found} is outside the Ray versions raybricks is tested on ({tested}); "
            f"install one in range, e.g. {PINNED} (the bundle variable ray_requirement)"
        )
    return found
