"""The desk's tools and the few lines that put its tool loop under shakeout's test harness.

The same desk runs on the OpenAI chat-completions API (:func:`build_adapter`) or the Anthropic
messages API (:func:`build_anthropic_adapter`): ``get_order`` is read-only, ``issue_refund``
is financial and irreversible (``gated``: the run parks until a human approves exactly its
arguments), and ``resolve`` ends the run with a typed resolution.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Literal

import anthropic
import httpx
import openai
from pydantic import BaseModel, ConfigDict

from shakeout_adapters.categories import ToolError
from shakeout_adapters.tool_http import ToolHttp
from shakeout_adapters.tool_loop import (
    Call,
    Tool,
    ToolLoopAdapter,
    Wire,
    anthropic_messages,
    openai_chat,
)

DEFECTS = {
    "swallow_tool_error": "get_order catches the service's error and returns a made-up order",
    "skip_approval": "issue_refund runs without asking for an approval",
}
"""Bugs planted on purpose, for shakeout's own tests (the suite must catch each)."""

SYSTEM = (
    "You are a support desk. Look the order up with get_order, refund a broken item's full "
    "price with issue_refund, then call resolve."
)


class GetOrder(BaseModel):
    """get_order's arguments."""

    model_config = ConfigDict(extra="forbid")
    order_id: str


class IssueRefund(BaseModel):
    """issue_refund's arguments: exactly the refund ledger's request body."""

    model_config = ConfigDict(extra="forbid")
    order_id: str
    amount: float
    currency: str


class Resolve(BaseModel):
    """How the desk closes a ticket."""

    model_config = ConfigDict(extra="forbid")
    resolution: Literal["refunded", "declined", "escalated"]
    note: str


class Order(BaseModel):
    """The order service's answer."""

    order_id: str
    total: float
    currency: str


class Refund(BaseModel):
    """The refund ledger's answer."""

    refund_id: str
    status: str


def _http(call: Call) -> ToolHttp:
    assert call.http is not None, "build the adapter with tools_http=httpx.Client(...)"
    return call.http


def get_order(call: Call) -> dict[str, Any]:
    """Look an order up by its id."""
    args = call.arguments
    assert isinstance(args, GetOrder)
    return _http(call).get(f"/orders/{args.order_id}", Order).model_dump()


def issue_refund(call: Call) -> dict[str, Any]:
    """Refund an order; the body is exactly the approved arguments, the key the call's own."""
    body = call.arguments.model_dump(mode="json")
    return _http(call).effect("POST", "/refunds", body, Refund, key=call.key).model_dump()


def _swallowing_get_order(call: Call) -> dict[str, Any]:
    # the planted bug: the service's failure is hidden behind a made-up answer
    try:
        return get_order(call)
    except ToolError:
        args = call.arguments
        assert isinstance(args, GetOrder)
        return {"order_id": args.order_id, "total": 49.99, "currency": "EUR"}


def _tools(defects: frozenset[str]) -> list[Tool]:
    lookup = _swallowing_get_order if "swallow_tool_error" in defects else get_order
    return [
        Tool("get_order", GetOrder, lookup, description="Look an order up by its id."),
        Tool(
            "issue_refund",
            IssueRefund,
            issue_refund,
            gated="skip_approval" not in defects,
            description="Refund an order (financial: a human approves it first).",
        ),
        Tool("resolve", Resolve, final=True, description="Close the ticket."),
    ]


def intake(payload: Mapping[str, Any]) -> str | None:
    """Why the ticket is rejected at intake, or None."""
    message = payload.get("message")
    if not isinstance(message, str) or not message.strip():
        return "the ticket has no message"
    if not isinstance(payload.get("ticket_id"), str):
        return "the ticket has no ticket_id"
    return None


def state_of(resolution: BaseModel) -> str:
    """The run's terminal state for the desk's resolution."""
    assert isinstance(resolution, Resolve)
    return {"refunded": "completed", "declined": "rejected", "escalated": "escalated"}[
        resolution.resolution
    ]


def _adapter(wire: Wire, endpoints: Any, defects: Collection[str]) -> ToolLoopAdapter:
    unknown = set(defects) - set(DEFECTS)
    if unknown:
        raise ValueError(f"unknown defect(s) {sorted(unknown)}; choose from {sorted(DEFECTS)}")
    return ToolLoopAdapter(
        wire,
        system=SYSTEM,
        tools=_tools(frozenset(defects)),
        prompt=lambda payload: str(payload["message"]),
        run_key="ticket_id",
        intake=intake,
        state_of=state_of,
        tools_http=httpx.Client(base_url=endpoints.tools_base_url, timeout=5.0),
    )


def build_adapter(endpoints: Any, *, defects: Collection[str] = ()) -> ToolLoopAdapter:
    """The factory for the OpenAI chat-completions loop (``loop_desk:build_adapter``)."""
    client = openai.OpenAI(base_url=endpoints.model_base_url, api_key=endpoints.api_key)
    return _adapter(openai_chat(client, endpoints.model), endpoints, defects)


def build_anthropic_adapter(endpoints: Any, *, defects: Collection[str] = ()) -> ToolLoopAdapter:
    """The factory for the Anthropic messages loop (``loop_desk:build_anthropic_adapter``)."""
    client = anthropic.Anthropic(base_url=endpoints.model_base_url, api_key=endpoints.api_key)
    return _adapter(anthropic_messages(client, endpoints.model), endpoints, defects)
