"""Ray on Spark shows some of its warnings on Databricks (memory sizing, GPU task
amounts) through a notebook's `displayHTML`, found through IPython, and fails the
cluster's start where no notebook runs, as in every job task. Within
`notebook_html_to_log`, that HTML goes to the log as text instead."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

from ray.util.spark import databricks_hook

logger = logging.getLogger(__name__)

DISPLAY_FINDER = "get_databricks_display_html_function"  # looked up by Ray at each call
_TAG = re.compile(r"<[^>]+>")


def log_html(markup: str) -> None:
    logger.warning("%s", html.unescape(_TAG.sub(" ", markup)).strip())


@contextmanager
def notebook_html_to_log() -> Iterator[None]:
    if not hasattr(databricks_hook, DISPLAY_FINDER):  # a Ray that no longer displays HTML
        yield
        return
    saved = getattr(databricks_hook, DISPLAY_FINDER)
    setattr(databricks_hook, DISPLAY_FINDER, lambda: log_html)
    try:
        yield
    finally:
        setattr(databricks_hook, DISPLAY_FINDER, saved)
