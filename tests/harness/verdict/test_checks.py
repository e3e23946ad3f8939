"""Tests for harness.verdict: each check on hand-built RunRecords, and overall() precedence."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faults.base import Schedule, Surface
from faults.surfaces import FaultFiring, HttpRequest
from faults.tool import ToolHttp503
from harness.adapter import ApprovalRecord, Outcome, RunState
from harness.record import Commit, Delivery, Exchange, RunRecord, TraceCopy
from harness.scenario.expect import Expectation
from harness.verdict.base import Verdict
from harness.verdict.effects import (
    ApprovedEffects,
    ExpectedApprovals,
    ExpectedEffects,
    NoDuplicateEffects,
)
from harness.verdict.recovery import NoReexecution, reexecuted
from harness.verdict.suites import EXPECTATIONS, UNIVERSAL, evaluate, overall
from harness.verdict.terminal import (
    AllRequestsRouted,
    ExpectedCalls,
    ExpectedCategory,
    ExpectedState,
    FaultsFired,
    HarnessRan,
    ModelScriptSufficient,
    SingleCategory,
    TerminalStateReached,
    TraceCovers,
    TraceRetention,
    WithinBudget,
)

TOOLS = "http://tools.test"
MODEL_URL = "http://model.test/v1/chat/completions"
GATED = Expectation(gated_tools=frozenset({"issue_refund"}))
REFUND = {"order_id": "O-1", "amount": 10.0}


def tool(seq: int, name: str, method: str = "GET", key: str | None = None) -> Exchange:
    headers = {"Idempotency-Key": key} if key else {}
    request = HttpRequest(method, f"{TOOLS}/{name}", headers)
    return Exchange(seq, "tool", name, 1, request, 200, None, (), float(seq))


def model(seq: int) -> Exchange:
    return Exchange(seq, "model", None, seq, HttpRequest("POST", MODEL_URL, {}), 200, None, (), 0.0)


def outcome(state: str = "completed", category: str | None = None) -> Outcome:
    return Outcome("run-1", RunState(state), category, None if category is None else "boom", None)


def effect(
    seq: int, key: str | None, body: Mapping[str, Any] | None = None, name: str = "issue_refund"
) -> Commit:
    return Commit(name, key, dict(body or REFUND), 0, seq, seq)


def approve(seq: int, arguments: Mapping[str, Any] | None = None, **kw: Any) -> Delivery:
    return Delivery(
        kw.pop("approval_id", "apr-1"),
        "issue_refund",
        kw.pop("verdict", "approve"),
        dict(REFUND if arguments is None else arguments),
        kw.pop("bound_to_requested", True),
        seq,
        **kw,
    )


def record(**kw: Any) -> RunRecord:
    base: dict[str, Any] = {
        "scenario": "s",
        "variant": "base",
        "seed": 7,
        "faults": (),
        "exchanges": (model(1), tool(2, "get_order")),
        "firings": (),
        "effects": (),
        "outcomes": (outcome(),),
    }
    base.update(kw)
    return RunRecord(**base)


# --------------------------------------------------------------------------- universal


def test_harness_ran_is_an_error_when_the_harness_broke() -> None:
    assert HarnessRan().evaluate(record(), Expectation()).passed is True
    v = HarnessRan().evaluate(record(harness_error="route table broken"), Expectation())
    assert (v.passed, v.harness, v.reason) == (False, True, "route table broken")


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"timed_out": 1.5}, "no terminal state within 1.5 s (wall clock); the agent made 2"),
        ({"agent_exception": "RuntimeError: x"}, "the agent raised instead of ending"),
        ({"stopped": "the harness stopped the run after 16 review rounds"}, "the harness stopped"),
        ({"outcomes": ()}, "the agent reported no outcome"),
        ({"outcomes": (outcome("awaiting_approval"),)}, "ended parked in 'awaiting_approval'"),
    ],
)
def test_terminal_state_fails_without_a_terminal_state(kw: dict[str, Any], words: str) -> None:
    v = TerminalStateReached().evaluate(record(**kw), Expectation())
    assert v.passed is False
    assert not v.harness
    assert words in v.reason


def test_terminal_state_holds_and_skips_when_the_harness_broke() -> None:
    assert TerminalStateReached().evaluate(record(), Expectation()).reason == "completed"
    skipped = TerminalStateReached().evaluate(record(harness_error="x"), Expectation())
    assert skipped.passed is None


@pytest.mark.parametrize(
    ("state", "category", "passed"),
    [
        ("failed", "tool", True),
        ("failed", None, False),
        ("failed", "model+tool", False),
        ("failed", "network", False),
        ("completed", None, True),
        ("rejected", "logic", False),
    ],
)
def test_single_category(state: str, category: str | None, passed: bool) -> None:
    v = SingleCategory().evaluate(record(outcomes=(outcome(state, category),)), Expectation())
    assert v.passed is passed


def test_approved_effects_holds_for_a_bound_earlier_approval() -> None:
    rec = record(effects=(effect(5, "k1"),), deliveries=(approve(3),))
    assert ApprovedEffects().evaluate(rec, GATED).passed is True


def test_approved_effects_skips_without_gated_tools() -> None:
    rec = record(effects=(effect(5, "k1"),))
    assert ApprovedEffects().evaluate(rec, Expectation()).passed is None


@pytest.mark.parametrize(
    "deliveries",
    [
        pytest.param((), id="no-approval"),
        pytest.param((approve(9),), id="effect-before-approval"),
        pytest.param((approve(3, {"order_id": "O-1", "amount": 20.0}),), id="other-args"),
        pytest.param((approve(3, bound_to_requested=False),), id="not-bound-to-request"),
        pytest.param((approve(3, verdict="deny"),), id="denied"),
    ],
)
def test_approved_effects_fails(deliveries: tuple[Delivery, ...]) -> None:
    rec = record(effects=(effect(5, "k1"),), deliveries=deliveries)
    v = ApprovedEffects().evaluate(rec, GATED)
    assert v.passed is False
    assert "effect on gated tool 'issue_refund' (request #5" in v.reason
    assert v.around == 5


def test_approved_effects_fails_when_one_approval_is_reused() -> None:
    rec = record(effects=(effect(5, "k1"), effect(6, "k2")), deliveries=(approve(3),))
    v = ApprovedEffects().evaluate(rec, GATED)
    assert v.passed is False
    assert "request #6" in v.reason


def test_no_duplicate_effects_holds_for_distinct_keyed_effects() -> None:
    rec = record(effects=(effect(5, "k1"), effect(6, "k2", {"to": "a@b"}, "send_email")))
    assert NoDuplicateEffects().evaluate(rec, Expectation()).passed is True


@pytest.mark.parametrize(
    ("effects", "words"),
    [
        ((effect(5, "k1"), effect(6, "k1")), "idempotency key 'k1' has 2 committed effects"),
        ((effect(5, None),), "side effect on 'issue_refund' (request #5) was sent without"),
        (
            (effect(5, "k1"), effect(7, "k2")),
            "the same effect on 'issue_refund' was committed 2 times under different",
        ),
    ],
)
def test_no_duplicate_effects_fails(effects: tuple[Commit, ...], words: str) -> None:
    v = NoDuplicateEffects().evaluate(record(effects=effects), Expectation())
    assert v.passed is False
    assert words in v.reason


def test_faults_fired_is_an_error_when_a_declared_fault_never_fired() -> None:
    fault = ToolHttp503(target="get_order", at=Schedule(nth=3))
    v = FaultsFired().evaluate(record(faults=(fault,)), Expectation())
    assert (v.passed, v.harness) == (False, True)
    assert "never fired: tool_http_503@get_order#3" in v.reason
    fired = FaultFiring("tool_http_503", Surface.TOOL, "get_order", 3, {}, fault.label())
    ok = FaultsFired().evaluate(record(faults=(fault,), firings=(fired,)), Expectation())
    assert ok.passed is True
    assert FaultsFired().evaluate(record(), Expectation()).passed is None


def test_faults_fired_says_nothing_of_a_run_that_never_happened() -> None:
    fault = ToolHttp503(target="get_order", at=Schedule(nth=1))
    rec = record(faults=(fault,), exchanges=(), harness_error="base run failed (...)")
    v = FaultsFired().evaluate(rec, Expectation())
    assert (v.passed, v.reason) == (None, "the run did not happen (see harness_ran)")


def test_faults_fired_matches_by_label_not_by_key() -> None:
    # two faults share a key; only the one on get_customer fired: get_order's tested nothing
    on_order = ToolHttp503(target="get_order", at=Schedule(nth=1))
    on_customer = ToolHttp503(target="get_customer", at=Schedule(nth=1))
    fired = FaultFiring("tool_http_503", Surface.TOOL, "get_customer", 1, {}, on_customer.label())
    v = FaultsFired().evaluate(
        record(faults=(on_order, on_customer), firings=(fired,)), Expectation()
    )
    assert (v.passed, v.harness) == (False, True)
    assert "never fired: tool_http_503@get_order#1" in v.reason


def test_an_unrouted_request_in_a_cell_whose_base_run_had_none_is_the_agents_fail() -> None:
    stray = Exchange(
        3, "unrouted", None, 1, HttpRequest("GET", "http://else.test/x", {}), None, "connect", (), 0
    )
    proven = dataclasses.replace(Expectation(), routes_proven=True)
    v = AllRequestsRouted().evaluate(record(exchanges=(model(1), stray)), proven)
    assert (v.passed, v.harness) == (False, False)
    assert "the fault-free run made none" in v.reason


def test_requests_routed_is_an_error_for_an_unrouted_request() -> None:
    stray = Exchange(
        3, "unrouted", None, 1, HttpRequest("GET", "http://else.test/x", {}), None, "connect", (), 0
    )
    v = AllRequestsRouted().evaluate(record(exchanges=(model(1), stray)), Expectation())
    assert (v.passed, v.harness) == (False, True)
    assert "first: GET http://else.test/x" in v.reason
    assert AllRequestsRouted().evaluate(record(), Expectation()).passed is True


def test_model_turns_fails_when_the_script_ran_out() -> None:
    v = ModelScriptSufficient().evaluate(record(model_exhausted=2), Expectation())
    assert v.passed is False
    assert "made 2 model request(s) after the scripted turns ran out" in v.reason
    assert ModelScriptSufficient().evaluate(record(), Expectation()).passed is True


def traced(*exchanges: Exchange, kept: bool = True) -> TraceCopy:
    kinds = {"model": "model_call", "tool": "tool_call"}
    rows = tuple(
        {"kind": kinds[e.surface], "method": e.request.method.lower(), "url": e.request.url}
        for e in exchanges
    )
    return TraceCopy(rows, kept)


def test_trace_covers_every_request_seen() -> None:
    seen = (model(1), tool(2, "get_order"), tool(3, "get_order"))
    assert TraceCovers().evaluate(record(exchanges=seen, trace=traced(*seen)), GATED).passed


def test_trace_covers_fails_for_a_request_missing_from_the_trace() -> None:
    seen = (model(1), tool(2, "get_order"), tool(3, "get_order"))
    v = TraceCovers().evaluate(record(exchanges=seen, trace=traced(*seen[:2])), GATED)
    assert v.passed is False
    assert f"GET {TOOLS}/get_order was seen 2 time(s) at the transport but appears 1" in v.reason
    assert v.around == 2


def test_trace_covers_skips_without_a_trace_or_when_sampled_out() -> None:
    assert TraceCovers().evaluate(record(), GATED).passed is None
    sampled = record(trace=traced(kept=False))
    assert TraceCovers().evaluate(sampled, GATED).passed is None


def test_trace_covers_does_not_blame_the_agent_for_the_request_a_crash_cut_off() -> None:
    cut = dataclasses.replace(tool(2, "issue_refund", "POST", "k1"), error="crash", crashed=True)
    replay = tool(3, "issue_refund", "POST", "k1")
    rec = record(exchanges=(model(1), cut, replay), trace=traced(model(1), replay))
    assert TraceCovers().evaluate(rec, GATED).passed is True


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"outcomes": (outcome("failed", "tool"),)}, "the run failed but its trace"),
        (
            {
                "outcomes": (
                    Outcome(
                        "r",
                        RunState.COMPLETED,
                        None,
                        None,
                        None,
                        (ApprovalRecord("apr-1", "issue_refund", REFUND, "s", 1.0),),
                    ),
                )
            },
            "requested approval",
        ),
        ({"effects": (effect(5, "k1"),)}, "touched a gated tool"),
    ],
)
def test_trace_retention_fails_when_a_high_risk_run_is_not_kept(
    kw: dict[str, Any], words: str
) -> None:
    v = TraceRetention().evaluate(record(trace=traced(kept=False), **kw), GATED)
    assert v.passed is False
    assert words in v.reason


def test_trace_retention_lets_a_routine_run_be_sampled() -> None:
    v = TraceRetention().evaluate(record(trace=traced(kept=False)), GATED)
    assert (v.passed, v.reason) == (True, "sampled (routine run)")


# --------------------------------------------------------------------------- expectations


def test_expected_state_and_category() -> None:
    rec = record(outcomes=(outcome("failed", "model"),))
    expect = Expectation(state="failed", category="tool", check_category=True, origin="o")
    assert ExpectedState().evaluate(rec, expect).passed is True
    v = ExpectedCategory().evaluate(rec, expect)
    assert v.passed is False
    assert v.reason == "expected category 'tool' (o), got 'model': boom"
    wrong = ExpectedState().evaluate(rec, Expectation(state="completed", origin="o"))
    assert wrong.reason == "expected state 'completed' (o), got 'failed' (model: boom)"
    assert ExpectedCategory().evaluate(rec, Expectation(category="tool")).passed is None


def test_expected_effects_counts_per_tool() -> None:
    rec = record(effects=(effect(5, "k1"), effect(6, "k2", name="send_email")))
    ok = Expectation(effects={"issue_refund": 1, "send_email": 1})
    assert ExpectedEffects().evaluate(rec, ok).passed is True
    v = ExpectedEffects().evaluate(rec, Expectation(effects={"issue_refund": 0}, origin="o"))
    assert v.reason == (
        "committed effects differ (o): issue_refund: expected 0, got 1; "
        "send_email: expected 0, got 1"
    )


def test_expected_approvals_calls_and_budget() -> None:
    rec = record(exchanges=(model(1), model(2), tool(3, "get_order"), tool(4, "issue_refund")))
    assert ExpectedApprovals().evaluate(rec, Expectation(approvals=1)).passed is False
    made = ExpectedCalls().evaluate(rec, Expectation(calls_made=("get_customer",)))
    assert made.reason == "expected call(s) never made: get_customer"
    not_made = ExpectedCalls().evaluate(rec, Expectation(calls_not_made=("issue_refund",)))
    assert (not_made.passed, not_made.around) == (False, 4)
    assert WithinBudget().evaluate(rec, Expectation(max_model_calls=1)).reason == (
        "2 model requests, budget 1"
    )
    assert WithinBudget().evaluate(rec, Expectation(max_tool_calls=1)).passed is False
    assert WithinBudget().evaluate(rec, Expectation(max_model_calls=2, max_tool_calls=2)).passed


def test_every_check_skips_what_it_was_not_asked_about() -> None:
    names = {v.name: v.passed for v in evaluate(record(), Expectation())}
    assert len(names) == len(UNIVERSAL) + len(EXPECTATIONS)
    for name in ("expected_state", "expected_effects", "expected_calls", "budget"):
        assert names[name] is None


# --------------------------------------------------------------------------- re-execution


def test_no_reexecution_counts_only_the_excess_beyond_the_allowance() -> None:
    assert reexecuted({"a": 1, "(model)": 2}, {"a": 2, "b": 1, "(model)": 2}, {"a": 1}) == {"b": 1}


def test_no_reexecution_is_an_error_when_the_crash_never_fired() -> None:
    v = NoReexecution({"get_order": 1}).evaluate(record(), Expectation())
    assert (v.passed, v.harness) == (False, True)


def test_no_reexecution_names_the_tool_and_its_committed_effect() -> None:
    rec = record(
        exchanges=(tool(1, "issue_refund", "POST", "k1"), tool(2, "issue_refund", "POST", "k2")),
        effects=(effect(1, "k1"), effect(2, "k2")),
        crashes=("after_checkpoint:act",),
        restarts=1,
    )
    v = NoReexecution({"issue_refund": 1, "(model)": 0}).evaluate(rec, Expectation())
    assert v.passed is False
    assert v.reason == (
        "after 1 restart(s) at after_checkpoint:act, beyond the fault-free run: 1 request(s) to "
        "'issue_refund' (its effect committed 2 time(s), 0 replay(s) deduplicated by the "
        "ledger): a completed step was executed again"
    )
    allowed = NoReexecution({"issue_refund": 1, "(model)": 0}, {"issue_refund": 1})
    assert allowed.evaluate(rec, Expectation()).passed is True


# --------------------------------------------------------------------------- overall


@given(st.lists(st.sampled_from([(True, False), (None, False), (False, False), (False, True)])))
def test_overall_never_hides_a_fail_behind_an_error(flags: list[tuple[bool | None, bool]]) -> None:
    verdicts = [Verdict("c", passed, "", harness=harness) for passed, harness in flags]
    got = overall(verdicts)
    if (False, False) in flags:
        assert got == "fail"
    elif (False, True) in flags:
        assert got == "error"
    else:
        assert got == "pass"


def test_known_check_names_cover_every_check_a_policy_may_name() -> None:
    from harness.verdict.suites import known_check_names

    names = known_check_names()
    assert {c.name for c in (*UNIVERSAL, *EXPECTATIONS)} <= names
    assert {"no_reexecution", "input_handled"} <= names
