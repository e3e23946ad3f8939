"""Deterministic refund rules applied to the model's proposal: window, remainder, maximum.

Part of the workflow (a team rewrites it with its own rules): imports ``errors`` and
``schemas`` only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from reference_agent.errors import SchemaViolation
from reference_agent.schemas import OrderBody, PolicyBody

_CENT = 0.005


def check_proposal(
    amount: float, reason: str, order: OrderBody, policy: PolicyBody, today: dt.date
) -> dict[str, Any]:
    """Judge a proposed refund against the order and the policy.

    Returns:
        ``{"decision": "refund", ...}`` or ``{"decision": "declined", "why": ...}``.

    Raises:
        SchemaViolation: the amount exceeds what may be refunded (a model error: the model gets
            one corrective re-ask carrying this message).
    """
    if order.refunded_amount >= order.total:
        return {
            "decision": "declined",
            "why": "already_refunded",
            "detail": f"order {order.order_id} is already fully refunded",
        }
    age_days = (today - order.placed_at).days
    if age_days > policy.window_days:
        return {
            "decision": "declined",
            "why": "outside_window",
            "detail": (
                f"order {order.order_id} was placed {age_days} days ago, outside the "
                f"{policy.window_days}-day refund window"
            ),
        }
    remaining = round(order.total - order.refunded_amount, 2)
    if amount > remaining + _CENT:
        raise SchemaViolation(
            f"amount exceeds the refundable remainder: proposed {amount} {order.currency}, "
            f"at most {remaining} {order.currency} (total {order.total}, already refunded "
            f"{order.refunded_amount}); propose an amount no higher than {remaining}"
        )
    if amount > policy.max_refund + _CENT:
        raise SchemaViolation(
            f"amount exceeds the policy maximum: proposed {amount} {order.currency}, the "
            f"maximum refund is {policy.max_refund}; propose at most {policy.max_refund} "
            "or escalate"
        )
    return {
        "decision": "refund",
        "amount": round(amount, 2),
        "currency": order.currency,
        "reason": reason,
    }
