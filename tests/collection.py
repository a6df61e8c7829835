"""The tests pytest would keep for each of several argument lists, collected in one
process so that the imports are paid once (a process per list took 5 s each).

    python -m tests.collection OUT.json ARGS.json   # ARGS: [[arg, ...], ...]
    # OUT: [[test id, ...], ...], in the same order
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest


class _Kept:
    """What a collection kept, once markers and -k have deselected the rest."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.ids = [item.nodeid for item in session.items]


def main(out: str, arguments: str) -> None:
    found = []
    for each in json.loads(Path(arguments).read_text()):
        kept = _Kept()
        pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *each], plugins=[kept])
        found.append(kept.ids)
    Path(out).write_text(json.dumps(found))


if __name__ == "__main__":
    main(*sys.argv[1:])
