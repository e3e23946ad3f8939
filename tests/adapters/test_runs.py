"""The ready adapters' shared run file, decision rule and run ids (``_runs``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shakeout_adapters._runs import (
    RunStore,
    Trace,
    approval_id_for,
    finish,
    judge,
    new_run,
    outcome_of,
    park,
    run_id_for,
    summarize,
)

PENDING = {
    "approval_id": "call-1",
    "tool": "issue_refund",
    "arguments": {"order_id": "O-1", "amount": 49.99},
    "summary": "",
    "expires_at": 100.0,
}


@dataclass(frozen=True)
class Decision:
    approval_id: str
    approved: bool
    tool: str
    arguments: dict[str, Any]


@given(
    approval_id=st.sampled_from(["call-1", "call-2"]),
    tool=st.sampled_from(["issue_refund", "send_email"]),
    amount=st.sampled_from([49.99, 99.98, "49.99"]),
    approved=st.booleans(),
    now=st.sampled_from([99.5, 100.0, 100.5]) | st.floats(0, 200),
)
def test_a_decision_is_applied_only_to_its_exact_call_before_expiry(
    approval_id: str, tool: str, amount: Any, approved: bool, now: float
) -> None:
    decision = Decision(approval_id, approved, tool, {"amount": amount, "order_id": "O-1"})
    verdict, why = judge(PENDING, decision, now)
    exact = approval_id == "call-1" and tool == "issue_refund" and amount == 49.99
    if now >= 100.0:  # from the expiry instant on, nothing revives the approval
        assert verdict == "expired"
    elif not exact:
        assert (verdict, why.startswith("refused")) == ("parked", True)
    else:
        assert verdict == ("approved" if approved else "rejected")


def test_no_decision_keeps_the_run_parked_until_it_expires() -> None:
    assert judge(PENDING, None, 99.5) == ("parked", "")
    assert judge(PENDING, None, 100.0)[0] == "expired"


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=4))
def test_the_run_id_is_the_same_for_the_same_input_in_any_key_order(
    payload: dict[str, Any],
) -> None:
    reordered = dict(reversed(list(payload.items())))
    assert run_id_for(payload) == run_id_for(reordered)


def test_a_run_key_names_the_run_and_an_approval_id_binds_the_exact_call() -> None:
    one = run_id_for({"ticket_id": "T-1", "message": "a"}, "ticket_id")
    assert one == run_id_for({"message": "b", "ticket_id": "T-1"}, "ticket_id")
    assert one != run_id_for({"ticket_id": "T-2", "message": "a"}, "ticket_id")
    first = approval_id_for(one, "issue_refund", "call-1", {"amount": 1})
    assert first == approval_id_for(one, "issue_refund", "call-1", {"amount": 1})
    assert first != approval_id_for(one, "issue_refund", "call-1", {"amount": 2})
    assert first != approval_id_for(one, "send_email", "call-1", {"amount": 1})


def test_a_parked_run_round_trips_through_the_store_and_keeps_its_first_expiry(
    tmp_path: Path,
) -> None:
    store = RunStore(tmp_path, "fw")
    doc = new_run("run-1", {"order_id": "O-1"})
    args = {"order_id": "O-1", "amount": 49.99}
    park(
        doc,
        approval_id="c1",
        tool="issue_refund",
        arguments=args,
        now=5.0,
        ttl_s=60.0,
        summary=summarize("issue_refund", args),
    )
    with store.locked():
        store.save(doc)
    again = store.load("run-1")
    assert again is not None
    # parking again on the same call (a replay after a crash) does not extend the approval
    park(
        again,
        approval_id="c1",
        tool="issue_refund",
        arguments=args,
        now=50.0,
        ttl_s=60.0,
        summary=summarize("issue_refund", args),
    )
    outcome = outcome_of(again)
    assert outcome.state == "awaiting_approval"
    assert outcome.pending_approval is not None
    assert outcome.pending_approval.expires_at == 65.0
    assert outcome.pending_approval.summary == 'issue_refund(order_id="O-1", amount=49.99)'
    assert len(outcome.approvals) == 1
    finish(again, "completed", None, None)
    assert outcome_of(again).pending_approval is None
    assert store.trace("run-1") == Trace(())
    store.record("run-1", {"kind": "tool_call", "method": "GET", "url": "http://t/orders/O-1"})
    assert store.trace("run-1") == Trace(
        ({"kind": "tool_call", "method": "GET", "url": "http://t/orders/O-1"},)
    )
    assert store.trace("unknown") is None
