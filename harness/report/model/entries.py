"""The report's item schema: what one scenario item recorded (checks, faults, requests, events,
effects, approvals, queue figures), the schema version and the report's error.

Imports nothing of the package.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# 2: the report carries the session's plan and identity, and each check its ``harness`` flag.
SCHEMA_VERSION: Literal["2"] = "2"


NONE_KEY = "none"
"""Row/column label for "no fault injected" and "no category reported"."""


Verdict = Literal["pass", "fail", "error"]


VERDICTS: tuple[Verdict, ...] = ("pass", "fail", "error")


class ReportError(Exception):
    """A report file cannot be used: missing, truncated, corrupt or of another schema version."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FiredFault(Strict):
    """A fault that actually fired during the run."""

    key: str
    surface: str
    where: str = ""
    call_index: int | None = None
    label: str = ""


class InjectedFault(Strict):
    """A fault the variant planned to inject (it may not have fired)."""

    key: str
    surface: str
    category: str | None = None
    transient: bool = False


class CheckOutcome(Strict):
    """One check's verdict on the run; ``passed`` is None when the check did not apply."""

    name: str
    passed: bool | None
    reason: str = ""
    # A failure of this check is the scenario's or the harness's (ERROR), not the agent's (FAIL).
    harness: bool = False


class EffectEntry(Strict):
    """A side effect committed by the run, with how many replays the ledger deduplicated."""

    tool: str
    idempotency_key: str | None = None
    replays: int = 0


class ApprovalEntry(Strict):
    """An approval the run asked for and what the reviewer decided."""

    approval_id: str
    tool: str
    decision: str | None = None


class RequestEntry(Strict):
    """One intercepted request of the run, in order, with the faults that touched it."""

    seq: int
    surface: str
    tool: str | None = None
    method: str
    url: str
    status: int | None = None
    error: str | None = None
    faults: list[str] = Field(default_factory=list)


class EventEntry(Strict):
    """One event of the run's log, in order: what the world and the driver saw (evidence).

    ``kind``: ``request`` (surface, tool, method, url, status or error, faults), ``commit``
    (tool, request_seq, idempotency_key, body), ``delivery`` (approval_id, tool, verdict,
    arguments, expires_at), ``crash`` (point, where), ``restart`` (fresh), ``blocked``
    (what, target). ``t`` is the fake clock.
    """

    seq: int
    kind: Literal["request", "commit", "delivery", "crash", "restart", "blocked"]
    t: float = 0.0
    surface: str | None = None
    tool: str | None = None
    method: str | None = None
    url: str | None = None
    status: int | None = None
    error: str | None = None
    faults: list[str] = Field(default_factory=list)
    request_seq: int | None = None
    idempotency_key: str | None = None
    body: str | None = None
    approval_id: str | None = None
    verdict: str | None = None
    arguments: str | None = None
    expires_at: float | None = None
    point: str | None = None
    where: str | None = None
    fresh: bool | None = None
    what: str | None = None
    target: str | None = None


class QueueFigures(Strict):
    """A load scenario's review queue as the harness measured it (``harness/load/``).

    Latencies are time to decision on the fake clock (delivery minus park), nearest rank;
    ``sla_met`` is None when no approval was decided.
    """

    runs: int
    capacity: int
    reviewers: int
    max_queue_length: int
    queued: int
    throttled: int
    throttle_events: int
    resumed_after_drain: int
    still_throttled: int
    silent_drops: int
    spurious_throttles: int
    decided: int
    expired: int
    latency_s: dict[str, float | None]
    sla_s: dict[str, float]
    sla_met: bool | None = None


class OutcomesEntry(Strict):
    """A fault cell's acceptable outcomes: the fault's own, or a rule's with its reason."""

    accept: list[str]
    declared: list[str] = Field(default_factory=list)
    # the accepted outcome the run ended in (None unless the item passed)
    held: str | None = None
    # why a scenario's matrix.outcomes or [tool.shakeout.outcomes] changed them (None: unchanged)
    reason: str | None = None
    source: str = "fault"  # fault | scenario | pyproject.toml


class ReportItem(Strict):
    """One scenario variant's outcome, as the runner produced it (or as the reporter inferred it).

    ``error`` holds the harness's own failure text (a collection error, a crashed worker, a
    runner exception) when there is one; the runner's entries leave it None.
    """

    nodeid: str
    scenario: str
    variant: str = "base"
    faults_fired: list[FiredFault] = Field(default_factory=list)
    faults_injected: list[InjectedFault] = Field(default_factory=list)
    terminal_state: str | None = None
    category: str | None = None
    verdict: Verdict
    checks: list[CheckOutcome] = Field(default_factory=list)
    effects: list[EffectEntry] = Field(default_factory=list)
    approvals: list[ApprovalEntry] = Field(default_factory=list)
    restarts: int = 0
    reexecuted_steps: int = 0
    duplicate_effects: int = 0
    crash: bool = False
    duration_s: float = 0.0
    seed: int = 0
    reproduce: str = ""
    outcomes: OutcomesEntry | None = None
    requests: list[RequestEntry] = Field(default_factory=list)
    events: list[EventEntry] = Field(default_factory=list)
    error: str | None = None
    queue: QueueFigures | None = None
    """A load scenario's queue figures; None for other items."""

    def injected_keys(self) -> list[str]:
        """Distinct injected fault keys in first-seen order, or ``["none"]`` when none were."""
        keys = list(dict.fromkeys(f.key for f in self.faults_injected))
        return keys or [NONE_KEY]

    def fired_keys(self) -> list[str]:
        """Distinct fired fault keys in first-seen order."""
        return list(dict.fromkeys(f.key for f in self.faults_fired))
