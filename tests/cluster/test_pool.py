"""PipelinedActorPool keeps ActorPool's semantics while keeping several calls in flight."""

from __future__ import annotations

import threading
import time

import pytest
import ray
from ray.util import ActorPool

from raybricks.stages.pool import PipelinedActorPool


@ray.remote(num_cpus=0, max_concurrency=32)  # type: ignore[call-overload]
class Worker:
    """Threaded, so it can count how many calls it was handed at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = self.most = 0

    def double(self, n: int, seconds: float = 0.0) -> int:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(seconds)
        with self.lock:
            self.running -= 1
        if n < 0:
            raise ValueError(f"refusing {n}")
        return 2 * n

    def most_at_once(self) -> int:
        return self.most

    @ray.method(num_returns=2)
    def halves(self, n: int) -> tuple[int, int]:
        return n // 2, n - n // 2


@pytest.fixture(scope="module")
def actors(ray_cluster):
    """Shared by the module's tests (each actor is a process to start): a test that
    reads an actor's own counts makes one of its own."""
    made = [Worker.remote() for _ in range(2)]
    yield made
    for actor in made:
        ray.kill(actor)


def double(actor, value):
    return actor.double.remote(value)


def slow_double(actor, value):
    return actor.double.remote(value, 0.05 * (5 - value))  # earlier values finish later


def test_map_keeps_order_and_matches_actor_pool(actors):
    values = list(range(40))
    assert list(PipelinedActorPool(actors, depth=4).map(double, values)) == [2 * v for v in values]
    assert list(PipelinedActorPool(actors).map(slow_double, [1, 2, 3, 4])) == list(
        ActorPool(actors).map(slow_double, [1, 2, 3, 4])
    )


def test_map_unordered_returns_everything_as_it_finishes(actors):
    seen = list(PipelinedActorPool(actors, depth=4).map_unordered(slow_double, [1, 2, 3, 4]))
    assert sorted(seen) == [2, 4, 6, 8]
    assert seen != [2, 4, 6, 8]  # the slowest (first) value did not come first


def test_each_actor_gets_at_most_depth_calls_at_once(ray_cluster):
    actor = Worker.remote()
    pool = PipelinedActorPool([actor], depth=3)
    assert list(pool.map(lambda a, v: a.double.remote(v, 0.1), range(9))) == [
        2 * v for v in range(9)
    ]
    assert ray.get(actor.most_at_once.remote()) == 3
    ray.kill(actor)


def test_get_next_timeout_keeps_the_call(actors):
    pool = PipelinedActorPool(actors)
    pool.submit(lambda a, v: a.double.remote(v, 1.0), 21)
    with pytest.raises(TimeoutError):
        pool.get_next(timeout=0.1)
    assert pool.has_next()
    assert pool.get_next() == 42
    assert not pool.has_next()


def test_get_next_may_drop_a_call_that_timed_out_and_go_on(actors):
    pool = PipelinedActorPool(actors, depth=1)
    pool.submit(lambda a, v: a.double.remote(v, 1.0), 21)
    pool.submit(double, 5)
    with pytest.raises(TimeoutError, match="ignored"):
        pool.get_next(timeout=0.1, ignore_if_timedout=True)
    assert pool.get_next() == 10  # the next one; the slow call's result is discarded
    assert not pool.has_next()
    assert list(pool.map(double, [1, 2])) == [2, 4]  # its actor came back when it finished


def test_get_next_unordered_may_drop_the_oldest_call_on_a_timeout(actors):
    pool = PipelinedActorPool(actors)
    pool.submit(lambda a, v: a.double.remote(v, 1.0), 21)
    with pytest.raises(TimeoutError, match="ignored"):
        pool.get_next_unordered(timeout=0.1, ignore_if_timedout=True)
    assert not pool.has_next()
    with pytest.raises(StopIteration):
        pool.get_next_unordered()


def test_the_signatures_are_actor_pools(actors):
    import inspect

    for name, method in inspect.getmembers(ActorPool, inspect.isfunction):
        if name.startswith("_"):
            continue
        ours = getattr(PipelinedActorPool, name)
        assert list(inspect.signature(ours).parameters) == list(
            inspect.signature(method).parameters
        ), name


def test_a_method_of_two_returns_gives_both_values_per_item(actors):
    halves = PipelinedActorPool(actors).map(lambda a, v: a.halves.remote(v), [4, 5, 7])
    assert list(halves) == [[2, 2], [2, 3], [3, 4]]
    unordered = PipelinedActorPool(actors).map_unordered(lambda a, v: a.halves.remote(v), [9])
    assert list(unordered) == [[4, 5]]


def test_an_error_is_that_items_only_and_the_pool_stays_usable(actors):
    pool = PipelinedActorPool(actors, depth=2)
    for value in [1, 2, -3, 4]:
        pool.submit(double, value)
    outcomes = []
    while pool.has_next():
        try:
            outcomes.append(pool.get_next())
        except ray.exceptions.RayTaskError as exc:
            outcomes.append(str(exc.cause))
    assert outcomes == [2, 4, "refusing -3", 8]
    assert list(pool.map(double, [5])) == [10]


def test_a_new_map_drops_results_nobody_collected(actors):
    pool = PipelinedActorPool(actors)
    pool.submit(double, 100)
    assert list(pool.map(double, [1, 2])) == [2, 4]


def test_borrowing_actors(actors):
    pool = PipelinedActorPool(actors)
    assert pool.has_free()
    borrowed = [pool.pop_idle(), pool.pop_idle()]
    assert None not in borrowed and pool.pop_idle() is None and not pool.has_free()
    with pytest.raises(ValueError):
        pool.push(actors[0]) or pool.push(actors[0])
    pool.push(actors[1])
    assert list(pool.map(double, [1, 2, 3])) == [2, 4, 6]  # works on the actors it has


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth = 0"):
        PipelinedActorPool([], depth=0)
