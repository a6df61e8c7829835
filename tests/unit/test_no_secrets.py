"""No credential is kept in the repository: tokens, passwords, workspace tokens."""

import re
import subprocess

from tests.helpers import ROOT

SHAPES = {
    "a Databricks personal access token": re.compile(rb"dapi[0-9a-f]{32}"),
    "a Ray auth token given literally": re.compile(rb"RAY_AUTH_TOKEN\s*[=:]\s*['\"]?[0-9a-f]{32,}"),
    "a password given literally": re.compile(rb"(?i)password\s*[=:]\s*['\"][^'\"\s]{6,}"),
    "a private key": re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


def test_no_tracked_file_holds_a_credential():
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    found = [
        f"{name.decode()}: {what}"
        for name in tracked
        if name and (ROOT / name.decode()).is_file()
        for what, shape in SHAPES.items()
        if shape.search((ROOT / name.decode()).read_bytes())
    ]
    assert found == []
