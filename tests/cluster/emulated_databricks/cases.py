"""Run by spark-submit in an emulated Databricks job driver: one `raybricks run` per
case, one after another on the same Spark, each with or without IPython (installed
but no shell) and workspace credentials. Prints each case's exit code and run folder
as JSON lines."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from raybricks.cli import main

HERE = Path(__file__).parent
CREDENTIALS = {
    "DATABRICKS_HOST": "https://example.cloud.databricks.com",
    "DATABRICKS_TOKEN": "dapi-emulated-secret",
}
CASES = {
    "ipython-no-credentials": (True, False),
    "credentials-no-ipython": (False, True),
    "ipython-and-credentials": (True, True),
}


def run_case(name: str, ipython: bool, credentials: bool, run_flags: list[str]) -> dict:
    shell_less = str(HERE / "ipython_without_shell")
    sys.modules.pop("IPython", None)
    if ipython:
        sys.path.insert(0, shell_less)
    else:
        sys.modules["IPython"] = None  # type: ignore[assignment]  # not installed
    for key, value in CREDENTIALS.items():
        if credentials:
            os.environ[key] = value
        else:
            os.environ.pop(key, None)
    log_path = Path(run_flags[run_flags.index("--log-path") + 1]) / name
    try:
        code = main(["run", *run_flags, "--log-path", str(log_path), "--namespace", name])
    finally:
        if shell_less in sys.path:
            sys.path.remove(shell_less)
    (run_dir,) = log_path.iterdir()
    return {"case": name, "exit_code": code, "run_dir": str(run_dir)}


if __name__ == "__main__":
    for case, (ipython, credentials) in CASES.items():
        print(json.dumps(run_case(case, ipython, credentials, sys.argv[1:])), flush=True)  # noqa: T201
