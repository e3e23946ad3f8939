"""The contract between the harness and an agent under test, and its reading of outcomes.

An adapter is built once per worker by a factory (named in the ``chaos_agent`` ini key as
``module:callable``) and reused across items; ``begin`` re-binds it to each run's world. All
types the agent returns are read structurally, so an agent package never imports the harness.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from faults.surfaces import BoundaryHook, Clock


class RunState(StrEnum):
    """Terminal states, plus the parking state ``awaiting_approval``.

    ``throttled`` is the typed refusal of a full review queue: a terminal state with no
    category whose ``error`` says why (a throttle without a reason counts as a silent drop);
    the same input started again later must be admitted once the queue has room.
    """

    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    ESCALATED = "escalated"
    THROTTLED = "throttled"
    AWAITING_APPROVAL = "awaiting_approval"

    @property
    def terminal(self) -> bool:
        """Whether the run has ended."""
        return self is not RunState.AWAITING_APPROVAL


@dataclass(frozen=True)
class Endpoints:
    """Where the agent must send its traffic; the world answers these hosts."""

    model_base_url: str
    tools_base_url: str
    api_key: str = "sk-shakeout-test"
    model: str = "shakeout-model"


class _StateDir:
    """A run's state directory, made on its first read; shared by a context and its copies."""

    __slots__ = ("path", "pending")

    def __init__(self, path: Path, pending: bool) -> None:
        self.path = path
        self.pending = pending


class WorldContext:
    """What an adapter receives per run: fresh persistent state, the fake clock, options.

    Attributes:
        state_dir: an empty directory for the agent's persistent state of this run. The
            harness makes it when an adapter first reads this attribute, so a run of an agent
            that keeps no state on disk creates and deletes no directory.
        clock: the fake clock; every sleep and timestamp of the agent must come from it.
        config: the scenario's ``agent_config`` mapping (agent-specific options).
        seed: the run's seed.
        boundary: the hook to call at crash boundaries (``hook(point, step)``).

    Args:
        make_state_dir: make ``state_dir`` (mode 0700) on its first read; False when it
            exists already.
    """

    __slots__ = ("_dir", "boundary", "clock", "config", "seed")

    def __init__(
        self,
        state_dir: Path,
        clock: Clock,
        config: Mapping[str, Any],
        seed: int,
        boundary: BoundaryHook,
        *,
        make_state_dir: bool = False,
    ) -> None:
        self._dir = _StateDir(Path(state_dir), make_state_dir)
        self.clock = clock
        self.config = config
        self.seed = seed
        self.boundary = boundary

    @property
    def state_dir(self) -> Path:
        """The run's state directory, made now if this is its first read."""
        if self._dir.pending:
            # Idempotent, so two threads reading it first at once both get the directory.
            self._dir.path.mkdir(mode=0o700, exist_ok=True)
            self._dir.pending = False
        return self._dir.path

    def with_boundary(self, boundary: BoundaryHook) -> WorldContext:
        """The same world (the same state directory, made once) with another crash hook."""
        copy = WorldContext(self._dir.path, self.clock, self.config, self.seed, boundary)
        copy._dir = self._dir
        return copy

    def close(self) -> None:
        """The run is over: a later first read (a hung call's thread) makes no directory."""
        self._dir.pending = False

    def __repr__(self) -> str:
        return f"WorldContext(state_dir={self._dir.path!s}, seed={self.seed})"


class ApprovalLike(Protocol):
    """An approval request as the agent reports it."""

    @property
    def approval_id(self) -> str: ...

    @property
    def tool(self) -> str: ...

    @property
    def arguments(self) -> Mapping[str, Any]: ...

    @property
    def summary(self) -> str: ...

    @property
    def expires_at(self) -> float: ...


class OutcomeLike(Protocol):
    """A run's outcome as the agent reports it (read structurally)."""

    @property
    def run_id(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def category(self) -> str | None: ...

    @property
    def error(self) -> str | None: ...

    @property
    def pending_approval(self) -> ApprovalLike | None: ...

    @property
    def approvals(self) -> Sequence[ApprovalLike]: ...


class TraceLike(Protocol):
    """An agent's reasoning trace of one run.

    ``records`` with ``kind`` ``model_call`` / ``tool_call`` carry ``method`` and ``url`` of
    the request they made, so the harness can match them against what the transport saw.
    ``kept_in_full`` says whether the agent's retention policy kept the full trace.
    """

    @property
    def records(self) -> Sequence[Mapping[str, Any]]: ...

    @property
    def kept_in_full(self) -> bool: ...


@dataclass(frozen=True)
class Decision:
    """A reviewer's decision, bound to the exact action (tool and arguments)."""

    approval_id: str
    approved: bool
    tool: str
    arguments: Mapping[str, Any]
    reviewer: str = "shakeout-scripted-reviewer"


@runtime_checkable
class AgentAdapter(Protocol):
    """What the harness drives. Implement these four methods to put an agent under test.

    Optionally, a ``close()`` method (no arguments) releases what an instance holds (database
    connections, HTTP clients). The harness calls it on the instances it builds for one run
    (the fresh instance a crashed run resumes in) once that run is over, still inside the
    run's world, so nothing it sends leaves the machine; the instance a worker caches is
    re-bound by ``begin`` and never closed by the harness. Without ``close()``, those
    instances are left to the garbage collector, and what they hold stays open until it runs.
    """

    def begin(self, world: WorldContext) -> None:
        """Bind to a run's world (state dir, clock, config), dropping all in-memory run state.

        Called before ``start``; called again with the same ``state_dir`` after a crash, it must
        behave as a freshly started process over the persisted state.
        """
        ...

    def start(self, payload: Mapping[str, Any]) -> OutcomeLike:
        """Start a run from the scenario's input; return when terminal or parked."""
        ...

    def resume(self, run_id: str, decision: Decision | None = None) -> OutcomeLike:
        """Resume a parked or crashed run, delivering a decision where one is pending."""
        ...

    def trace(self, run_id: str) -> TraceLike | None:
        """The agent's reasoning trace for the run, or None if the agent does not expose one."""
        ...


class AdapterFactory(Protocol):
    """Builds an adapter once per worker."""

    def __call__(self, endpoints: Endpoints) -> AgentAdapter: ...


@dataclass(frozen=True)
class ApprovalRecord:
    """An approval request as recorded by the harness."""

    approval_id: str
    tool: str
    arguments: Mapping[str, Any]
    summary: str
    expires_at: float
    decision: str | None = None  # approve | deny | never | refused:<why>


@dataclass(frozen=True)
class Outcome:
    """The harness's own frozen copy of an agent outcome."""

    run_id: str
    state: RunState
    category: str | None
    error: str | None
    pending_approval: ApprovalRecord | None
    approvals: tuple[ApprovalRecord, ...] = field(default=())

    @classmethod
    def read(cls, raw: OutcomeLike) -> Outcome:
        """Copy a structural outcome, rejecting unknown states with a clear message."""
        try:
            state = RunState(str(raw.state))
        except ValueError:
            allowed = ", ".join(s.value for s in RunState)
            raise AdapterContractError(
                f"the agent reported state {raw.state!r}, which is not one of: {allowed}; "
                "map the agent's states onto these in its adapter"
            ) from None
        pending = raw.pending_approval
        return cls(
            run_id=str(raw.run_id),
            state=state,
            category=None if raw.category is None else str(raw.category),
            error=raw.error,
            pending_approval=None if pending is None else _approval(pending),
            approvals=tuple(_approval(a) for a in raw.approvals),
        )


def _approval(a: ApprovalLike) -> ApprovalRecord:
    return ApprovalRecord(
        approval_id=str(a.approval_id),
        tool=str(a.tool),
        arguments=dict(a.arguments),
        summary=str(a.summary),
        expires_at=float(a.expires_at),
    )


class AdapterContractError(Exception):
    """The agent's adapter returned something outside the contract (a harness ERROR)."""
