"""The refund desk as an OpenAI Agents SDK agent: look up an order, refund it once a human approves.

Ordinary application code: it imports the SDK and the desk's service client, never shakeout. The
tools reach the services through the ``DeskContext`` the run is given, and the refund carries an
``Idempotency-Key`` made of the run id and the SDK's tool call id, stable across retries and
across a resume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from agents import Agent, RunContextWrapper, function_tool
from agents.tool_context import ToolContext

from examples.desk_services import call_service

INSTRUCTIONS = (
    "You are a refund desk. Look up the customer's order with lookup_order, then refund the "
    "order's total with issue_refund when the customer asks for a refund. Answer in one sentence."
)

ORDER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "order_id": str,
    "total": (int, float),
    "currency": str,
}
REFUND_FIELDS: dict[str, type | tuple[type, ...]] = {"refund_id": str, "status": str}


@dataclass(frozen=True)
class DeskContext:
    """What the tools need from the run: its id, the services' client and the clock.

    Attributes:
        run_id: the run's id (the idempotency keys derive from it).
        http: a client whose base URL is the tool services'.
        sleep: waits this many seconds.
        now: the current time in seconds.
    """

    run_id: str
    http: httpx.Client
    sleep: Callable[[float], None]
    now: Callable[[], float]


@function_tool(failure_error_function=None)
def lookup_order(ctx: RunContextWrapper[DeskContext], order_id: str) -> dict[str, Any]:
    """Look up an order: its total and currency.

    Args:
        order_id: the order's id, e.g. O-1001.
    """
    desk = ctx.context
    return call_service(
        desk.http, "GET", f"/orders/{order_id}", fields=ORDER_FIELDS, sleep=desk.sleep, now=desk.now
    )


@function_tool(needs_approval=True, failure_error_function=None)
def issue_refund(ctx: ToolContext[DeskContext], order_id: str, amount: float) -> dict[str, Any]:
    """Refund an order (a human approves this first).

    Args:
        order_id: the order to refund.
        amount: the amount to refund, in the order's currency.
    """
    desk = ctx.context
    return call_service(
        desk.http,
        "POST",
        "/refunds",
        fields=REFUND_FIELDS,
        sleep=desk.sleep,
        now=desk.now,
        body={"order_id": order_id, "amount": amount},
        idempotency_key=f"{desk.run_id}:{ctx.tool_call_id}",
    )


def build_agent(model: str = "gpt-4.1-mini") -> Agent[DeskContext]:
    """The desk's agent (the model is replaced by the endpoint the run is pointed at)."""
    return Agent[DeskContext](
        name="refund-desk",
        instructions=INSTRUCTIONS,
        tools=[lookup_order, issue_refund],
        model=model,
    )
