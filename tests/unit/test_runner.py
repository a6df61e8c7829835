"""The runner on plain-Python stages: ordering, isolation of failures, cancellation.
(The real stages run on a real cluster in tests/cluster.)"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from ray.exceptions import ActorUnavailableError

from raybricks.errors import Cancelled, ClusterLost
from raybricks.run import runner as runner_module
from raybricks.run.runner import Runner
from raybricks.stages.base import Stage, StageContext, StageParams, StageSkipped, expect
from tests.helpers import ScriptedHead

ran: list[str] = []


class Passes(Stage[StageParams]):
    summary = "records a count"

    def run(self, ctx: StageContext, params: StageParams) -> None:
        ran.append(NAMES[type(self)])
        ctx.record(count=3)

    @staticmethod
    def headline(evidence: dict) -> str:
        return f"counted {evidence['count']}"


class ExpectFails(Stage[StageParams]):
    summary = "its pattern misbehaves"

    def run(self, ctx: StageContext, params: StageParams) -> None:
        ran.append(NAMES[type(self)])
        ctx.record(seen=[2, 1])
        expect(False, "order lost: [2, 1]")


class Raises(Stage[StageParams]):
    summary = "a bug"

    def run(self, ctx: StageContext, params: StageParams) -> None:
        ran.append(NAMES[type(self)])
        raise KeyError("oops")


class Interrupted(Stage[StageParams]):
    summary = "SIGTERM arrives while it works"
    cancelled_again_while_stopping = False

    def run(self, ctx: StageContext, params: StageParams) -> None:
        ran.append(NAMES[type(self)])
        os.kill(os.getpid(), signal.SIGTERM)
        try:
            ctx.wait(5)  # still working when the main thread handles the signal
        finally:
            if self.cancelled_again_while_stopping:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)  # the main thread handles it while it waits for this stage
            ctx.record(cleaned_up=True)


class CancelledTwice(Interrupted):
    summary = "a second SIGTERM arrives while the runner stops it after the first"
    cancelled_again_while_stopping = True


class CannotRunHere(Stage[StageParams]):
    summary = "finds it cannot run on this cluster"

    def run(self, ctx: StageContext, params: StageParams) -> None:
        ran.append("cannot_run_here")
        raise StageSkipped("no GPU here")


class Hangs(Stage[StageParams]):
    summary = "never returns in time"

    def run(self, ctx: StageContext, params: StageParams) -> None:
        ran.append(NAMES[type(self)])
        ctx.record(started=True)
        try:
            ctx.wait(30)
        finally:
            ctx.record(cleaned_up=True)


class Meets(Stage[StageParams]):
    summary = "passes only while another stage runs at the same time"
    barrier = threading.Barrier(2, timeout=1.0)

    def run(self, ctx: StageContext, params: StageParams) -> None:
        ran.append(NAMES[type(self)])
        self.barrier.wait()


class HandsOver(Stage[StageParams]):
    """Records two handoffs as `raybricks.data` does."""

    summary = "hands a table to Ray and back"

    def run(self, ctx: StageContext, params: StageParams) -> None:
        leg = {"rows": 1_000_000, "bytes": 32 * 2**20, "why": "", "seconds": 1.234}
        ctx.record(
            handoffs=[
                {**leg, "direction": "to_ray", "route": "arrow"},
                {**leg, "direction": "to_spark", "route": "parquet", "bytes": None},
            ]
        )


TOYS: dict[str, type[Stage]] = {
    "passes": Passes,
    "expect_fails": ExpectFails,
    "raises": Raises,
    "interrupted": Interrupted,
    "cancelled_twice": CancelledTwice,
    "hangs": Hangs,
    "meets": Meets,
    "cannot_run_here": CannotRunHere,
    "hands_over": HandsOver,
}
NAMES = {stage: name for name, stage in TOYS.items()}


@pytest.fixture(autouse=True)
def fresh_toys():
    ran.clear()
    Meets.barrier.reset()


def selected(names: list[str]) -> list[tuple[str, type[Stage]]]:
    return [(name, TOYS[name]) for name in names]


def context(_stage: str = "") -> StageContext:
    return StageContext("ns", Path("/tmp/run"), "127.0.0.1:1")


def run(names: list[str]) -> Runner:
    runner = Runner(selected(names), lambda name: StageParams())
    runner.run(context)
    return runner


def test_a_stage_that_cannot_run_here_is_skipped_saying_why_and_the_run_passes(caplog):
    runner = run(["cannot_run_here", "passes"])
    skipped, _ = runner.results
    assert (skipped.status, skipped.reason, skipped.error) == ("skipped", "no GPU here", None)
    assert runner.passed
    assert "stage 1/2 cannot_run_here: skipped in" in caplog.text
    assert "(no GPU here)" in caplog.text


def test_a_stage_that_handed_data_over_names_each_handoff_on_its_line(caplog):
    with caplog.at_level("INFO"):
        run(["hands_over", "passes"])
    (ended,) = [r.getMessage() for r in caplog.records if "hands_over: passed" in r.getMessage()]
    assert ended.endswith(
        "; handed over to Ray 1,000,000 rows, 32.0 MB by arrow in 1.2 s; "
        "to Spark 1,000,000 rows by parquet in 1.2 s"
    )
    (other,) = [r.getMessage() for r in caplog.records if "passes: passed" in r.getMessage()]
    assert "handed over" not in other


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


@pytest.fixture
def sigterm_cancels():
    def cancel(signum, frame):
        raise Cancelled(signum)

    previous = signal.signal(signal.SIGTERM, cancel)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_a_signal_during_a_stage_cancels_the_run_and_leaves_the_rest_skipped(sigterm_cancels):
    runner = Runner(selected(["passes", "interrupted", "passes"]), lambda name: StageParams())
    clock = time.monotonic()
    with pytest.raises(Cancelled):
        runner.run(context)
    assert time.monotonic() - clock < 4  # did not wait for the stage to finish
    assert [(r.name, r.status) for r in runner.results] == [
        ("passes", "passed"),
        ("interrupted", "cancelled"),
        ("passes", "skipped"),
    ]
    assert runner.results[1].error == "interrupted (SIGTERM)"
    assert runner.results[1].evidence == {"cleaned_up": True}  # stopped, and its cleanup ran


def test_a_second_signal_while_stages_stop_still_records_how_each_ended(sigterm_cancels, caplog):
    runner = Runner(selected(["cancelled_twice"]), lambda name: StageParams())
    with caplog.at_level("INFO"), pytest.raises(Cancelled):
        runner.run(context)
    (result,) = runner.results
    assert (result.status, result.error) == ("cancelled", "interrupted (SIGTERM)")
    assert result.evidence == {"cleaned_up": True}
    assert "stage 1/1 cancelled_twice: cancelled" in caplog.text
    assert "SIGTERM while stopping the stages: finishing that first" in caplog.text


def test_a_stage_past_its_timeout_fails_and_the_next_one_runs():
    runner = Runner(selected(["hangs", "passes"]), lambda name: StageParams(), timeout_seconds=0.5)
    runner.run(context)
    hung, after = runner.results
    assert (hung.status, hung.error) == ("failed", "timed out after 0.5 s")
    assert hung.evidence["started"] is True
    assert 0.5 <= hung.seconds < 5
    assert ran == ["hangs", "passes"]
    assert after.status == "passed"


def test_worker_nodes_lost_or_joined_during_a_stage_are_recorded(caplog):
    snapshots = iter([{"a", "b"}, {"b", "c"}, {"b", "c"}, {"b", "c"}])
    runner = Runner(
        selected(["passes", "passes"]), lambda name: StageParams(), worker_nodes=snapshots.__next__
    )
    runner.run(context)
    changed, unchanged = runner.results
    assert changed.evidence == {
        "count": 3,
        "worker_nodes_lost": ["a"],
        "worker_nodes_joined": ["c"],
    }
    assert unchanged.evidence == {"count": 3}
    assert "stage passes: worker nodes lost: ['a']" in caplog.text


class LosesItsActor(Stage[StageParams]):
    def run(self, ctx: StageContext, params: StageParams) -> None:
        raise ActorUnavailableError("the actor is temporarily unavailable", None)


def test_a_stage_failing_for_want_of_an_actor_waits_for_ray_to_see_its_node_lost(monkeypatch):
    """Ray marks the node dead seconds after the actor became unreachable."""
    monkeypatch.setattr(runner_module, "CHECK_SECONDS", 0.01)
    snapshots = iter([{"a", "b"}, {"a", "b"}, {"a", "b"}, {"b"}])
    runner = Runner(
        [("loses", LosesItsActor)], lambda name: StageParams(), worker_nodes=snapshots.__next__
    )
    runner.run(context)
    (failed,) = runner.results
    assert failed.evidence["worker_nodes_lost"] == ["a"]
    assert failed.error.endswith("(worker node(s) lost meanwhile: a)")


def test_a_stage_that_failed_while_a_worker_node_was_lost_says_which():
    snapshots = iter([{"a", "b"}, {"b"}])
    runner = Runner(
        selected(["expect_fails"]), lambda name: StageParams(), worker_nodes=snapshots.__next__
    )
    runner.run(context)
    (failed,) = runner.results
    assert failed.status == "failed"
    assert failed.error.endswith(" (worker node(s) lost meanwhile: a)")


def test_parallel_stages_run_at_once_start_in_order_and_report_in_order():
    runner = Runner(selected(["meets", "meets", "passes"]), lambda name: StageParams(), parallel=2)
    runner.run(context)
    assert ran == ["meets", "meets", "passes"]
    assert [(r.name, r.status) for r in runner.results] == [
        ("meets", "passed"),
        ("meets", "passed"),
        ("passes", "passed"),
    ]


def test_one_stage_at_a_time_by_default():
    runner = Runner(selected(["meets", "meets"]), lambda name: StageParams())
    runner.run(context)
    assert [r.status for r in runner.results] == ["failed", "failed"]  # they never met
    assert runner.results[0].error == "BrokenBarrierError: "


def test_a_signal_stops_every_running_stage_and_leaves_the_rest_skipped(sigterm_cancels):
    runner = Runner(
        selected(["hangs", "interrupted", "passes"]), lambda name: StageParams(), parallel=2
    )
    with pytest.raises(Cancelled):
        runner.run(context)
    assert [(r.name, r.status, r.error) for r in runner.results] == [
        ("hangs", "cancelled", "interrupted (SIGTERM)"),
        ("interrupted", "cancelled", "interrupted (SIGTERM)"),
        ("passes", "skipped", None),
    ]
    assert all(r.evidence["cleaned_up"] for r in runner.results[:2])


def test_a_stage_past_its_timeout_fails_while_the_others_go_on():
    runner = Runner(
        selected(["hangs", "passes", "passes"]),
        lambda name: StageParams(),
        timeout_seconds=0.5,
        parallel=2,
    )
    runner.run(context)
    assert [(r.name, r.status) for r in runner.results] == [
        ("hangs", "failed"),
        ("passes", "passed"),
        ("passes", "passed"),
    ]
    assert runner.results[0].error == "timed out after 0.5 s"


def test_a_lost_head_stops_the_running_stages_and_leaves_the_rest_skipped():
    head = threading.Event()
    head.set()
    threading.Timer(0.3, head.clear).start()  # the head exits while `hangs` works
    nodes_asked: list[bool] = []

    def worker_nodes() -> set[str]:
        nodes_asked.append(head.is_set())
        return {"a"}

    runner = Runner(
        selected(["passes", "hangs", "passes"]), lambda name: StageParams(), 30, worker_nodes
    )
    clock = time.monotonic()
    with pytest.raises(ClusterLost, match="the Ray cluster's head exited"):
        runner.run(context, ScriptedHead(looks=head.is_set))
    assert time.monotonic() - clock < 5  # noticed within a look or two, not at the timeout
    assert [(r.name, r.status, r.error) for r in runner.results] == [
        ("passes", "passed", None),
        ("hangs", "failed", "interrupted (the Ray cluster's head exited)"),
        ("passes", "skipped", None),
    ]
    assert runner.results[1].evidence == {"started": True, "cleaned_up": True}
    assert False not in nodes_asked  # a cluster without its head is not asked for nodes


def test_a_passing_stage_says_what_it_proved_and_when_it_started():
    runner = run(["passes", "expect_fails"])
    passed, failed = runner.results
    assert passed.headline == "counted 3"
    assert failed.headline == "" and "order lost" in (failed.traceback or "")
    assert 0 <= passed.started_at_seconds <= failed.started_at_seconds  # type: ignore[operator]


@pytest.mark.parametrize(("autoscaling", "level"), [(False, "WARNING"), (True, "INFO")])
def test_nodes_coming_and_going_are_a_fault_unless_the_cluster_autoscales(
    autoscaling, level, caplog
):
    snapshots = iter([{"a"}, {"a", "b"}])
    runner = Runner(
        selected(["passes"]),
        lambda name: StageParams(),
        worker_nodes=snapshots.__next__,
        autoscaling=autoscaling,
    )
    runner.run(context)
    (record,) = [r for r in caplog.records if "worker nodes joined" in r.getMessage()]
    assert record.levelname == level
    assert runner.node_counts[0][1] == 1 and runner.node_counts[-1][1] == 2


def test_a_stage_is_recorded_before_its_end_is_logged_and_told_after(caplog):
    """A driver killed as its log says "passed" has already written the report that says
    so; the saved driver log, told after, has the line."""
    seen: list[tuple[str, bool]] = []

    def said() -> bool:
        return "stage 1/1 passes: passed in" in caplog.text

    runner = Runner(
        selected(["passes"]),
        lambda name: StageParams(),
        on_stage_end=lambda: seen.append(("recorded", said())),
        on_stage_said=lambda: seen.append(("told", said())),
    )
    runner.run(context)
    assert seen == [("recorded", False), ("told", True)]
