"""The harness's scripted model behind an interceptor, for tests of the real SDKs' retries."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from faults.surfaces import FaultFiring, HttpRequest, ModelAnswer, ModelFault, WireFormat
from harness.world.clock import FakeClock
from harness.world.intercept import Answer, Interceptor
from harness.world.model import ScriptedModel, ToolErrorReaction


def scripted(
    wire_format: WireFormat, answer: ModelAnswer, fault: ModelFault, seen: list[HttpRequest]
) -> Interceptor:
    """The scripted model (one turn, ``answer``) answering with ``fault`` in its path; every
    request it sees is appended to ``seen``."""
    model = ScriptedModel(wire_format, (answer,))
    rng, clock = random.Random(1), FakeClock()

    def handler(request: HttpRequest) -> Answer:
        seen.append(request)
        return model.handle(request, (fault,), rng, clock, lambda firing: None).response

    return Interceptor(handler)


def record_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every ``time.sleep`` from now on (the SDK's retry waits), still slept for real."""
    slept: list[float] = []
    real: Callable[[float], None] = time.sleep

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        real(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    return slept


def reacting(
    wire_format: WireFormat, turns: tuple[ModelAnswer, ...], reaction: ToolErrorReaction
) -> tuple[Interceptor, list[FaultFiring]]:
    """The scripted model reacting to failed tool calls with ``reaction``, behind an
    interceptor; its firings are appended to the returned list."""
    model = ScriptedModel(wire_format, turns, on_tool_error=reaction)
    rng, clock = random.Random(1), FakeClock()
    firings: list[FaultFiring] = []

    def handler(request: HttpRequest) -> Answer:
        return model.handle(request, (), rng, clock, firings.append).response

    return Interceptor(handler), firings
