"""RunRecord: the one frozen record of a run that checks and reports read."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from faults.base import Fault
from faults.surfaces import FaultFiring, HttpRequest
from harness.adapter import ApprovalRecord, Outcome


@dataclass(frozen=True)
class Exchange:
    """One request the world answered (or refused), in order of arrival."""

    seq: int
    surface: str  # "model" | "tool" | "unrouted"
    tool: str | None
    call_index: int
    request: HttpRequest
    status: int | None
    error: str | None
    faults: tuple[str, ...]
    t: float
    response_body: bytes = b""
    stream: bool = False
    crashed: bool = False  # a crash fault tore the agent down before the answer reached it


@dataclass(frozen=True)
class EffectRecord:
    """A side effect committed by a ledger service."""

    tool: str
    idempotency_key: str | None
    body: Any
    replays: int
    seq: int


@dataclass(frozen=True)
class Delivery:
    """A reviewer decision the harness delivered (or an expiry it let happen)."""

    approval_id: str
    tool: str
    verdict: str  # approve | deny | never
    arguments: Mapping[str, Any]
    bound_to_requested: bool
    seq_before: int  # number of exchanges seen before the decision was delivered
    accepted: bool | None = None  # whether the agent acted on it (None: unknown)


@dataclass(frozen=True)
class TraceCopy:
    """The agent's reasoning trace as the harness read it."""

    records: tuple[Mapping[str, Any], ...]
    kept_in_full: bool


@dataclass(frozen=True)
class RunRecord:
    """Everything that happened in one run of one scenario variant."""

    scenario: str
    variant: str
    seed: int
    faults: tuple[Fault, ...]
    exchanges: tuple[Exchange, ...]
    firings: tuple[FaultFiring, ...]
    effects: tuple[EffectRecord, ...]
    outcomes: tuple[Outcome, ...]
    deliveries: tuple[Delivery, ...] = ()
    restarts: int = 0
    trace: TraceCopy | None = None
    model_exhausted: int = 0
    timed_out: float | None = None  # the wall-clock limit that was hit, if any
    agent_exception: str | None = None  # an exception that escaped the agent (not a crash fault)
    harness_error: str | None = None  # the harness could not run the scenario
    duration_s: float = 0.0
    crashes: tuple[str, ...] = ()  # crash points that fired, e.g. "after_checkpoint:gather"
    boundaries: tuple[tuple[str, str], ...] = ()  # every (point, step) the agent reported
    notes: tuple[str, ...] = field(default=())

    @property
    def final(self) -> Outcome | None:
        """The last outcome the agent reported, if any."""
        return self.outcomes[-1] if self.outcomes else None

    @property
    def approvals(self) -> tuple[ApprovalRecord, ...]:
        """Every distinct approval request the agent made, in order."""
        seen: dict[str, ApprovalRecord] = {}
        for o in self.outcomes:
            for a in o.approvals:
                seen.setdefault(a.approval_id, a)
            if o.pending_approval is not None:
                seen.setdefault(o.pending_approval.approval_id, o.pending_approval)
        return tuple(seen.values())

    def tool_calls(self) -> Counter[str]:
        """Requests per tool, as seen at the transport."""
        return Counter(e.tool for e in self.exchanges if e.surface == "tool" and e.tool)

    def model_calls(self) -> int:
        """Model requests seen at the transport."""
        return sum(1 for e in self.exchanges if e.surface == "model")

    def committed_effects(self) -> Counter[str]:
        """Committed ledger effects per tool."""
        return Counter(e.tool for e in self.effects)

    def unrouted(self) -> tuple[Exchange, ...]:
        """Requests no scenario route matched (answered with a connect error)."""
        return tuple(e for e in self.exchanges if e.surface == "unrouted")

    def excerpt(self, around: int | None = None, width: int = 3) -> str:
        """A few exchanges as text (around ``seq`` when given), for failure output."""
        rows = self.exchanges
        if around is not None:
            rows = tuple(e for e in rows if abs(e.seq - around) <= width)
        elif len(rows) > 2 * width + 4:
            rows = rows[: width + 2] + rows[-(width + 2) :]
        lines = []
        for e in rows:
            answer = f"{e.status}" if e.status is not None else f"raised {e.error}"
            fired = f"  [fault: {', '.join(e.faults)}]" if e.faults else ""
            who = e.tool or e.surface
            lines.append(
                f"  #{e.seq:<3} {who:<18} {e.request.method:<6} {e.request.path} -> {answer}{fired}"
            )
        return "\n".join(lines) if lines else "  (no requests were made)"


def canonical(value: Any) -> str:
    """Canonical JSON (sorted keys, no whitespace) for comparing arguments and bodies."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
