"""`ray.util.ActorPool`: schedule calls over a fixed set of actors, like `multiprocessing.Pool`.

    pool = ActorPool([Actor.remote() for _ in range(5)])
    list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3, 4]))   # [2, 4, 6, 8]

- `map` yields in input order, `map_unordered` as results finish;
- `submit` / `get_next` are the same by hand; `get_next(timeout=...)` raises
  `TimeoutError` and leaves the call in the pool, so a later `get_next()` still gets it;
- `has_next`, `has_free`, `pop_idle` / `push` let you borrow actors from the pool;
- an exception in one call surfaces for that item only; the pool stays usable.

Trap: ActorPool keeps one call in flight per actor, so for small calls it is much slower
than sending calls to the actors yourself. `raybricks.stages.pool.PipelinedActorPool` keeps
several in flight with the same interface; the stage measures all three.
"""

from __future__ import annotations

import time
from typing import Any

import ray
from ray.util import ActorPool

from raybricks.stages.base import Stage, StageContext, StageFailed, expect
from raybricks.stages.params import ActorPoolParams
from raybricks.stages.pool import DEFAULT_DEPTH, PipelinedActorPool

VALUES = [1, 2, 3, 4]
DOUBLED = [2, 4, 6, 8]


@ray.remote
class Actor:
    def double(self, n: int) -> int:
        return n * 2

    def slow_double(self, n: int, seconds: float) -> int:
        time.sleep(seconds)
        return n * 2

    def double_unless(self, n: int, refused: int) -> int:
        if n == refused:
            raise ValueError(f"refusing to double {n}")
        return n * 2


class ActorPoolStage(Stage[ActorPoolParams]):
    summary = "ActorPool map, map_unordered, submit/get_next, timeouts, errors, throughput"
    Params = ActorPoolParams

    @staticmethod
    def headline(evidence: dict[str, Any]) -> str:
        return (
            f"map gave {evidence['map']}; items/s: pipelined pool "
            f"{evidence['pipelined_pool_map_items_per_second']}, ActorPool "
            f"{evidence['actor_pool_map_items_per_second']}, direct "
            f"{evidence['direct_round_robin_items_per_second']}"
        )

    def run(self, ctx: StageContext, params: ActorPoolParams) -> None:
        actors = [Actor.remote() for _ in range(params.pool_size)]  # type: ignore[attr-defined]
        try:
            self._prove(ctx, params, actors)
        finally:
            for actor in actors:
                ray.kill(actor)

    def _prove(self, ctx: StageContext, params: ActorPoolParams, actors: list[Any]) -> None:
        pool = ActorPool(actors)
        double = _call("double")

        mapped = list(pool.map(double, VALUES))
        unordered = list(pool.map_unordered(double, VALUES))
        ctx.record(map=mapped, map_unordered=unordered)
        expect(mapped == DOUBLED, f"map gave {mapped}")
        expect(sorted(unordered) == DOUBLED, f"map_unordered gave {unordered}")

        for value in VALUES:
            pool.submit(double, value)
        by_hand = [pool.get_next() for _ in VALUES]
        ctx.record(submit_get_next=by_hand, has_next_after=pool.has_next())
        expect(by_hand == DOUBLED and not pool.has_next(), f"submit/get_next gave {by_hand}")

        ctx.record(**_timeout_keeps_the_call(pool, params))
        ctx.record(**_borrowing_actors(pool, len(actors)))
        ctx.record(**_one_bad_item(pool))
        depth = params.pipeline_depth or DEFAULT_DEPTH
        ctx.record(**_throughput(ctx, actors, params.throughput_items, depth))


def _call(method: str, *extra: Any) -> Any:
    return lambda actor, value: getattr(actor, method).remote(value, *extra)


def _timeout_keeps_the_call(pool: ActorPool, params: ActorPoolParams) -> dict[str, Any]:
    pool.submit(_call("slow_double", params.slow_call_seconds), 21)
    clock = time.monotonic()
    try:
        pool.get_next(timeout=params.get_next_timeout_seconds)
    except TimeoutError:
        waited = round(time.monotonic() - clock, 3)
    else:
        raise StageFailed(
            f"get_next(timeout={params.get_next_timeout_seconds}) did not time out "
            f"on a {params.slow_call_seconds} s call"
        )
    late = pool.get_next()  # the call stayed in the pool
    expect(late == 42, f"the slow call answered {late}")
    return {"get_next_timed_out_after": waited, "slow_call_answer_after_timeout": late}


def _borrowing_actors(pool: ActorPool, size: int) -> dict[str, Any]:
    borrowed = []
    while pool.has_free():
        borrowed.append(pool.pop_idle())
    free_while_borrowed = pool.has_free()
    for actor in borrowed:
        pool.push(actor)
    expect(len(borrowed) == size and not free_while_borrowed, f"popped {len(borrowed)} of {size}")
    expect(pool.has_free(), "pushed actors are not free again")
    return {"popped_idle": len(borrowed), "free_after_push": True}


def _one_bad_item(pool: ActorPool) -> dict[str, Any]:
    for value in VALUES:
        pool.submit(_call("double_unless", 3), value)
    outcomes: list[Any] = []
    while pool.has_next():
        try:
            outcomes.append(pool.get_next())
        except ray.exceptions.RayTaskError as exc:
            outcomes.append(f"error: {exc.cause}")
    expect(outcomes[:2] == [2, 4] and outcomes[3] == 8, f"outcomes {outcomes}")
    expect(str(outcomes[2]).startswith("error: refusing to double 3"), f"outcomes {outcomes}")
    after = list(pool.map(_call("double"), [5]))
    expect(after == [10], "the pool is unusable after an error")
    return {"one_bad_item": outcomes, "usable_after_error": after}


def _throughput(ctx: StageContext, actors: list[Any], items: int, depth: int) -> dict[str, Any]:
    """Items per second of the three ways, each timed whole (progress is said between
    them, not per item, so as not to slow what is timed)."""
    values = list(range(items))
    expected = [2 * v for v in values]
    rates = {}
    for label, run in (
        ("actor_pool_map", lambda: list(ActorPool(actors).map(_call("double"), values))),
        (
            "pipelined_pool_map",
            lambda: list(PipelinedActorPool(actors, depth).map(_call("double"), values)),
        ),
        (
            "direct_round_robin",
            lambda: ray.get(
                [actors[i % len(actors)].double.remote(v) for i, v in enumerate(values)]
            ),
        ),
    ):
        clock = time.perf_counter()
        results = run()
        rates[f"{label}_items_per_second"] = round(items / (time.perf_counter() - clock))
        expect(results == expected, f"{label} gave wrong results")
        ctx.progress(len(rates) * items, 3 * items, "items")
    return {"throughput_items": items, "pipeline_depth": depth, **rates}
