"""Policy rules (reference_agent/policy.py) on a proposal."""

from __future__ import annotations

import datetime as dt

import pytest

from reference_agent.errors import SchemaViolation
from reference_agent.policy import check_proposal
from reference_agent.schemas import OrderBody, PolicyBody

TODAY = dt.date(2026, 10, 26)
POLICY = PolicyBody(window_days=30, max_refund=50.0)


def order(**change: object) -> OrderBody:
    base = {
        "order_id": "O-1",
        "customer_id": "C-1",
        "total": 80.0,
        "currency": "EUR",
        "placed_at": dt.date(2026, 10, 20),
        "refunded_amount": 20.0,
    }
    return OrderBody.model_validate({**base, **change})


def test_within_limits_is_a_refund() -> None:
    verdict = check_proposal(50.0, "r", order(), POLICY, TODAY)
    assert verdict == {"decision": "refund", "amount": 50.0, "currency": "EUR", "reason": "r"}


@pytest.mark.parametrize(
    ("amount", "policy", "match"),
    [
        (60.01, PolicyBody(window_days=30, max_refund=999.0), "refundable remainder"),
        (50.5, POLICY, "policy maximum"),
    ],
)
def test_over_limit_is_a_schema_violation(amount: float, policy: PolicyBody, match: str) -> None:
    with pytest.raises(SchemaViolation, match=match):
        check_proposal(amount, "r", order(), policy, TODAY)


def test_window_edge_and_already_refunded() -> None:
    on_edge = order(placed_at=TODAY - dt.timedelta(days=30))
    assert check_proposal(1.0, "r", on_edge, POLICY, TODAY)["decision"] == "refund"
    late = order(placed_at=TODAY - dt.timedelta(days=31))
    assert check_proposal(1.0, "r", late, POLICY, TODAY)["why"] == "outside_window"
    done = order(refunded_amount=80.0)
    assert check_proposal(999.0, "r", done, POLICY, TODAY)["why"] == "already_refunded"
