"""P1: the harness's cost over a hand-written MockTransport test of the same reference-agent run."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import httpx2

from benchmarks import refund
from benchmarks.figure import Figure, interleaved
from harness.adapter import Decision
from harness.run.runner import endpoints_of
from harness.world.clock import FakeClock
from reference_agent import build_adapter

REVIEW_DELAY_S = 1.0
"""The scripted reviewer's default delay before deciding (``ReviewStep.delay_s``)."""


@dataclass(frozen=True)
class HandWorld:
    """The world a hand-written test gives the agent: a state dir, a clock, no crash hooks."""

    state_dir: Path
    clock: FakeClock
    config: Mapping[str, Any]
    seed: int

    def boundary(self, point: str, step: str) -> None:
        """No crash points in a hand-written test."""


Served = tuple[int, tuple[tuple[str, str], ...], bytes]
JSON_HEADERS = (("content-type", "application/json"),)


class HandServer:
    """Serves the bytes a harness run of refund_happy received, as a hand-written handler would.

    Model answers are served in order (reset per run); tool answers by method and path.
    """

    def __init__(self, model: list[Served], tools: dict[tuple[str, str], Served]) -> None:
        self._model = model
        self._tools = tools
        self._next = 0

    @classmethod
    def recorded(cls) -> HandServer:
        """The answers of one harness run of refund_happy."""
        record = refund.run_and_judge(refund.base()).record
        model: list[Served] = []
        tools: dict[tuple[str, str], Served] = {}
        for e in record.exchanges:
            assert e.status is not None, "a fault-free run answers every request"
            served: Served = (e.status, JSON_HEADERS, e.response_body)
            if e.surface == "model":
                model.append(served)
            else:
                tools[(e.request.method, urlsplit(e.request.url).path)] = served
        return cls(model, tools)

    def reset(self) -> None:
        """Start a new run's model script."""
        self._next = 0

    def model(self, request: httpx2.Request) -> httpx2.Response:
        """The model's next answer."""
        request.read()
        status, headers, body = self._model[self._next]
        self._next += 1
        return httpx2.Response(status, headers=headers, content=body)

    def tool(self, request: httpx.Request) -> httpx.Response:
        """The tool's answer."""
        request.read()
        status, headers, body = self._tools[(request.method, request.url.path)]
        return httpx.Response(status, headers=headers, content=body)


def hand_written_run(server: HandServer) -> Callable[[], None]:
    """One run of the same agent, driven the way a hand-written pytest test would drive it."""
    endpoints = endpoints_of(refund.scenario())
    agent = build_adapter(
        endpoints,
        model_http_client=httpx2.Client(transport=httpx2.MockTransport(server.model)),
        tools_http_client=httpx.Client(transport=httpx.MockTransport(server.tool)),
    )
    payload = dict(refund.scenario().input)

    def run() -> None:
        server.reset()
        with tempfile.TemporaryDirectory(prefix="shakeout-") as tmp:
            clock = FakeClock()
            agent.begin(HandWorld(Path(tmp), clock, {}, refund.SEED))
            out = agent.start(payload)
            pending = out.pending_approval
            assert out.state == "awaiting_approval", out
            assert pending is not None, out
            clock.advance(REVIEW_DELAY_S)
            decision = Decision(pending.approval_id, True, pending.tool, dict(pending.arguments))
            out = agent.resume(out.run_id, decision)
            assert out.state == "completed", out
            agent.trace(out.run_id)

    return run


def measure(*, reps: int, batch: int) -> Figure:
    """P1: harness run (world, interception, driver, record, checks) / hand-written run."""
    server = HandServer.recorded()
    variant = refund.base()
    arms = {
        "harness": lambda: refund.run_and_judge(variant),
        "hand_written": hand_written_run(server),
    }
    for fn in arms.values():
        fn()  # warm both arms: imports, first-call caches
    times = interleaved(arms, reps=reps, batch=batch)
    harness, hand = times.median("harness"), times.median("hand_written")
    return Figure(
        id="P1",
        title="harness overhead, refund_happy (8 requests, reference agent)",
        ratio=times.ratio("harness", "hand_written"),
        target=1.10,
        op="<=",
        baseline=(
            "the same agent (same adapter calls, fresh SQLite state dir per run, clients reused) "
            "driven by a hand-written httpx2.MockTransport / httpx.MockTransport handler "
            "serving the bytes the harness served"
        ),
        medians={"harness_s_per_run": harness, "hand_written_s_per_run": hand},
        reps=reps,
        note=(
            f"median of {reps} paired ratios (interleaved repetitions of {batch} runs per arm); "
            "the agent's SQLite state lives in the default temp dir in both arms"
        ),
        extra={"cpu_ratio": round(times.ratio("harness", "hand_written", cpu=True), 4)},
    )
