"""The desk's pydantic-ai agent and the few lines that put it under shakeout's test harness.

Two tools call the desk's HTTP services: ``get_order`` (read-only) and ``issue_refund``
(financial, irreversible: ``requires_approval=True``, so the run parks until a human decides).
The answer is a typed ``Resolution``; a text answer is re-asked by pydantic-ai.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict
from pydantic_ai import Agent, DeferredToolRequests, RunContext
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from shakeout_adapters.categories import LogicError, ToolError
from shakeout_adapters.pydantic_ai import PydanticAIAdapter, RunInfo
from shakeout_adapters.tool_http import ToolHttp

DEFECTS = {
    "swallow_tool_error": "get_order catches the service's error and returns a made-up order",
    "skip_approval": "issue_refund runs without asking for an approval",
}
"""Bugs planted on purpose, for shakeout's own tests (the suite must catch each)."""


class Order(BaseModel):
    """The order service's answer."""

    order_id: str
    total: float
    currency: str


class Refund(BaseModel):
    """The refund ledger's answer."""

    refund_id: str
    status: str


class Resolution(BaseModel):
    """How the desk closes a ticket."""

    model_config = ConfigDict(extra="forbid")

    resolution: Literal["refunded", "declined", "escalated"]
    note: str


@dataclass(frozen=True)
class Desk:
    """The agent's dependencies for one run."""

    run: RunInfo
    tools: ToolHttp
    defects: frozenset[str] = frozenset()


INSTRUCTIONS = (
    "You are a support desk. Look the order up with get_order, refund a broken item's full "
    "price with issue_refund, then answer with the resolution."
)


def build_agent(
    model_base_url: str,
    *,
    api_key: str = "sk-desk",
    model: str = "desk-model",
    defects: Collection[str] = (),
) -> Agent[Desk, Resolution | DeferredToolRequests]:
    """The desk's agent over an OpenAI-compatible endpoint.

    Args:
        model_base_url: the model endpoint.
        api_key: its key.
        model: the model name.
        defects: names from :data:`DEFECTS` (shakeout's tests only).
    """
    provider = OpenAIProvider(base_url=model_base_url, api_key=api_key)
    agent: Agent[Desk, Resolution | DeferredToolRequests] = Agent(
        OpenAIChatModel(model, provider=provider),
        deps_type=Desk,
        output_type=[Resolution, DeferredToolRequests],
        instructions=INSTRUCTIONS,
        retries=2,
    )

    @agent.tool
    def get_order(ctx: RunContext[Desk], order_id: str) -> dict[str, Any]:
        """Look an order up by its id."""
        try:
            return ctx.deps.tools.get(f"/orders/{order_id}", Order).model_dump()
        except ToolError:
            if "swallow_tool_error" not in ctx.deps.defects:
                raise
            # the planted bug: the failure is hidden behind a made-up answer
            return {"order_id": order_id, "total": 49.99, "currency": "EUR"}

    def issue_refund(
        ctx: RunContext[Desk], order_id: str, amount: float, currency: str
    ) -> dict[str, Any]:
        """Refund an order: financial and irreversible, so a human approves it first."""
        if ctx.tool_call_id is None:
            raise LogicError("the refund has no tool call id to derive its Idempotency-Key from")
        body = {"order_id": order_id, "amount": amount, "currency": currency}
        key = ctx.deps.run.idempotency_key(ctx.tool_call_id)
        return ctx.deps.tools.effect("POST", "/refunds", body, Refund, key=key).model_dump()

    agent.tool(requires_approval="skip_approval" not in defects)(issue_refund)
    return agent


def intake(payload: Mapping[str, Any]) -> str | None:
    """Why the ticket is rejected at intake, or None."""
    message = payload.get("message")
    if not isinstance(message, str) or not message.strip():
        return "the ticket has no message"
    if not isinstance(payload.get("ticket_id"), str):
        return "the ticket has no ticket_id"
    return None


def state_of(output: Resolution) -> str:
    """The run's terminal state for the agent's resolution."""
    return {"refunded": "completed", "declined": "rejected", "escalated": "escalated"}[
        output.resolution
    ]


def build_adapter(endpoints: Any, *, defects: Collection[str] = ()) -> PydanticAIAdapter[Desk]:
    """The factory shakeout calls once per worker (``chaos_agent = pai_desk:build_adapter``)."""
    unknown = set(defects) - set(DEFECTS)
    if unknown:
        raise ValueError(f"unknown defect(s) {sorted(unknown)}; choose from {sorted(DEFECTS)}")
    agent = build_agent(
        endpoints.model_base_url,
        api_key=endpoints.api_key,
        model=endpoints.model,
        defects=defects,
    )
    http = httpx.Client(base_url=endpoints.tools_base_url, timeout=5.0)
    return PydanticAIAdapter(
        agent,
        prompt=lambda payload: str(payload["message"]),
        deps=lambda run: Desk(run, ToolHttp(http, run.clock), frozenset(defects)),
        run_key="ticket_id",
        intake=intake,
        state_of=state_of,
    )
