"""What every ready adapter shares: the run file, outcomes, approvals, the decision rule, run ids.

A run lives in one JSON document under the world's ``state_dir``, rewritten atomically and
guarded by a file lock, so a fresh adapter after a crash (or a second worker delivering the same
decision) sees exactly what the last one committed. The framework keeps its own checkpoint in
that document (a message history, an openai-agents ``RunState`` string) or beside it (a LangGraph
SQLite saver).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

APPROVAL_TTL_S = 3600.0
"""How long a pending approval stays valid on the world's clock."""
DEFAULT_APPROVAL_TTL_S = APPROVAL_TTL_S

TERMINAL = frozenset({"completed", "failed", "rejected", "expired", "escalated", "throttled"})


class ClockLike(Protocol):
    """The world's fake clock (read structurally; ``now``/``sleep`` in seconds)."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


Clock = ClockLike


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


@dataclass(frozen=True)
class Trace:
    """The run's requests in the order the agent made them (every run is kept in full)."""

    records: tuple[Mapping[str, Any], ...]
    kept_in_full: bool = True


@dataclass(frozen=True)
class RunInfo:
    """What the openai-agents and LangGraph adapters hand the agent's code for one run.

    Attributes:
        run_id: the run's id (stable across crashes: derived from the input).
        clock: the clock every wait and timestamp must come from.
        state_dir: the run's persistent directory.
        http: an ``httpx.Client`` for the tool services (base URL set, requests traced).
        config: the scenario's ``agent_config``.
    """

    run_id: str
    clock: ClockLike
    state_dir: Path
    http: httpx.Client
    config: Mapping[str, Any] = field(default_factory=dict)


def canonical(value: Any) -> str:
    """The JSON text two equal values share (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def run_id_for(payload: Mapping[str, Any], key: str | None = None) -> str:
    """A run id derived from the input, so a redelivered input continues the same run.

    Args:
        payload: the run's input.
        key: the input field that identifies the run (e.g. ``ticket_id``); the whole payload
            (in any key order) when None or absent.
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


def approval_id_for(run_id: str, tool: str, tool_call_id: str, arguments: Any) -> str:
    """An approval id bound to the run, the model's call id and the exact call."""
    digest = hashlib.sha256(canonical([tool, arguments]).encode()).hexdigest()[:12]
    return f"apr-{run_id}-{tool_call_id}-{digest}"


def summarize(tool: str, arguments: Mapping[str, Any]) -> str:
    """The default reviewer summary: the tool and every argument it will be called with."""
    shown = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())
    return f"{tool}({shown})"


def judge(pending: Mapping[str, Any], decision: DecisionLike | None, now: float) -> tuple[str, str]:
    """What a delivery does to a run parked on ``pending``, with the reason.

    ``approved`` or ``rejected`` for a decision on exactly the pending call (id, tool and
    arguments) before its expiry; ``parked`` for no decision, or one for another call, before
    expiry (refused: the run waits on its own call); ``expired`` from the expiry instant on,
    whatever was delivered.
    """
    expired = now >= float(pending["expires_at"])
    why = "" if decision is None else _mismatch(pending, decision)
    if expired:
        if decision is None or why:
            return "expired", "the approval expired undecided"
        return "expired", "the decision arrived after the approval expired"
    if decision is None or why:
        return "parked", why
    if not decision.approved:
        return "rejected", f"the reviewer denied {pending['tool']}"
    return "approved", ""


def _mismatch(pending: Mapping[str, Any], decision: DecisionLike) -> str:
    if str(decision.approval_id) != pending["approval_id"]:
        return f"refused a decision for approval {decision.approval_id!r}"
    if str(decision.tool) != pending["tool"]:
        return f"refused a decision bound to tool {decision.tool!r}"
    if canonical(dict(decision.arguments)) != canonical(pending["arguments"]):
        return "refused a decision bound to other arguments than the pending call's"
    return ""


class RunStore:
    """The runs of one state directory: one JSON document and one trace file per run.

    One file lock per directory serialises ``start``/``resume`` across adapter instances, threads
    and processes (two workers delivering one decision at once must not both act on it).
    """

    def __init__(self, state_dir: Path, namespace: str = "runs") -> None:
        self.root = Path(state_dir) / namespace
        self.root.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory's lock for one ``start`` or ``resume``."""
        with (self.root / ".lock").open("a") as handle:
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


def new_run(run_id: str, payload: Any, **fields: Any) -> dict[str, Any]:
    """A fresh run document; ``fields`` are the adapter's own (journal, counters)."""
    return {
        "run_id": run_id,
        "payload": payload,
        "state": "running",
        "category": None,
        "error": None,
        "pending": None,
        "approvals": [],
        **fields,
    }


def _approval(raw: Mapping[str, Any]) -> Approval:
    return Approval(
        approval_id=str(raw["approval_id"]),
        tool=str(raw["tool"]),
        arguments=dict(raw["arguments"]),
        summary=str(raw["summary"]),
        expires_at=float(raw["expires_at"]),
    )


def outcome_of(doc: Mapping[str, Any]) -> Outcome:
    """The outcome a run document stands at."""
    pending = doc.get("pending")
    return Outcome(
        run_id=str(doc["run_id"]),
        state=str(doc["state"]),
        category=doc.get("category"),
        error=doc.get("error"),
        pending_approval=None if pending is None else _approval(pending),
        approvals=tuple(_approval(a) for a in doc.get("approvals", ())),
    )


def park(
    doc: dict[str, Any],
    *,
    approval_id: str,
    tool: str,
    arguments: Mapping[str, Any],
    summary: str,
    now: float,
    ttl_s: float = APPROVAL_TTL_S,
    **extra: Any,
) -> None:
    """Mark the run as waiting for a human on exactly ``tool`` with ``arguments``.

    Parking again on an approval already asked for (a replay after a crash) keeps its first
    summary and expiry: a replay never extends the deadline nor lists the approval twice.
    ``extra`` (the framework's call or interrupt id) goes on the pending approval only.
    """
    known = next((a for a in doc["approvals"] if a["approval_id"] == approval_id), None)
    if known is None:
        known = {
            "approval_id": approval_id,
            "tool": tool,
            "arguments": json.loads(canonical(arguments)),
            "summary": summary,
            "expires_at": now + ttl_s,
        }
        doc["approvals"].append(known)
    doc.update(state="awaiting_approval", pending={**known, **extra}, decision=None)


def finish(doc: dict[str, Any], state: str, category: str | None, error: str | None) -> None:
    """Mark the run terminal."""
    doc.update(state=state, category=category, error=error, pending=None)


@dataclass(frozen=True)
class Categorized:
    """An exception's category as the adapter reports it."""

    category: str
    message: str


def categorize_by_rules(
    exc: BaseException, rules: Sequence[tuple[type[BaseException], str]]
) -> Categorized:
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


class GatedRunAdapter:
    """``begin``/``start``/``resume`` of the adapters that drive the run loop themselves
    (pydantic-ai, the plain tool loop): the run document holds the whole conversation.

    A subclass sets ``run_key`` and ``intake`` and implements ``_drive``; ``_seed`` adds its own
    fields to a fresh run before the first checkpoint.
    """

    run_key: str | None
    intake: Any
    _world: WorldLike | None
    _store: RunStore | None

    def begin(self, world: WorldLike) -> None:
        """Bind to a run's world as a fresh process would: only the state directory survives."""
        self._world = world
        self._store = RunStore(Path(world.state_dir))

    def start(self, payload: Mapping[str, Any]) -> Outcome:
        """Start a run, or continue it when the same input is delivered again after a crash."""
        store = self._runs
        run_id = run_id_for(payload, self.run_key)
        with store.locked():
            run = store.load(run_id)
            if run is None:
                self._boundary("before_step", "intake")
                run = new_run(
                    run_id, json.loads(canonical(payload)), decisions={}, model_calls=0, reasks=0
                )
                problem = None if self.intake is None else self.intake(payload)
                if problem is not None:
                    from shakeout_adapters.categories import InputError  # SDK imports: lazily

                    return self._finish(run, "failed", InputError(problem))
                self._seed(run, payload)
                store.save(run)
                self._boundary("after_checkpoint", "intake")
            if run["state"] != "running":
                return outcome_of(run)
            return self._drive(run)

    def resume(self, run_id: str, decision: DecisionLike | None = None) -> Outcome:
        """Continue a crashed run, or deliver a reviewer's decision to a parked one."""
        store = self._runs
        with store.locked():
            run = store.load(run_id)
            if run is None:
                raise KeyError(f"no run {run_id!r} in this state directory; start it first")
            if run["state"] in TERMINAL:
                return outcome_of(run)  # a duplicate decision changes nothing
            if run["state"] == "awaiting_approval":
                pending = run["pending"]
                verdict, _ = judge(pending, decision, self._clock.now())
                if verdict == "parked":
                    return outcome_of(run)  # refused or undecided: still parked
                if verdict == "expired":
                    return self._finish(run, "expired")
                run["decisions"][pending["tool_call_id"]] = verdict == "approved"
                run["pending"] = None
                if verdict == "rejected":
                    return self._finish(run, "rejected")
                run["state"] = "running"
                store.save(run)
                self._boundary("after_checkpoint", "approve")
            return self._drive(run)

    def _park_on(
        self, run: dict[str, Any], tool: str, tool_call_id: str, arguments: Any, summary: str
    ) -> Outcome:
        """Park the run on an approval of exactly ``tool`` with ``arguments`` and save it."""
        park(
            run,
            approval_id=approval_id_for(run["run_id"], tool, tool_call_id, arguments),
            tool=tool,
            arguments=arguments,
            summary=summary,
            now=self._clock.now(),
            tool_call_id=tool_call_id,
        )
        self._runs.save(run)
        return outcome_of(run)

    def _seed(self, run: dict[str, Any], payload: Mapping[str, Any]) -> None:
        """Add the adapter's own fields to a fresh run (saved with the intake checkpoint)."""

    def _drive(self, run: dict[str, Any]) -> Outcome:
        raise NotImplementedError

    @property
    def _runs(self) -> RunStore:
        if self._store is None:
            raise RuntimeError("call begin(world) before start/resume")
        return self._store

    @property
    def _clock(self) -> ClockLike:
        assert self._world is not None
        return self._world.clock

    def _boundary(self, point: str, step: str) -> None:
        assert self._world is not None
        self._world.boundary(point, step)

    def _finish(self, run: dict[str, Any], state: str, error: Exception | None = None) -> Outcome:
        """Write the run terminal; ``error`` is an ``AgentError`` (its category and text)."""
        self._boundary("terminal_write", state)
        run["state"] = state
        if error is not None:
            run["category"] = getattr(error, "category", "logic")
            run["error"] = str(error)
        self._runs.save(run)
        return outcome_of(run)


class DurableRunAdapter:
    """``begin``/``start``/``resume``/``trace`` of the adapters whose framework keeps its own
    checkpoint (openai-agents, LangGraph): the run document holds the decision and a journal.

    A subclass sets ``namespace`` and implements ``_advance`` and ``_approved`` (what the
    framework needs to continue past the approval it parked on).
    """

    namespace: str

    def __init__(
        self,
        endpoints: Any,
        *,
        context: Any,
        summary: Callable[[str, Mapping[str, Any]], str],
        approval_ttl_s: float,
    ) -> None:
        self._context = context
        self._summary = summary
        self._ttl = approval_ttl_s
        self._world: Any = None
        self._store: RunStore | None = None
        self._run_id = ""
        self._http = httpx.Client(
            base_url=str(endpoints.tools_base_url),
            timeout=10.0,
            event_hooks={"request": [self._trace_tool_request]},
        )

    def begin(self, world: Any) -> None:
        """Bind to a run's world; nothing of an earlier run is kept in memory."""
        self._world = world
        self._store = RunStore(Path(world.state_dir), self.namespace)
        self._run_id = ""

    def start(self, payload: Mapping[str, Any]) -> Outcome:
        """Start the run for this input, or continue it when the input is redelivered."""
        store = self._require_store()
        run_id = run_id_for(payload)
        with store.locked():
            doc = store.load(run_id)
            if doc is None:
                store.save(new_run(run_id, dict(payload), decision=None, journal={}))
                doc = store.load(run_id)  # the first run sees exactly what a resumed one sees
                assert doc is not None
            if doc["state"] != "running":
                return outcome_of(doc)
            return self._advance(doc)

    def resume(self, run_id: str, decision: DecisionLike | None = None) -> Outcome:
        """Continue a parked or crashed run, applying a decision where one is pending."""
        store = self._require_store()
        with store.locked():
            doc = store.load(run_id)
            if doc is None:
                raise KeyError(f"no run {run_id!r} under {store.root}")
            if doc["state"] in TERMINAL:
                return outcome_of(doc)
            if doc["state"] == "awaiting_approval":
                return self._decide(doc, decision)
            return self._advance(doc)

    def trace(self, run_id: str) -> Trace | None:
        """The run's requests (model and tools) in order, or None for an unknown run."""
        return self._require_store().trace(run_id)

    def _decide(self, doc: dict[str, Any], decision: DecisionLike | None) -> Outcome:
        pending = doc["pending"]
        verdict, why = judge(pending, decision, self._world.clock.now())
        if verdict in ("expired", "rejected"):
            return self._end(doc, verdict, None, why)
        if verdict == "parked":
            return outcome_of(doc)  # nothing to apply: the run stays parked on its own call
        doc.update(state="running", pending=None, decision=self._approved(pending))
        self._require_store().save(doc)
        return self._advance(doc)

    def _approved(self, pending: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def _advance(self, doc: dict[str, Any]) -> Outcome:
        raise NotImplementedError

    def _info(self, doc: Mapping[str, Any], http: httpx.Client) -> RunInfo:
        return RunInfo(
            run_id=doc["run_id"],
            clock=self._world.clock,
            state_dir=Path(self._world.state_dir),
            http=http,
            config=dict(getattr(self._world, "config", {}) or {}),
        )

    def _end(
        self, doc: dict[str, Any], state: str, category: str | None, error: str | None
    ) -> Outcome:
        self._world.boundary("terminal_write", "finish")
        finish(doc, state, category, error)
        self._require_store().save(doc)
        return outcome_of(doc)

    def _trace_tool_request(self, request: httpx.Request) -> None:
        self._record("tool_call", request.method, str(request.url))

    def _record(self, kind: str, method: str, url: str) -> None:
        if self._store is not None and self._run_id:
            entry = {"kind": kind, "method": method, "url": url, "step": self._step(kind)}
            self._store.record(self._run_id, entry)

    def _step(self, kind: str) -> str:
        raise NotImplementedError

    def _require_store(self) -> RunStore:
        if self._store is None:
            raise RuntimeError("begin(world) was not called before start/resume")
        return self._store
