"""``python -m reference_agent demo``: one ticket end to end against in-process fakes.

Imports ``desk``, ``fakes`` and ``settings``.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reference_agent.desk import RefundDesk
from reference_agent.fakes import FakeModel, FakeTools, happy_script
from reference_agent.settings import Settings

_DAY = 86400.0


class _Clock:
    def __init__(self, start: float) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


@dataclass(frozen=True)
class _World:
    state_dir: Path
    clock: _Clock
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def boundary(self, point: str, step: str) -> None:
        """The demo never crashes on purpose."""


@dataclass(frozen=True)
class _Decision:
    approval_id: str
    approved: bool
    tool: str
    arguments: dict[str, Any]
    reviewer: str = "demo-reviewer"


def demo() -> int:
    """Run one ticket, approve its refund in-process, print the trace summary."""
    model = FakeModel(list(happy_script()))
    tools = FakeTools(
        orders={
            "O-1001": {
                "order_id": "O-1001",
                "customer_id": "C-7",
                "total": 80.0,
                "currency": "EUR",
                "placed_at": "2026-10-20",
                "refunded_amount": 0.0,
            }
        },
        customers={"C-7": {"customer_id": "C-7", "email": "ada@example.test", "name": "Ada"}},
        policy={"window_days": 30, "max_refund": 500.0},
    )
    desk = RefundDesk(
        Settings(model_base_url="http://model.demo/v1", tools_base_url="http://tools.demo"),
        model_http_client=model.client(),
        tools_http_client=tools.client(),
    )
    with tempfile.TemporaryDirectory() as tmp:
        clock = _Clock(1_793_000_000.0)  # 2026-10-26
        desk.begin(_World(Path(tmp), clock))
        ticket = {"ticket_id": "T-1", "customer_id": "C-7", "message": "My mug arrived broken."}
        outcome = desk.start(ticket)
        print(f"parked: {outcome.state}")
        pending = outcome.pending_approval
        if pending is None:
            print(f"expected a pending approval, got state {outcome.state}: {outcome.error}")
            return 1
        print("approval summary:\n  " + pending.summary.replace("\n", "\n  "))
        clock.sleep(120)
        outcome = desk.resume(
            outcome.run_id,
            _Decision(pending.approval_id, True, pending.tool, dict(pending.arguments)),
        )
        trace = desk.trace(outcome.run_id)
        assert trace is not None
        for r in trace.records:
            kind = r["kind"]
            if kind == "model_call":
                print(f"  model  {r['step']:<9} {r['method']} {r['url']} -> {r['status']}")
            elif kind == "tool_call":
                print(f"  tool   {r['step']:<9} {r['method']} {r['url']} -> {r['status']}")
            elif kind == "transition":
                print(f"  step   {r['step'] or '-':<9} -> {r['to']}")
            elif kind == "decision":
                what = (
                    r.get("decision")
                    or r.get("outcome")
                    or ("approved" if r.get("approved") else "")
                )
                print(f"  decide {r['step']:<9} {what}")
        print(f"terminal: {outcome.state} decision={outcome.decision} refund={outcome.refund_id}")
        desk.close()
        return 0 if outcome.state == "completed" else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``demo`` is the only command."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["demo"]:
        print("usage: python -m reference_agent demo", file=sys.stderr)
        return 2
    return demo()


if __name__ == "__main__":
    sys.exit(main())
