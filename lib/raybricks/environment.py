"""This process's environment, given defaults for a while: a variable already set (a
user's own choice) stands; those set here go again at the block's end."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def defaults(values: Mapping[str, str]) -> Iterator[None]:
    given = {name: value for name, value in values.items() if name not in os.environ}
    os.environ.update(given)
    try:
        yield
    finally:
        for name in given:
            os.environ.pop(name, None)
