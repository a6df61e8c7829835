"""Call rates of several runs, measured side by side: every round runs each of them once,
in reverse order every other round, so neither a slow moment of the machine nor a place
in the order favours one. The first round only warms up."""

import statistics
import time
from collections.abc import Callable, Sized

ROUNDS = 7  # measured rounds, after one that warms up


def alternating_rates(runs: dict[str, Callable[[], Sized]], calls: int, rounds: int = ROUNDS):
    """Median calls/s of each run; each must return its `calls` results."""
    samples = {name: [] for name in runs}
    for round_ in range(rounds + 1):
        for name in list(runs) if round_ % 2 == 0 else reversed(list(runs)):
            clock = time.perf_counter()
            assert len(runs[name]()) == calls, f"{name} lost results"
            if round_:
                samples[name].append(calls / (time.perf_counter() - clock))
    return {name: statistics.median(rates) for name, rates in samples.items()}
