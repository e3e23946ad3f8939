"""A two-request pydantic-ai agent (tool call, then answer) and its adapter for the harness."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

MODEL_BASE_URL = "http://model.shakeout.test/v1"
ORDER = {"order_id": "O-1001", "total": 49.99, "currency": "EUR"}


def build_agent(base_url: str = MODEL_BASE_URL) -> Agent[None, str]:
    """A pydantic-ai agent over an OpenAI-compatible endpoint with one local tool.

    One run is two model requests: the model calls ``get_order``, then answers in text.
    """
    provider = OpenAIProvider(base_url=base_url, api_key="sk-shakeout-test")
    agent: Agent[None, str] = Agent(OpenAIChatModel("shakeout-model", provider=provider))

    @agent.tool_plain
    def get_order(order_id: str) -> dict[str, Any]:
        """Look an order up."""
        return {**ORDER, "order_id": order_id}

    return agent


@dataclass(frozen=True)
class AgentOutcome:
    """The outcome the harness reads (a pydantic-ai run either answers or raises)."""

    run_id: str
    state: str
    category: str | None = None
    error: str | None = None
    pending_approval: None = None
    approvals: tuple[()] = ()


class PydanticAIAdapter:
    """Drives the pydantic-ai agent through the harness's adapter protocol."""

    def __init__(self, agent: Agent[None, str]) -> None:
        self.agent = agent
        self.answers: list[str] = []

    def begin(self, world: object) -> None:
        """Nothing persists between runs of this agent."""

    def start(self, payload: Mapping[str, Any]) -> AgentOutcome:
        """Run the agent on the payload's message."""
        result = self.agent.run_sync(str(payload["message"]))
        self.answers.append(result.output)
        return AgentOutcome(str(payload.get("run_id", "run")), "completed")

    def resume(self, run_id: str, decision: object = None) -> AgentOutcome:
        """Runs never park, so there is nothing to resume."""
        return AgentOutcome(run_id, "completed")

    def trace(self, run_id: str) -> None:
        """No trace."""
        return


def build_adapter(endpoints: Any) -> PydanticAIAdapter:
    """The factory (``benchmarks.pydantic_agent:build_adapter``)."""
    return PydanticAIAdapter(build_agent(str(endpoints.model_base_url)))


def scenario() -> dict[str, Any]:
    """The equivalent scenario: the model calls ``get_order``, then answers."""
    return {
        "name": "pydantic_ai_two_requests",
        "description": "A pydantic-ai agent calls one local tool, then answers.",
        "agent": "benchmarks.pydantic_agent:build_adapter",
        "input": {"run_id": "r1", "message": "What did order O-1001 cost?"},
        "model": {
            "base_url": MODEL_BASE_URL,
            "turns": [
                {"tool_call": {"name": "get_order", "arguments": {"order_id": "O-1001"}}},
                {"text": "Order O-1001 cost 49.99 EUR."},
            ],
        },
        "expect": {"state": "completed", "budget": {"model_calls": 2, "wall_s": 30}},
    }
