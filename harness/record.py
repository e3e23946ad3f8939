"""The run's event log and RunRecord: the one frozen record of a run that checks and reports read.

Evidence, not testimony: every event here was written by the harness as it happened (the world
answering a request, a ledger committing an effect, the driver delivering a decision, crashing
or restarting the agent, the network guard refusing a connection), numbered from one counter.
The order of two events is the order of their numbers, by construction: no ordering is ever
re-derived from timestamps. What the agent reports (its outcomes and trace) is kept apart.

Event kinds::

    Exchange    a request the world answered (or refused), with the answer it served
    Commit      a side effect a ledger committed, carrying the number of its request
    Delivery    a reviewer decision the driver delivered (or an expiry it let happen)
    Crash       a crash the harness caused (point and step)
    Restart     the agent rebuilt over its persisted state after a crash
    Blocked     a connection, DNS lookup or subprocess the network guard refused
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from faults.base import Fault
from faults.surfaces import FaultFiring, HttpRequest
from harness.adapter import ApprovalRecord, Outcome

if TYPE_CHECKING:
    from harness.load.record import LoadRecord

RECORD_BODY_LIMIT = 64 * 1024
"""Response bodies are kept in the record up to this many bytes."""


@dataclass(frozen=True)
class Exchange:
    """One request the world answered (or refused), numbered in order of arrival.

    Attributes:
        seq: the event number (the request's arrival).
        surface: ``model``, ``tool``, or ``unrouted`` (refused, no route).
        tool: the tool name for tool exchanges.
        call_index: 1-based index among calls to that tool, or among model requests.
        request: the request as intercepted.
        status: the response status (None when a transport error was raised instead).
        error: the transport error raised instead of a response (``kind: message``), or
            ``crash`` when a crash fault tore the agent down before the answer reached it.
        faults: labels of the faults that answered this request (empty: a real answer).
        t: the fake time when the request arrived.
        response_body: the response body, truncated to :data:`RECORD_BODY_LIMIT` bytes.
        stream: whether the response was streamed.
        crashed: a crash fault tore the agent down before the answer reached it.
        mono: the real (monotonic) time of arrival, for waits an SDK sleeps in real time.
        headers: the response headers served.
    """

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
    crashed: bool = False
    mono: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    kind: Literal["request"] = "request"

    @property
    def real(self) -> bool:
        """Whether the agent got the service's (or the script's) own answer, no fault."""
        return not self.faults and self.error is None and self.surface != "unrouted"

    def identity(self) -> str:
        """What makes two requests 'the same call' (see :func:`request_identity`)."""
        return request_identity(self.tool if self.surface == "tool" else None, self.request)


def request_identity(tool: str | None, request: HttpRequest) -> str:
    """What makes two requests 'the same call': an effect's idempotency key when it has one (a
    retry may rebuild the body), else tool, method, URL and body (the SDKs' own retries of a
    model request send the same body)."""
    key = request.header("Idempotency-Key")
    if tool and key:
        return f"{tool}|key|{key}"
    return f"{tool or '(model)'}|{request.method}|{request.url}|{request.body!r}"


@dataclass(frozen=True)
class Commit:
    """A side effect a ledger committed.

    Attributes:
        tool: the ledger's tool name.
        idempotency_key: the committing request's key (None: sent without one).
        body: the request body as JSON (its text when it was not JSON).
        replays: later requests with the same key, answered without a new effect.
        request_seq: the number of the request that committed it.
        seq: the event number of the commit (after ``request_seq``).
        t: the fake time of the commit.
    """

    tool: str
    idempotency_key: str | None
    body: Any
    replays: int
    request_seq: int
    seq: int = 0
    t: float = 0.0
    kind: Literal["commit"] = "commit"


@dataclass(frozen=True)
class Delivery:
    """A reviewer decision the harness delivered (or an expiry it let happen).

    Attributes:
        approval_id: the approval the decision answers.
        tool: the tool the approval is for.
        verdict: approve | deny | never.
        arguments: the arguments the decision is bound to.
        bound_to_requested: whether those are the arguments the agent asked approval for.
        seq: the event number of the delivery.
        t: the fake time of the delivery.
        expires_at: the approval's expiry as the agent reported it (fake clock).
    """

    approval_id: str
    tool: str
    verdict: str  # approve | deny | never
    arguments: Mapping[str, Any]
    bound_to_requested: bool
    seq: int
    t: float = 0.0
    expires_at: float | None = None
    kind: Literal["delivery"] = "delivery"


@dataclass(frozen=True)
class Crash:
    """A crash the harness caused: ``point`` (e.g. ``after_checkpoint``) at ``where``."""

    point: str
    where: str
    seq: int
    t: float = 0.0
    kind: Literal["crash"] = "crash"


@dataclass(frozen=True)
class Restart:
    """The agent was rebuilt over its persisted state (a fresh adapter from its factory)."""

    seq: int
    t: float = 0.0
    fresh: bool = True  # a new adapter instance (False: the same instance, no factory known)
    kind: Literal["restart"] = "restart"


@dataclass(frozen=True)
class Blocked:
    """An attempt to reach outside the world that the guard refused.

    ``what``: ``connect`` | ``sendto`` | ``getaddrinfo`` | ``subprocess``; ``target``: the
    address, host or command.
    """

    what: str
    target: str
    seq: int
    t: float = 0.0
    kind: Literal["blocked"] = "blocked"


Event = Exchange | Commit | Delivery | Crash | Restart | Blocked


class EventLog:
    """The run's event counter and log, shared by the world and the driver (thread-safe).

    ``next()`` hands out the next event number; an event is appended once it is complete (a
    request's answer is known after its commit), and reading sorts by number.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = 0
        self._events: list[Event] = []

    def next(self) -> int:
        """The next event number."""
        with self._lock:
            self._n += 1
            return self._n

    def add(self, event: Event) -> None:
        """Append a complete event (numbered with :meth:`next`)."""
        with self._lock:
            self._events.append(event)

    def count(self) -> int:
        """How many numbers were handed out so far."""
        with self._lock:
            return self._n

    def events(self) -> tuple[Event, ...]:
        """Every event so far, in number order."""
        with self._lock:
            return tuple(sorted(self._events, key=lambda e: e.seq))

    def of(self, kind: type[Any]) -> tuple[Any, ...]:
        """The events of one kind, in number order."""
        return tuple(e for e in self.events() if isinstance(e, kind))


@dataclass(frozen=True)
class TraceCopy:
    """The agent's reasoning trace as the harness read it."""

    records: tuple[Mapping[str, Any], ...]
    kept_in_full: bool


@dataclass(frozen=True)
class Baseline:
    """What the fault-free run of a scenario did: the oracle of its fault and crash cells.

    Attributes:
        state: the terminal state the base run reached (as reported; its effects are evidence).
        effects: the base run's committed effects in commit order, as ``(tool, body)``.
        approvals: the base run's approved actions, as ``(tool, arguments)``.
    """

    state: str | None
    effects: tuple[tuple[str, Any], ...]
    approvals: tuple[tuple[str, Mapping[str, Any]], ...] = ()

    @classmethod
    def of(cls, record: RunRecord) -> Baseline:
        """The baseline of a (fault-free) record."""
        final = record.final
        return cls(
            state=None if final is None else final.state.value,
            effects=tuple((c.tool, c.body) for c in record.effects),
            approvals=tuple(
                (d.tool, dict(d.arguments)) for d in record.deliveries if d.verdict == "approve"
            ),
        )


@dataclass(frozen=True)
class RunRecord:
    """Everything that happened in one run of one scenario variant.

    ``exchanges``, ``effects``, ``deliveries`` and ``events`` are the harness's evidence, all
    numbered from one event log; ``outcomes``, ``trace`` and ``boundaries`` are the agent's
    testimony.
    """

    scenario: str
    variant: str
    seed: int
    faults: tuple[Fault, ...]
    exchanges: tuple[Exchange, ...]
    firings: tuple[FaultFiring, ...]
    effects: tuple[Commit, ...]
    outcomes: tuple[Outcome, ...]
    deliveries: tuple[Delivery, ...] = ()
    restarts: int = 0
    trace: TraceCopy | None = None
    model_exhausted: int = 0
    timed_out: float | None = None  # the wall-clock limit that was hit, if any
    agent_exception: str | None = None  # an exception that escaped the agent (not a crash fault)
    stopped: str | None = None  # why the harness stopped a run that never settled
    harness_error: str | None = None  # the harness could not run the scenario
    duration_s: float = 0.0
    crashes: tuple[str, ...] = ()  # crash points that fired, e.g. "after_checkpoint:gather"
    boundaries: tuple[tuple[str, str], ...] = ()  # every (point, step) the agent reported
    notes: tuple[str, ...] = field(default=())
    others: tuple[Crash | Restart | Blocked, ...] = ()  # the remaining events of the log
    load: LoadRecord | None = None  # a load scenario's runs and queue (see harness/load/)

    @cached_property
    def events(self) -> tuple[Event, ...]:
        """The whole event log in number order."""
        merged: list[Event] = [*self.exchanges, *self.effects, *self.deliveries, *self.others]
        return tuple(sorted(merged, key=lambda e: e.seq))

    @property
    def blocked(self) -> tuple[Blocked, ...]:
        """Attempts to leave the world that the guard refused."""
        return tuple(e for e in self.others if isinstance(e, Blocked))

    @property
    def final(self) -> Outcome | None:
        """The last outcome the agent reported, if any."""
        return self.outcomes[-1] if self.outcomes else None

    @cached_property
    def approvals(self) -> tuple[ApprovalRecord, ...]:
        """Every distinct approval request the agent made, in order (read by several checks;
        built once, from the frozen outcomes)."""
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
        """A few events as text (around event ``around`` when given), for failure output."""
        rows = self.events
        if around is not None:
            rows = tuple(e for e in rows if abs(e.seq - around) <= width)
        elif len(rows) > 2 * width + 4:
            rows = rows[: width + 2] + rows[-(width + 2) :]
        lines = [describe(e) for e in rows]
        return "\n".join(lines) if lines else "  (no requests were made)"


def describe(e: Event) -> str:
    """One event as a line of the failure excerpt."""
    if isinstance(e, Exchange):
        answer = f"{e.status}" if e.status is not None else f"raised {e.error}"
        fired = f"  [fault: {', '.join(e.faults)}]" if e.faults else ""
        who = e.tool or e.surface
        return f"  #{e.seq:<3} {who:<18} {e.request.method:<6} {e.request.path} -> {answer}{fired}"
    if isinstance(e, Commit):
        return (
            f"  #{e.seq:<3} {'(commit)':<18} {e.tool} effect of request #{e.request_seq}: "
            f"{_short(canonical(e.body))}"
        )
    if isinstance(e, Delivery):
        return (
            f"  #{e.seq:<3} {'(reviewer)':<18} {e.verdict} {e.approval_id} for {e.tool} "
            f"{_short(canonical(e.arguments))}"
        )
    if isinstance(e, Crash):
        return f"  #{e.seq:<3} {'(crash)':<18} {e.point} at {e.where}"
    if isinstance(e, Restart):
        how = "fresh adapter" if e.fresh else "same adapter instance"
        return f"  #{e.seq:<3} {'(restart)':<18} {how}"
    return f"  #{e.seq:<3} {'(blocked)':<18} {e.what} {e.target}"


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
"""One encoder for :func:`canonical`: ``json.dumps`` with these options builds a new one per
call, and the checks call it a few dozen times per run."""


def canonical(value: Any) -> str:
    """Canonical JSON (sorted keys, no whitespace) for comparing arguments and bodies."""
    return _CANONICAL.encode(value)
