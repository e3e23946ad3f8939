"""Per-run persistence, outcomes and the approval gate shared by the ready adapters."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

APPROVAL_TTL_S = 3600.0
"""How long a pending approval stays valid on the world's clock."""

TERMINAL = frozenset({"completed", "failed", "rejected", "expired", "escalated", "throttled"})


class ClockLike(Protocol):
    """The world's fake clock (read structurally)."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class WorldLike(Protocol):
    """What ``begin(world)`` receives from the harness (read structurally)."""

    @property
    def state_dir(self) -> Path: ...

    @property
    def clock(self) -> ClockLike: ...

    @property
    def config(self) -> Mapping[str, Any]: ...

    def boundary(self, point: str, step: str) -> None: ...


class DecisionLike(Protocol):
    """A reviewer's decision as the harness delivers it (read structurally)."""

    @property
    def approval_id(self) -> str: ...

    @property
    def approved(self) -> bool: ...

    @property
    def tool(self) -> str: ...

    @property
    def arguments(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Approval:
    """An approval request: the exact action (tool and arguments) a reviewer decides on."""

    approval_id: str
    tool: str
    arguments: Mapping[str, Any]
    summary: str
    expires_at: float


@dataclass(frozen=True)
class Outcome:
    """Where a run stands after ``start`` or ``resume`` (the harness reads it structurally)."""

    run_id: str
    state: str
    category: str | None = None
    error: str | None = None
    pending_approval: Approval | None = None
    approvals: tuple[Approval, ...] = field(default=())


def canonical(value: Any) -> str:
    """The JSON text two equal values share (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def run_id_for(payload: Mapping[str, Any], key: str | None = None) -> str:
    """A run id derived from the input, so a redelivered input continues the same run.

    Args:
        payload: the run's input.
        key: the input field that identifies the run (e.g. ``ticket_id``); the whole payload
            when None or absent.
    """
    value = payload.get(key) if key is not None else None
    seed = value if isinstance(value, str) else canonical(payload)
    return "run-" + hashlib.sha256(seed.encode()).hexdigest()[:16]


def idempotency_key(run_id: str, tool_call_id: str) -> str:
    """The ``Idempotency-Key`` of an effect: stable across retries, restarts and replays.

    Args:
        run_id: the run the effect belongs to.
        tool_call_id: the model's id of the tool call that asked for the effect.
    """
    digest = hashlib.sha256(f"{run_id}\x00{tool_call_id}".encode()).hexdigest()[:24]
    return f"{run_id}:{digest}"


class RunStore:
    """Every run of one state directory, one JSON file per run, each write atomic.

    A file lock serialises ``start``/``resume`` of the same directory across adapter instances
    (two workers delivering one decision at once must not both act on it).
    """

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir) / "runs"
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, run_id: str) -> Path:
        return self.root / f"{run_id}.json"

    def load(self, run_id: str) -> dict[str, Any] | None:
        """The run's persisted record, or None for a run never started here."""
        path = self._path(run_id)
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def save(self, run: Mapping[str, Any]) -> None:
        """Write the run's record atomically (a crash leaves the old or the new one)."""
        path = self._path(str(run["run_id"]))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(run, sort_keys=True))
        os.replace(tmp, path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory's lock for one ``start`` or ``resume``."""
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def new_run(run_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh run record."""
    return {
        "run_id": run_id,
        "payload": json.loads(canonical(payload)),
        "state": "running",
        "category": None,
        "error": None,
        "pending": None,
        "approvals": [],
        "decisions": {},
        "model_calls": 0,
        "reasks": 0,
    }


def _approval(raw: Mapping[str, Any]) -> Approval:
    return Approval(
        approval_id=str(raw["approval_id"]),
        tool=str(raw["tool"]),
        arguments=dict(raw["arguments"]),
        summary=str(raw["summary"]),
        expires_at=float(raw["expires_at"]),
    )


def outcome_of(run: Mapping[str, Any]) -> Outcome:
    """The outcome the harness reads, from a run record."""
    pending = run.get("pending")
    return Outcome(
        run_id=str(run["run_id"]),
        state=str(run["state"]),
        category=run.get("category"),
        error=run.get("error"),
        pending_approval=None if pending is None else _approval(pending),
        approvals=tuple(_approval(a) for a in run.get("approvals", ())),
    )


def request_approval(
    run: dict[str, Any],
    *,
    tool: str,
    tool_call_id: str,
    arguments: Mapping[str, Any],
    summary: str,
    now: float,
) -> None:
    """Park the run on an approval of exactly ``tool`` with ``arguments``."""
    digest = hashlib.sha256(canonical([tool, arguments]).encode()).hexdigest()[:12]
    approval = {
        "approval_id": f"apr-{run['run_id']}-{tool_call_id}-{digest}",
        "tool": tool,
        "tool_call_id": tool_call_id,
        "arguments": json.loads(canonical(arguments)),
        "summary": summary,
        "expires_at": now + APPROVAL_TTL_S,
    }
    run["pending"] = approval
    run["approvals"].append({k: v for k, v in approval.items() if k != "tool_call_id"})
    run["state"] = "awaiting_approval"


def refusal(pending: Mapping[str, Any], decision: DecisionLike, now: float) -> str | None:
    """Why a decision cannot be applied to the pending approval, or None when it can."""
    if str(decision.approval_id) != pending["approval_id"]:
        return f"decision for {decision.approval_id!r}, pending is {pending['approval_id']!r}"
    if str(decision.tool) != pending["tool"]:
        return f"decision for tool {decision.tool!r}, pending is {pending['tool']!r}"
    if canonical(dict(decision.arguments)) != canonical(pending["arguments"]):
        return "decision bound to other arguments than the ones asked for"
    if now >= float(pending["expires_at"]):
        return "decision arrived after the approval expired"
    return None
