"""What every framework adapter shares: the run file, outcomes, approvals, trace and run ids.

A run lives in one JSON document under the world's ``state_dir``, rewritten atomically and
guarded by a file lock, so a fresh adapter after a crash (or a second worker delivering the same
decision) sees exactly what the last one committed. The framework keeps its own checkpoint in
that document (an openai-agents ``RunState`` string) or beside it (a LangGraph SQLite saver).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

TERMINAL = frozenset({"completed", "failed", "rejected", "expired", "escalated", "throttled"})
DEFAULT_APPROVAL_TTL_S = 3600.0


class Clock(Protocol):
    """The run's clock: the harness hands in a fake one (``now``/``sleep`` in seconds)."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


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
    """An approval the run asked for: the exact tool call, a summary and its expiry."""

    approval_id: str
    tool: str
    arguments: Mapping[str, Any]
    summary: str
    expires_at: float


@dataclass(frozen=True)
class Outcome:
    """Where a run stands after ``start`` / ``resume``."""

    run_id: str
    state: str
    category: str | None = None
    error: str | None = None
    pending_approval: Approval | None = None
    approvals: tuple[Approval, ...] = ()


@dataclass(frozen=True)
class Trace:
    """The run's requests in the order the agent made them (every run is kept in full)."""

    records: tuple[Mapping[str, Any], ...]
    kept_in_full: bool = True


@dataclass(frozen=True)
class RunInfo:
    """What the adapter hands the agent's code for one run.

    Attributes:
        run_id: the run's id (stable across crashes: derived from the input).
        clock: the clock every wait and timestamp must come from.
        state_dir: the run's persistent directory.
        http: an ``httpx.Client`` for the tool services (base URL set, requests traced).
        config: the scenario's ``agent_config``.
    """

    run_id: str
    clock: Clock
    state_dir: Path
    http: httpx.Client
    config: Mapping[str, Any] = field(default_factory=dict)


def run_id_for(payload: Any) -> str:
    """A run id derived from the input, so a redelivered input continues the same run."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return "run-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def summarize(tool: str, arguments: Mapping[str, Any]) -> str:
    """The default reviewer summary: the tool and every argument it will be called with."""
    shown = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())
    return f"{tool}({shown})"


def judge(pending: Mapping[str, Any], decision: DecisionLike | None, now: float) -> tuple[str, str]:
    """What a delivery does to a run parked on ``pending``: ``approved``, ``rejected``,
    ``expired`` or ``parked`` (refused: a decision for another call), with the reason."""
    expired = now > float(pending["expires_at"])
    if decision is None:
        return ("expired", "the approval expired undecided") if expired else ("parked", "")
    if str(decision.approval_id) != pending["approval_id"]:
        return "parked", f"refused a decision for approval {decision.approval_id!r}"
    if str(decision.tool) != pending["tool"]:
        return "parked", f"refused a decision bound to tool {decision.tool!r}"
    if _canonical(decision.arguments) != _canonical(pending["arguments"]):
        return "parked", "refused a decision bound to other arguments than the pending call's"
    if expired:
        return "expired", "the decision arrived after the approval expired"
    if not decision.approved:
        return "rejected", f"the reviewer denied {pending['tool']}"
    return "approved", ""


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class RunStore:
    """The runs of one state directory: one JSON document and one trace file per run."""

    def __init__(self, state_dir: Path, namespace: str) -> None:
        self.root = Path(state_dir) / namespace
        self.root.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def locked(self, run_id: str) -> Iterator[None]:
        """Hold the run's lock: one adapter (thread or process) advances a run at a time."""
        with open(self.root / f"{run_id}.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load(self, run_id: str) -> dict[str, Any] | None:
        """The run's document, or None for a run never started here."""
        path = self.root / f"{run_id}.json"
        if not path.exists():
            return None
        loaded: dict[str, Any] = json.loads(path.read_text())
        return loaded

    def save(self, doc: Mapping[str, Any]) -> None:
        """Write the run's document atomically (a crash leaves the old or the new one)."""
        path = self.root / f"{doc['run_id']}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))  # key order kept: a replay must rebuild the same input
        os.replace(tmp, path)

    def record(self, run_id: str, entry: Mapping[str, Any]) -> None:
        """Append one trace record (written before the request is sent)."""
        with open(self.root / f"{run_id}.trace.jsonl", "a") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")

    def trace(self, run_id: str) -> Trace | None:
        """The run's trace, or None for an unknown run."""
        path = self.root / f"{run_id}.trace.jsonl"
        if not path.exists():
            return None if self.load(run_id) is None else Trace(())
        lines = path.read_text().splitlines()
        return Trace(tuple(json.loads(line) for line in lines if line.strip()))


def new_run(run_id: str, payload: Any) -> dict[str, Any]:
    """A fresh run document."""
    return {
        "run_id": run_id,
        "payload": payload,
        "state": "running",
        "category": None,
        "error": None,
        "pending": None,
        "approvals": [],
        "decision": None,
        "journal": {},
    }


def outcome_of(doc: Mapping[str, Any]) -> Outcome:
    """The outcome a run document stands at."""
    pending = doc.get("pending")
    return Outcome(
        run_id=doc["run_id"],
        state=doc["state"],
        category=doc.get("category"),
        error=doc.get("error"),
        pending_approval=None if pending is None else _approval(pending),
        approvals=tuple(_approval(a) for a in doc.get("approvals", ())),
    )


def _approval(row: Mapping[str, Any]) -> Approval:
    return Approval(
        approval_id=row["approval_id"],
        tool=row["tool"],
        arguments=dict(row["arguments"]),
        summary=row["summary"],
        expires_at=float(row["expires_at"]),
    )


def park(
    doc: dict[str, Any],
    *,
    approval_id: str,
    tool: str,
    arguments: Mapping[str, Any],
    now: float,
    ttl_s: float,
    summary: Callable[[str, Mapping[str, Any]], str],
) -> None:
    """Mark the run as waiting for a human on this exact tool call."""
    known = next((a for a in doc["approvals"] if a["approval_id"] == approval_id), None)
    pending = known or {
        "approval_id": approval_id,
        "tool": tool,
        "arguments": dict(arguments),
        "summary": summary(tool, arguments),
        "expires_at": now + ttl_s,
    }
    if known is None:
        doc["approvals"].append(pending)
    doc.update(state="awaiting_approval", pending=pending, decision=None)


def finish(doc: dict[str, Any], state: str, category: str | None, error: str | None) -> None:
    """Mark the run terminal."""
    doc.update(state=state, category=category, error=error, pending=None)


@dataclass(frozen=True)
class Categorized:
    """An exception's category as the adapter reports it."""

    category: str
    message: str


def categorize(exc: BaseException, rules: Sequence[tuple[type[BaseException], str]]) -> Categorized:
    """The category of a run failure: the exception's own ``category`` attribute, else the
    first rule matching it or anything in its cause chain, else ``logic``."""
    seen: BaseException | None = exc
    while seen is not None:
        own = getattr(seen, "category", None)
        if isinstance(own, str) and own in ("model", "tool", "logic", "input"):
            return Categorized(own, _describe(exc))
        for kind, category in rules:
            if isinstance(seen, kind):
                return Categorized(category, _describe(exc))
        seen = seen.__cause__ or seen.__context__
    return Categorized("logic", _describe(exc))


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]
