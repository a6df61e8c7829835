"""batch_inference's actors: the model, and the scorer that loads it once and scores
blocks of Arrow.

A module of its own so that each scorer's process imports only what scoring needs
(numpy, pyarrow, Ray), not the stage's Spark and Ray Data: Ray imports an actor's
class by its module.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import ray

# The model: a logistic score of three features.
WEIGHTS = (0.8, -1.3, 0.45)
BIAS = 0.2
CRASHED = "crashed"  # the marker of the one scorer that died on purpose


class Model:
    """The model: a logistic score of three features. Loading it takes `load_seconds`,
    as a real model's load does."""

    def __init__(self, load_seconds: float) -> None:
        time.sleep(load_seconds)
        self.weights = np.array(WEIGHTS)

    def score(self, x0: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
        """Term by term, in the order Spark's `expected_score` adds them."""
        w0, w1, w2 = self.weights
        linear = x0 * w0 + x1 * w1 + x2 * w2 + BIAS
        return np.asarray(1.0 / (1.0 + np.exp(-linear)))


class Scorer:
    """One per actor: loads the model once, then scores blocks. Each load leaves a
    file `<pid>-<load id>` in `records` (a folder every node sees), and each call
    returns, beside its scored block, which process and load scored it (the table stays
    what a user's would be: ids and scores)."""

    def __init__(self, load_seconds: float, records: str, crash_after: int | None):
        self.model = Model(load_seconds)
        self.load_id = _random_id()
        self.records, self.crash_after = Path(records), crash_after
        (self.records / f"{os.getpid()}-{self.load_id}").touch()
        self.calls = 0

    def ready(self) -> bool:
        return True

    @ray.method(num_returns=2)
    def score(self, block: pa.Table) -> tuple[pa.Table, dict[str, int]]:
        self.calls += 1
        self._crash_once_if_asked()
        column = {name: block.column(name).to_numpy() for name in ("x0", "x1", "x2")}
        scores = self.model.score(column["x0"], column["x1"], column["x2"])
        scored = pa.table({"id": block.column("id"), "score": scores})
        call = {"pid": os.getpid(), "load_id": self.load_id, "rows": block.num_rows}
        return scored, call

    def _crash_once_if_asked(self) -> None:
        """The first scorer past `crash_after` calls dies mid-call, as a process does."""
        if self.crash_after is None or self.calls <= self.crash_after:
            return
        try:
            os.close(os.open(self.records / CRASHED, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # another scorer died already
        os._exit(1)


def _random_id() -> int:
    return uuid.uuid4().int >> 65  # 63 bits: a Spark bigint
