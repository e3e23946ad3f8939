"""Tests for harness.run.driver: deadlines, the crash plan, the scripted reviewer, the run's
limits."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from faults.approval import ApprovalDeny, ApprovalDuplicate
from faults.base import Schedule
from faults.crash import CrashAfterCheckpoint, CrashBeforeStep, CrashWhileParked
from faults.surfaces import AgentCrash, ReviewAction
from harness.adapter import Decision, WorldContext
from harness.record import Delivery, EventLog
from harness.run.driver import (
    MAX_RESTARTS,
    MAX_REVIEW_ROUNDS,
    CrashPlan,
    DriveResult,
    Reviewer,
    RunTimedOut,
    call_with_deadline,
    drive,
)
from harness.world.clock import FakeClock

# --------------------------------------------------------------------------- call_with_deadline


def test_call_with_deadline_returns_the_value() -> None:
    assert call_with_deadline(lambda: 42, 5.0) == 42


def test_call_with_deadline_reraises_in_the_callers_thread() -> None:
    def boom() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        call_with_deadline(boom, 5.0)


def test_call_with_deadline_abandons_a_hung_call_as_a_daemon() -> None:
    release = threading.Event()
    with pytest.raises(RunTimedOut):
        call_with_deadline(lambda: release.wait(10.0), 0.05)
    hung = [t for t in threading.enumerate() if t.name == "shakeout-agent-call"]
    assert hung
    assert all(t.daemon for t in hung)
    release.set()
    for t in hung:
        t.join(5.0)


def test_call_with_deadline_carries_a_crash_signal() -> None:
    def crash() -> None:
        raise AgentCrash("at before_step:gather")

    with pytest.raises(AgentCrash):
        call_with_deadline(crash, 5.0)


def test_calls_run_in_order_on_one_reused_worker_thread_off_the_callers() -> None:
    seen: list[tuple[int, threading.Thread]] = []

    def note(i: int) -> None:
        seen.append((i, threading.current_thread()))

    for i in range(5):
        call_with_deadline(partial(note, i), 5.0)
    assert [i for i, _ in seen] == list(range(5))
    # Thread objects, not idents: a finished thread's ident may be handed to the next one
    assert all(t is seen[0][1] for _, t in seen)
    assert seen[0][1] is not threading.current_thread()


def test_an_error_leaves_the_worker_reusable() -> None:
    def boom() -> None:
        raise KeyError("gone")

    with pytest.raises(KeyError):
        call_with_deadline(boom, 5.0)
    first = call_with_deadline(threading.current_thread, 5.0)
    assert call_with_deadline(threading.current_thread, 5.0) is first


def test_after_a_hung_call_the_next_call_runs_on_a_fresh_thread() -> None:
    release = threading.Event()
    hung_on: list[threading.Thread] = []

    def hang() -> None:
        hung_on.append(threading.current_thread())
        release.wait(10.0)

    with pytest.raises(RunTimedOut):
        call_with_deadline(hang, 0.05)
    try:
        # the abandoned thread still runs the hung call; the next one is not queued behind it
        after = call_with_deadline(threading.current_thread, 5.0)
        assert after is not hung_on[0]
    finally:
        release.set()


# --------------------------------------------------------------------------- CrashPlan


def test_crash_plan_raises_at_the_targeted_boundary_only() -> None:
    plan = CrashPlan([CrashAfterCheckpoint(target="gather")], random.Random(1))
    plan.boundary("before_step", "gather")
    plan.boundary("after_checkpoint", "classify")
    with pytest.raises(AgentCrash, match="crash_after_checkpoint at after_checkpoint:gather"):
        plan.boundary("after_checkpoint", "gather")
    plan.boundary("after_checkpoint", "gather")  # nth=1 by default: the second pass is spared
    assert plan.fired == ["after_checkpoint:gather"]
    assert [(f.key, f.where, f.call_index) for f in plan.firings] == [
        ("crash_after_checkpoint", "after_checkpoint:gather", 1)
    ]
    assert plan.seen[0] == ("before_step", "gather")
    assert len(plan.seen) == 4


def test_crash_plan_counts_untargeted_boundaries_across_steps() -> None:
    plan = CrashPlan([CrashBeforeStep(at=Schedule(nth=3))], random.Random(1))
    plan.boundary("before_step", "intake")
    plan.boundary("before_step", "classify")
    with pytest.raises(AgentCrash):
        plan.boundary("before_step", "gather")
    assert plan.fired == ["before_step:gather"]


def test_crash_plan_parks_a_crash_for_its_review_round() -> None:
    plan = CrashPlan([CrashWhileParked(at=Schedule(nth=2))], random.Random(1))
    assert plan.parked_crash(1) is None
    assert isinstance(plan.parked_crash(2), CrashWhileParked)
    assert plan.fired == ["while_parked:2"]


# --------------------------------------------------------------------------- Reviewer


def test_reviewer_follows_its_script_then_never_decides() -> None:
    reviewer = Reviewer([ReviewAction("approve")], [], random.Random(1))
    assert reviewer.next_action("issue_refund", {}).verdict == "approve"
    assert reviewer.next_action("issue_refund", {}).verdict == "never"
    assert reviewer.rounds == 2


def test_reviewer_is_bent_by_an_approval_fault_on_its_target() -> None:
    reviewer = Reviewer(
        [ReviewAction("approve"), ReviewAction("approve")],
        [ApprovalDeny(target="issue_refund")],
        random.Random(1),
    )
    assert reviewer.next_action("issue_refund", {"amount": 1}).verdict == "deny"
    assert reviewer.next_action("issue_refund", {"amount": 1}).verdict == "approve"
    assert [(f.key, f.where, f.call_index) for f in reviewer.firings] == [
        ("approval_deny", "approval:issue_refund", 1)
    ]


def test_reviewer_leaves_other_tools_alone() -> None:
    reviewer = Reviewer(
        [ReviewAction("approve")], [ApprovalDeny(target="send_email")], random.Random(1)
    )
    assert reviewer.next_action("issue_refund", {}).verdict == "approve"
    assert reviewer.firings == []


# --------------------------------------------------------------------------- drive


@dataclass(frozen=True)
class _Approval:
    approval_id: str = "apr-1"
    tool: str = "issue_refund"
    arguments: Mapping[str, Any] = field(default_factory=lambda: {"amount": 1})
    summary: str = "refund 1"
    expires_at: float = 1e12


@dataclass(frozen=True)
class _Outcome:
    run_id: str = "run-1"
    state: str = "completed"
    category: str | None = None
    error: str | None = None
    pending_approval: _Approval | None = None
    approvals: tuple[_Approval, ...] = ()


class _Agent:
    """A scripted adapter: reports a boundary at start, parks ``parks`` times, then completes."""

    def __init__(self, parks: int = 0, pending: bool = True) -> None:
        self.parks = parks
        self.pending = pending
        self.world: WorldContext | None = None
        self.begins = 0
        self.decisions: list[Decision | None] = []

    def begin(self, world: WorldContext) -> None:
        self.world = world
        self.begins += 1

    def _parked(self) -> _Outcome:
        approval = _Approval() if self.pending else None
        return _Outcome(state="awaiting_approval", pending_approval=approval)

    def start(self, payload: Mapping[str, Any]) -> _Outcome:
        assert self.world is not None
        self.world.boundary("before_step", "intake")
        return self._parked() if self.parks else _Outcome()

    def resume(self, run_id: str, decision: Decision | None = None) -> _Outcome:
        self.decisions.append(decision)
        return self._parked() if len(self.decisions) < self.parks else _Outcome()

    def trace(self, run_id: str) -> None:
        return None


def _drive(
    agent: _Agent,
    tmp_path: Path,
    faults: tuple[Any, ...] = (),
    script: Any = (),
    log: EventLog | None = None,
    fresh: Any = None,
) -> Any:
    clock = FakeClock()
    world = WorldContext(tmp_path, clock, {}, 1, lambda point, step: None)
    result, plan, reviewer = drive(
        agent,  # type: ignore[arg-type]
        {"ticket_id": "T-1"},
        world=world,
        faults=faults,
        reviewer_script=script,
        rng=random.Random(1),
        wall_s=5.0,
        log=log if log is not None else EventLog(),
        clock_advance=clock.advance,
        monotonic=lambda: 0.0,
        fresh=fresh,
    )
    assert isinstance(result, DriveResult)
    assert isinstance(reviewer, Reviewer)
    return result, plan


def test_drive_restarts_after_a_crash_and_redelivers_the_input(tmp_path: Path) -> None:
    agent = _Agent()
    result, plan = _drive(agent, tmp_path, (CrashBeforeStep(target="intake"),))
    assert (result.restarts, agent.begins) == (1, 2)
    assert result.outcomes[-1].state.value == "completed"
    assert plan.fired == ["before_step:intake"]


def test_a_crash_resumes_in_a_fresh_adapter_and_the_log_says_so(tmp_path: Path) -> None:
    first, built = _Agent(), []

    def fresh() -> _Agent:
        built.append(_Agent())
        return built[-1]

    log = EventLog()
    result, _ = _drive(first, tmp_path, (CrashBeforeStep(target="intake"),), log=log, fresh=fresh)
    assert (first.begins, [a.begins for a in built]) == (1, [1])
    assert result.outcomes[-1].state.value == "completed"
    kinds = [(e.kind, getattr(e, "fresh", None)) for e in log.events()]
    assert kinds == [("crash", None), ("restart", True)]


def test_deliveries_are_numbered_in_the_log_with_time_and_expiry(tmp_path: Path) -> None:
    log = EventLog()
    log.next()  # a request before the approval
    result, _ = _drive(_Agent(parks=1), tmp_path, script=[ReviewAction("approve")], log=log)
    (delivery,) = result.deliveries
    assert delivery.seq == 2
    assert delivery.t == FakeClock().now() + 1.0  # the reviewer's default delay, fake clock
    assert log.of(Delivery) == (delivery,)


def test_drive_gives_up_after_the_restart_limit(tmp_path: Path) -> None:
    crash_always = CrashBeforeStep(target="intake", at=Schedule(every=True))
    result, _ = _drive(_Agent(), tmp_path, (crash_always,))
    assert result.agent_exception is None
    assert result.stopped is not None
    assert result.stopped.startswith(
        f"the harness stopped the run after {MAX_RESTARTS} restarts: every resumed run was "
        "crashed again"
    )
    assert "aim it at one call (at: {nth: N})" in result.stopped
    assert result.restarts == MAX_RESTARTS + 1


def test_drive_gives_up_after_the_review_round_limit(tmp_path: Path) -> None:
    script = [ReviewAction("approve")] * (MAX_REVIEW_ROUNDS + 2)
    result, _ = _drive(_Agent(parks=100), tmp_path, script=script)
    assert result.agent_exception is None
    assert result.stopped is not None
    assert result.stopped.startswith(
        f"the harness stopped the run after {MAX_REVIEW_ROUNDS} review rounds: the agent still "
        f"awaited approval (of "
    )
    assert "after resume(run_id, decision) a run must act on the decision" in result.stopped


def test_drive_records_each_delivery_bound_to_the_request(tmp_path: Path) -> None:
    agent = _Agent(parks=2)
    result, _ = _drive(agent, tmp_path, (ApprovalDuplicate(),), [ReviewAction("approve")])
    assert [(d.verdict, d.bound_to_requested) for d in result.deliveries] == [
        ("approve", True),
        ("approve", True),
    ]
    assert all(d is not None and d.approved for d in agent.decisions)


def test_drive_lets_an_undecided_approval_expire(tmp_path: Path) -> None:
    agent = _Agent(parks=1)
    result, _ = _drive(agent, tmp_path)
    assert [d.verdict for d in result.deliveries] == ["never"]
    assert agent.decisions == [None]


def test_parking_without_saying_on_what_is_a_contract_error(tmp_path: Path) -> None:
    result, _ = _drive(_Agent(parks=1, pending=False), tmp_path)
    assert result.harness_error is not None
    assert "'awaiting_approval' without a pending_approval" in result.harness_error


def test_set_up_in_begin_does_not_count_against_the_runs_wall_limit(tmp_path: Path) -> None:
    """begin() builds clients and imports SDKs (seconds on a loaded machine): the wall-clock
    limit starts after it, so slow set-up never turns into a timed-out run."""
    now = [0.0]

    class _SlowStart(_Agent):
        def begin(self, world: WorldContext) -> None:
            super().begin(world)
            now[0] += 60.0  # set-up that took far longer than the 5 s limit

    clock = FakeClock()
    world = WorldContext(tmp_path, clock, {}, 1, lambda point, step: None)
    result, _, _ = drive(
        _SlowStart(),  # type: ignore[arg-type]
        {"ticket_id": "T-1"},
        world=world,
        faults=(),
        reviewer_script=(),
        rng=random.Random(1),
        wall_s=5.0,
        log=EventLog(),
        clock_advance=clock.advance,
        monotonic=lambda: now[0],
    )
    assert result.timed_out is None
    assert result.outcomes[-1].state.value == "completed"
