"""Call rates of several runs, measured side by side: every round runs each of them once,
in reverse order every other round, so neither a slow moment of the machine nor a place
in the order favours one. The first round only warms up. Two runs are compared round by
round: a slow moment slows both of a round's runs, not their ratio."""

import statistics
import time
from collections.abc import Callable, Sized

ROUNDS = 15  # measured rounds, after one that warms up


def alternating_rates(
    runs: dict[str, Callable[[], Sized]], calls: int, rounds: int = ROUNDS
) -> dict[str, list[float]]:
    """Calls/s of each run in each measured round; each must return its `calls` results."""
    samples = {name: [] for name in runs}
    for round_ in range(rounds + 1):
        for name in list(runs) if round_ % 2 == 0 else reversed(list(runs)):
            clock = time.perf_counter()
            assert len(runs[name]()) == calls, f"{name} lost results"
            if round_:
                samples[name].append(calls / (time.perf_counter() - clock))
    return samples


def paired_ratio(ours: list[float], baseline: list[float]) -> float:
    """The median of the rounds' own ratios of two runs' rates."""
    return statistics.median(a / b for a, b in zip(ours, baseline, strict=True))
