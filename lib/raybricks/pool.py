"""An actor pool that keeps several calls in flight per actor.

`ray.util.ActorPool` sends an actor its next call only once the previous one returned,
so every call pays a full round trip while the actor idles. This pool keeps up to
`depth` calls queued at each actor (an actor still runs them one at a time), with the
same interface and semantics:

    pool = PipelinedActorPool(actors, depth=8)
    list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3, 4]))   # [2, 4, 6, 8]

- `map` / `get_next` return in submission order, `map_unordered` /
  `get_next_unordered` as results finish;
- `get_next(timeout=...)` raises `TimeoutError` and keeps the call, so a later
  `get_next()` still returns it;
- a call that raises surfaces its error for that item only; the pool stays usable;
- `has_next`, `has_free`, `pop_idle` / `push` as in ActorPool (an actor is free when
  it has no call in flight).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import ray

Submit = Callable[[Any, Any], Any]  # (actor, value) -> ObjectRef


class PipelinedActorPool:
    def __init__(self, actors: Iterable[Any], depth: int = 8) -> None:
        if depth < 1:
            raise ValueError(f"depth = {depth}: keep at least 1 call in flight per actor")
        self._depth = depth
        self._load: dict[Any, int] = dict.fromkeys(actors, 0)  # calls in flight
        self._queued: collections.deque[tuple[int, Submit, Any]] = collections.deque()
        self._refs: dict[int, Any] = {}  # submission index -> ObjectRef, once sent
        self._actor_of: dict[Any, Any] = {}  # ObjectRef -> actor
        self._submitted = 0
        self._returned_upto = 0  # the next index get_next returns
        self._done_unordered: set[int] = set()

    # -- submitting -------------------------------------------------------------
    def submit(self, fn: Submit, value: Any) -> None:
        """Send `fn(actor, value)` to the least loaded actor, or queue it until one has room."""
        self._queued.append((self._submitted, fn, value))
        self._submitted += 1
        self._send_queued()

    def _send_queued(self) -> None:
        while self._queued and self._load:
            actor = min(self._load, key=self._load.__getitem__)
            if self._load[actor] >= self._depth:
                return
            index, fn, value = self._queued.popleft()
            ref = fn(actor, value)
            self._refs[index] = ref
            self._actor_of[ref] = actor
            self._load[actor] += 1

    def _release(self, ref: Any) -> None:
        """`ref` finished: its actor has room for one more call."""
        actor = self._actor_of.pop(ref, None)
        if actor is not None and actor in self._load:
            self._load[actor] -= 1
        self._send_queued()

    def _forget_unreturned(self) -> None:
        """Drop results not yet returned, as ActorPool.map does before a new map; calls
        already sent still occupy their actors until they finish."""
        self._queued.clear()
        self._refs.clear()
        self._done_unordered.clear()
        self._returned_upto = self._submitted

    # -- results ----------------------------------------------------------------
    def has_next(self) -> bool:
        return self._returned_upto + len(self._done_unordered) < self._submitted

    def get_next(self, timeout: float | None = None) -> Any:
        """The next result in submission order."""
        while self._returned_upto in self._done_unordered:
            self._done_unordered.discard(self._returned_upto)
            self._returned_upto += 1
        if not self.has_next():
            raise StopIteration("No more results to get")
        index = self._returned_upto
        ref = self._sent(index, timeout)
        # Without a timeout, the ray.get in _collect waits: one Ray call per item.
        if timeout is not None and not ray.wait([ref], timeout=timeout)[0]:
            raise TimeoutError("Timed out waiting for result")
        self._returned_upto += 1
        return self._collect(index)

    def get_next_unordered(self, timeout: float | None = None) -> Any:
        """Whichever sent result is ready first."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        while not self._refs:  # all remaining calls still queued: make room
            self._sent(min(index for index, _, _ in self._queued), timeout)
        index_of = {ref: index for index, ref in self._refs.items()}
        ready, _ = ray.wait(list(index_of), num_returns=1, timeout=timeout)
        if not ready:
            raise TimeoutError("Timed out waiting for result")
        index = index_of[ready[0]]
        self._done_unordered.add(index)
        return self._collect(index)

    def _sent(self, index: int, timeout: float | None) -> Any:
        """The ref of call `index`, once it has left the queue: calls ahead of it must
        finish first to make room."""
        while index not in self._refs:
            ready, _ = ray.wait(list(self._actor_of), num_returns=1, timeout=timeout)
            if not ready:
                raise TimeoutError("Timed out waiting for a free actor")
            self._release(ready[0])
        return self._refs[index]

    def _collect(self, index: int) -> Any:
        ref = self._refs.pop(index)
        try:
            return ray.get(ref)  # raises this item's error
        finally:
            self._release(ref)  # only now done: its actor may take the next call

    def map(self, fn: Submit, values: Iterable[Any]) -> Iterator[Any]:
        return self._mapped(fn, values, self.get_next)

    def map_unordered(self, fn: Submit, values: Iterable[Any]) -> Iterator[Any]:
        return self._mapped(fn, values, self.get_next_unordered)

    def _mapped(self, fn: Submit, values: Iterable[Any], take: Callable[[], Any]) -> Iterator[Any]:
        """Submit every value now (as ActorPool does), then yield results via `take`."""
        self._forget_unreturned()
        for value in values:
            self.submit(fn, value)

        def results() -> Iterator[Any]:
            while self.has_next():
                yield take()

        return results()

    # -- borrowing actors ---------------------------------------------------------
    def has_free(self) -> bool:
        return any(load == 0 for load in self._load.values()) and not self._queued

    def pop_idle(self) -> Any | None:
        """Take an actor with no call in flight out of the pool, or None."""
        if self._queued:
            return None
        for actor, load in self._load.items():
            if load == 0:
                del self._load[actor]
                return actor
        return None

    def push(self, actor: Any) -> None:
        if actor in self._load:
            raise ValueError("Actor already belongs to current pool")
        self._load[actor] = 0
        self._send_queued()
