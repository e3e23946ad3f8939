"""Small fake contexts for fault tests: a fake clock, tool, model and stream call contexts."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from faults import base
from faults.surfaces import HttpRequest, HttpResponse, ModelAnswer, ToolCallSpec, WireFormat


@dataclass
class FakeClock:
    """A clock that only moves when slept on."""

    t: float = 1_767_225_600.0  # 2026-01-01T00:00:00Z

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class FakeToolCtx:
    """A tool call context whose service answers ``answer`` and counts its calls."""

    answer: HttpResponse = field(
        default_factory=lambda: HttpResponse.of_json(
            200,
            {"order_id": "O-1", "customer_id": "C-1", "total": 40.0, "currency": "EUR"},
            {"content-length": "80"},
        )
    )
    tool: str = "get_order"
    call_index: int = 1
    clock: FakeClock = field(default_factory=FakeClock)
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    calls: int = 0
    request: HttpRequest = field(
        default_factory=lambda: HttpRequest("GET", "http://tools.test/orders/O-1", {})
    )

    def call_service(self) -> HttpResponse:
        self.calls += 1
        return self.answer


REFUND_ARGS = {"amount": 25.0, "reason": "damaged on arrival"}


@dataclass
class FakeModelCtx:
    """A model call context with a scripted tool-call answer by default."""

    scripted: ModelAnswer | None = field(
        default_factory=lambda: ModelAnswer(
            tool_calls=(
                base_call(),
                base_call(name="escalate", arguments='{"reason": "x"}', id="call_2"),
            )
        )
    )
    previous: ModelAnswer | None = None
    call_index: int = 1
    wire_format: WireFormat = "openai_chat"
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    request: HttpRequest = field(
        default_factory=lambda: HttpRequest("POST", "http://model.test/chat/completions", {})
    )

    def error_event(self) -> bytes:
        if self.wire_format == "anthropic_messages":
            return b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n'
        return b'data: {"error":{"message":"server error","type":"server_error"}}\n\n'


def base_call(
    name: str = "propose_refund", arguments: str | None = None, id: str | None = "call_1"
) -> ToolCallSpec:
    """A scripted tool call, ``propose_refund`` with ``REFUND_ARGS`` by default."""
    return ToolCallSpec(name, json.dumps(REFUND_ARGS) if arguments is None else arguments, id)


@pytest.fixture
def tool_ctx() -> FakeToolCtx:
    """A fresh fake tool call context."""
    return FakeToolCtx()


@pytest.fixture
def model_ctx() -> FakeModelCtx:
    """A fresh fake model call context."""
    return FakeModelCtx()


@pytest.fixture
def make_tool_ctx() -> type[FakeToolCtx]:
    """The fake tool context class, to build one with a chosen answer."""
    return FakeToolCtx


@pytest.fixture
def make_model_ctx() -> type[FakeModelCtx]:
    """The fake model context class, to build one with a chosen script."""
    return FakeModelCtx


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    """Let a test register fault classes of its own, removed again afterwards."""
    before = dict(base._REGISTRY)
    yield
    base._REGISTRY.clear()
    base._REGISTRY.update(before)
