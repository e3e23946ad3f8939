"""The refund desk tests' world: a fake clock, boundary hook, world, decisions and scripts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reference_agent import RefundDesk
from reference_agent.fakes import Turn

START = 1_793_000_000.0  # 2026-10-26 (UTC), so an order placed 2026-10-20 is in the window
TICKET = {"ticket_id": "T-1", "customer_id": "C-7", "message": "My mug arrived broken."}
ORDER = {
    "order_id": "O-1001",
    "customer_id": "C-7",
    "total": 80.0,
    "currency": "EUR",
    "placed_at": "2026-10-20",
    "refunded_amount": 0.0,
}


class FakeClock:
    """A clock that only moves when told to; ``sleeps`` records every sleep."""

    def __init__(self, start: float = START) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


class Crash(BaseException):
    """A simulated crash raised from the boundary hook."""


@dataclass
class Boundary:
    """Records boundary calls; raises ``Crash`` once at ``crash_at`` (point, step)."""

    crash_at: tuple[str, str] | None = None
    seen: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, point: str, step: str) -> None:
        self.seen.append((point, step))
        if self.crash_at == (point, step):
            self.crash_at = None
            raise Crash(f"crash at {point} {step}")


@dataclass(frozen=True)
class World:
    state_dir: Path
    clock: FakeClock
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    boundary: Callable[[str, str], None] = field(default_factory=Boundary)


@dataclass(frozen=True)
class Decision:
    approval_id: str
    approved: bool
    tool: str
    arguments: dict[str, Any]
    reviewer: str = "test-reviewer"


def approve(outcome: Any, approved: bool = True, **override: Any) -> Decision:
    """A decision bound to the outcome's pending approval (fields overridable)."""
    pending = outcome.pending_approval
    assert pending is not None, f"expected a pending approval, got {outcome}"
    fields: dict[str, Any] = {
        "approval_id": pending.approval_id,
        "approved": approved,
        "tool": pending.tool,
        "arguments": dict(pending.arguments),
    }
    fields.update(override)
    return Decision(**fields)


def refund_script(amount: float = 40.0) -> list[Turn]:
    """Classify as a refund of O-1001, then propose ``amount``."""
    return [
        Turn(tool="classify_request", args={"intent": "refund", "order_id": "O-1001"}),
        Turn(tool="propose_refund", args={"amount": amount, "reason": "broken"}, call_id="c2"),
    ]


DeskFactory = Callable[..., RefundDesk]
