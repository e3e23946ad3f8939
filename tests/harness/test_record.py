"""Tests for harness.record: the RunRecord's derived views and its request excerpt."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from faults.surfaces import HttpRequest
from harness.adapter import ApprovalRecord, Outcome, RunState
from harness.record import (
    Baseline,
    Blocked,
    Commit,
    Crash,
    Delivery,
    EventLog,
    Exchange,
    Restart,
    RunRecord,
    canonical,
    request_identity,
)


def exchange(
    seq: int, surface: str = "tool", tool: str | None = "get_order", **kw: Any
) -> Exchange:
    request = HttpRequest(
        kw.pop("method", "GET"), kw.pop("url", "http://tools.test/orders/O-1"), {}
    )
    return Exchange(
        seq,
        surface,
        tool if surface == "tool" else None,
        1,
        request,
        kw.pop("status", 200),
        kw.pop("error", None),
        kw.pop("faults", ()),
        0.0,
    )


def approval(approval_id: str) -> ApprovalRecord:
    return ApprovalRecord(approval_id, "issue_refund", {"amount": 1}, "refund 1", 10.0)


def record(*exchanges: Exchange, **kw: Any) -> RunRecord:
    return RunRecord(
        "s", "base", 1, (), exchanges, (), kw.pop("effects", ()), kw.pop("outcomes", ())
    )


def test_final_is_the_last_outcome() -> None:
    assert record().final is None
    first = Outcome("r", RunState.AWAITING_APPROVAL, None, None, approval("a1"))
    last = Outcome("r", RunState.COMPLETED, None, None, None, (approval("a1"),))
    assert record(outcomes=(first, last)).final is last


def test_approvals_are_deduplicated_in_order() -> None:
    parked = Outcome("r", RunState.AWAITING_APPROVAL, None, None, approval("a1"))
    again = Outcome("r", RunState.AWAITING_APPROVAL, None, None, approval("a2"), (approval("a1"),))
    done = Outcome("r", RunState.COMPLETED, None, None, None, (approval("a1"), approval("a2")))
    ids = [a.approval_id for a in record(outcomes=(parked, again, done)).approvals]
    assert ids == ["a1", "a2"]


def test_counts_by_surface() -> None:
    rec = record(
        exchange(1, "model", url="http://model.test/v1/chat/completions", method="POST"),
        exchange(2),
        exchange(3),
        exchange(4, tool="get_customer"),
        exchange(5, "unrouted", url="http://else.test/", status=None, error="connect"),
        effects=(
            Commit("send_email", "k", {}, 0, 4, 6),
            Commit("send_email", "j", {}, 0, 4, 7),
        ),
    )
    assert rec.model_calls() == 1
    assert dict(rec.tool_calls()) == {"get_order": 2, "get_customer": 1}
    assert dict(rec.committed_effects()) == {"send_email": 2}
    assert [e.seq for e in rec.unrouted()] == [5]


def test_excerpt_shows_status_errors_and_faults() -> None:
    rec = record(
        exchange(1, status=503, faults=("tool_http_503",)),
        exchange(2, "unrouted", url="http://else.test/x", status=None, error="connect"),
    )
    lines = rec.excerpt().splitlines()
    assert lines[0] == "  #1   get_order          GET    /orders/O-1 -> 503  [fault: tool_http_503]"
    assert lines[1] == "  #2   unrouted           GET    /x -> raised connect"


def test_excerpt_without_requests_says_so() -> None:
    assert record().excerpt() == "  (no requests were made)"


def test_excerpt_around_a_request_keeps_its_neighbours() -> None:
    rec = record(*(exchange(i) for i in range(1, 21)))
    shown = [int(line.split()[0][1:]) for line in rec.excerpt(around=10, width=2).splitlines()]
    assert shown == [8, 9, 10, 11, 12]


def test_a_long_excerpt_keeps_its_head_and_tail() -> None:
    rec = record(*(exchange(i) for i in range(1, 21)))
    shown = [int(line.split()[0][1:]) for line in rec.excerpt(width=3).splitlines()]
    assert shown == [1, 2, 3, 4, 5, 16, 17, 18, 19, 20]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.recursive(
        json_values | st.floats() | st.decimals(allow_nan=False) | st.dates(),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=8,
    )
)
def test_canonical_is_json_dumps_with_sorted_keys_and_no_whitespace(value: Any) -> None:
    # one shared encoder gives what a fresh json.dumps per call gives (non-JSON leaves as str)
    want = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    assert canonical(value) == want


@given(st.dictionaries(st.text(max_size=3), json_values, max_size=4))
def test_canonical_ignores_key_order(value: dict[str, Any]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert canonical(reordered) == canonical(value)
    assert " " not in canonical({"a": [1, 2]})


def test_event_log_numbers_every_event_once_and_reads_them_in_order() -> None:
    log = EventLog()
    first, second, third = log.next(), log.next(), log.next()
    # appended out of order (a request's event is complete only after its commit)
    log.add(Commit("issue_refund", "k", {"amount": 1}, 0, first, second))
    log.add(exchange(first))
    log.add(Delivery("apr-1", "issue_refund", "approve", {"amount": 1}, True, third))
    assert [e.seq for e in log.events()] == [1, 2, 3]
    assert [type(e).__name__ for e in log.events()] == ["Exchange", "Commit", "Delivery"]
    assert log.of(Commit)[0].request_seq == 1
    assert log.count() == 3


def test_events_merge_every_kind_by_number() -> None:
    rec = RunRecord(
        "s",
        "base",
        1,
        (),
        (exchange(1), exchange(4)),
        (),
        (Commit("send_email", "k", {}, 0, 4, 5),),
        (),
        deliveries=(Delivery("a", "send_email", "approve", {"to": "x"}, True, 3),),
        others=(Crash("before_step", "act", 2), Restart(6), Blocked("connect", "1.2.3.4:443", 7)),
    )
    assert [e.kind for e in rec.events] == [
        "request",
        "crash",
        "delivery",
        "request",
        "commit",
        "restart",
        "blocked",
    ]
    assert [b.target for b in rec.blocked] == ["1.2.3.4:443"]
    lines = rec.excerpt().splitlines()
    assert "(commit)" in lines[4]
    assert "effect of request #4" in lines[4]
    assert "(blocked)" in lines[6]
    assert "connect 1.2.3.4:443" in lines[6]


def test_request_identity_is_the_idempotency_key_of_an_effect() -> None:
    a = HttpRequest("POST", "http://t/refunds", {"Idempotency-Key": "k1"}, b'{"amount": 1}')
    b = HttpRequest("POST", "http://t/refunds", {"idempotency-key": "k1"}, b'{"amount": 2}')
    c = HttpRequest("POST", "http://t/refunds", {}, b'{"amount": 1}')
    assert request_identity("issue_refund", a) == request_identity("issue_refund", b)
    assert request_identity("issue_refund", a) != request_identity("issue_refund", c)
    # a model request is identified by its body: the SDK's own retry sends the same one
    m1 = HttpRequest("POST", "http://m/v1/chat/completions", {}, b'{"messages": [1]}')
    m2 = HttpRequest("POST", "http://m/v1/chat/completions", {}, b'{"messages": [1, 2]}')
    assert request_identity(None, m1) != request_identity(None, m2)


def test_baseline_keeps_effects_and_approvals_in_order() -> None:
    rec = RunRecord(
        "s",
        "base",
        1,
        (),
        (exchange(1), exchange(3, tool="issue_refund"), exchange(5, tool="send_email")),
        (),
        (
            Commit("issue_refund", "k", {"amount": 1}, 0, 3, 4),
            Commit("send_email", "m", {"to": "x"}, 0, 5, 6),
        ),
        (Outcome("r", RunState.COMPLETED, None, None, None),),
        deliveries=(Delivery("a", "issue_refund", "approve", {"amount": 1}, True, 2),),
    )
    base = Baseline.of(rec)
    assert base.state == "completed"
    assert base.effects == (("issue_refund", {"amount": 1}), ("send_email", {"to": "x"}))
    assert base.approvals == (("issue_refund", {"amount": 1}),)
