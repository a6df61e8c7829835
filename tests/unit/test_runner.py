"""The runner on plain-Python stages: ordering, isolation of failures, cancellation.
(The real stages run on a real cluster in tests/cluster.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from raybricks.errors import Cancelled
from raybricks.runner import Runner
from raybricks.stages.base import Stage, StageContext, StageParams, expect

ran: list[str] = []


class Passes(Stage[StageParams]):
    name, summary = "passes", "records a count"

    def run(self, ctx: StageContext, params: StageParams) -> None:
        ran.append(self.name)
        ctx.record(count=3)


class ExpectFails(Stage[StageParams]):
    name, summary = "expect_fails", "its pattern misbehaves"

    def run(self, ctx: StageContext, params: StageParams) -> None:
        ran.append(self.name)
        ctx.record(seen=[2, 1])
        expect(False, "order lost: [2, 1]")


class Raises(Stage[StageParams]):
    name, summary = "raises", "a bug"

    def run(self, ctx: StageContext, params: StageParams) -> None:
        ran.append(self.name)
        raise KeyError("oops")


class Interrupted(Stage[StageParams]):
    name, summary = "interrupted", "SIGTERM arrives"

    def run(self, ctx: StageContext, params: StageParams) -> None:
        ran.append(self.name)
        raise Cancelled(15)


@pytest.fixture(autouse=True)
def toy_stages(monkeypatch):
    ran.clear()
    toys = {stage.name: stage for stage in (Passes, ExpectFails, Raises, Interrupted)}
    monkeypatch.setattr("raybricks.runner.STAGES", toys)


def context() -> StageContext:
    return StageContext("ns", Path("/tmp/run"), "127.0.0.1:1")


def run(names: list[str]) -> Runner:
    runner = Runner(names, lambda name: StageParams())
    runner.run(context)
    return runner


def test_stages_run_in_the_given_order_and_a_failure_does_not_stop_the_rest(caplog):
    runner = run(["expect_fails", "raises", "passes"])
    assert ran == ["expect_fails", "raises", "passes"]
    statuses = {r.name: (r.status, r.error) for r in runner.results}
    assert statuses == {
        "expect_fails": ("failed", "order lost: [2, 1]"),
        "raises": ("failed", "KeyError: 'oops'"),
        "passes": ("passed", None),
    }
    assert not runner.passed
    assert "stage 3/3 passes: passed in" in caplog.text
    assert (
        "Traceback" in caplog.text
    )  # the driver log gets the traceback, the report the short error


def test_evidence_is_kept_also_when_a_stage_fails():
    runner = run(["expect_fails", "passes"])
    assert runner.results[0].evidence == {"seen": [2, 1]}
    assert runner.results[1].evidence == {"count": 3}
    assert all(r.seconds >= 0 for r in runner.results)


def test_cancellation_stops_the_run_and_leaves_the_rest_skipped():
    runner = Runner(["passes", "interrupted", "passes"], lambda name: StageParams())
    with pytest.raises(Cancelled):
        runner.run(context)
    assert [(r.name, r.status) for r in runner.results] == [
        ("passes", "passed"),
        ("interrupted", "failed"),
        ("passes", "skipped"),
    ]
    assert runner.results[1].error == "interrupted (SIGTERM)"
