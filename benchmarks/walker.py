"""A long-running test agent: N checkpointed steps, one tool call each (resume, memory figures).

The reference agent has seven steps, and its decide loop's lookups are not checkpointed one by
one, so "resume at step 50" needs an agent with many steps. The walker keeps its state in the
reference agent's own SQLite ``Store`` (same schema, WAL; one transaction per step holds the
step's checkpoint and the next step's start record; ``persist: false`` for an in-memory
database), so resume and checkpoint
costs are those of the reference agent's persistence layer.

Config keys (``world.config``): ``steps`` (default 100), ``persist`` (default true).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from reference_agent.store import DB_NAME, Store

TOOL = "get_item"
MAX_ATTEMPTS = 3
TRANSIENT = frozenset({429, 500, 502, 503, 504})


class _Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class _World(Protocol):
    @property
    def state_dir(self) -> Path: ...

    @property
    def clock(self) -> _Clock: ...

    @property
    def config(self) -> Mapping[str, Any]: ...

    def boundary(self, point: str, step: str) -> None: ...


@dataclass(frozen=True)
class WalkOutcome:
    """A walk's outcome, in the shape the harness reads."""

    run_id: str
    state: str
    category: str | None = None
    error: str | None = None
    pending_approval: None = None
    approvals: tuple[()] = ()


class StepFailed(Exception):
    """A step's tool call failed for good (permanent, or transient past the attempt limit)."""


@dataclass
class Walker:
    """Walks items 1..N, one ``GET /items/{i}`` per step, checkpointing each step.

    Attributes:
        resume_latencies: seconds from each ``begin`` over an existing state dir to the first
            step completed after it (the restart's cost as the resumed process sees it).
        walk_seconds: seconds each walk spent on its steps, from its first step's start record
            to its last checkpoint (opening, closing and the terminal write left out).
        walk_cpu_seconds: the process's CPU seconds over the same stretch of each walk.
    """

    tools_base_url: str
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=5.0))
    resume_latencies: list[float] = field(default_factory=list)
    walk_seconds: list[float] = field(default_factory=list)
    walk_cpu_seconds: list[float] = field(default_factory=list)
    _store: Store | None = None
    _world: _World | None = None
    _steps: int = 100
    _restarted_at: float | None = None

    def begin(self, world: _World) -> None:
        """Bind to a world as a fresh process over its state dir."""
        if self._store is not None:
            self._store.close()
        started = time.perf_counter()
        persist = bool(world.config.get("persist", True))
        existing = persist and (Path(world.state_dir) / DB_NAME).exists()
        self._steps = int(world.config.get("steps", 100))
        self._world = world
        self._store = Store(world.state_dir if persist else None)
        self._restarted_at = started if existing else None

    def start(self, payload: Mapping[str, Any]) -> WalkOutcome:
        """Start the walk named by ``payload['run_id']`` (or continue it after a crash)."""
        store, world = self._bound()
        run_id = str(payload.get("run_id", "walk"))
        if store.get_run(run_id) is None:
            with store.transaction() as db:
                store.insert_run(db, run_id, None, dict(payload), "running", world.clock.now())
        return self._walk(run_id)

    def resume(self, run_id: str, decision: object = None) -> WalkOutcome:
        """Continue the walk at its first unfinished step."""
        return self._walk(run_id)

    def trace(self, run_id: str) -> None:
        """The walker keeps no reasoning trace."""
        return

    def _bound(self) -> tuple[Store, _World]:
        if self._store is None or self._world is None:
            raise RuntimeError("call begin(world) before start/resume")
        return self._store, self._world

    def _walk(self, run_id: str) -> WalkOutcome:
        store, world = self._bound()
        row = store.get_run(run_id)
        if row is not None and row.state in ("completed", "failed"):
            return WalkOutcome(run_id, row.state, row.category, row.error)
        done = store.completed_steps(run_id)
        todo = [i for i in range(1, self._steps + 1) if _name(i) not in done]
        walk_started, walk_cpu = time.perf_counter(), time.process_time()
        try:
            if todo:
                with store.transaction() as db:
                    store.mark_started(db, run_id, _name(todo[0]), {"item": todo[0]})
            for k, i in enumerate(todo):
                name = _name(i)
                world.boundary("before_step", name)
                output = self._fetch(i)
                # One transaction per step: this step's checkpoint and the next one's start.
                with store.transaction() as db:
                    store.complete_step(db, run_id, name, output)
                    if k + 1 < len(todo):
                        following = todo[k + 1]
                        store.mark_started(db, run_id, _name(following), {"item": following})
                if self._restarted_at is not None:
                    self.resume_latencies.append(time.perf_counter() - self._restarted_at)
                    self._restarted_at = None
                world.boundary("after_checkpoint", name)
        except StepFailed as exc:
            self._timed(walk_started, walk_cpu)
            return self._finish(run_id, "failed", "tool", str(exc))
        self._timed(walk_started, walk_cpu)
        return self._finish(run_id, "completed", None, None)

    def _timed(self, started: float, cpu: float) -> None:
        self.walk_seconds.append(time.perf_counter() - started)
        self.walk_cpu_seconds.append(time.process_time() - cpu)

    def _finish(
        self, run_id: str, state: str, category: str | None, error: str | None
    ) -> WalkOutcome:
        store, world = self._bound()
        world.boundary("terminal_write", state)
        with store.transaction() as db:
            store.update_run(
                db,
                run_id,
                state=state,
                category=category,
                error=error,
                finished_at=world.clock.now(),
            )
        return WalkOutcome(run_id, state, category, error)

    def _fetch(self, item: int) -> dict[str, Any]:
        _, world = self._bound()
        last = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self.client.get(f"{self.tools_base_url}/items/{item}")
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    try:
                        body = json.loads(response.content)
                    except ValueError as exc:
                        raise StepFailed(f"item {item}: body is not JSON ({exc})") from None
                    if not isinstance(body, dict) or "item" not in body:
                        raise StepFailed(f"item {item}: body lacks 'item': {body!r:.80}")
                    return body
                if response.status_code not in TRANSIENT:
                    raise StepFailed(f"item {item}: HTTP {response.status_code}")
                last = f"HTTP {response.status_code}"
                retry_after = response.headers.get("retry-after")
                if retry_after is not None and retry_after.strip().isdigit():
                    world.clock.sleep(float(retry_after))
                    continue
            world.clock.sleep(0.5 * 2 ** (attempt - 1))
        raise StepFailed(f"item {item}: gave up after {MAX_ATTEMPTS} attempts ({last})")


def _name(item: int) -> str:
    return f"step-{item:03d}"


def build_adapter(endpoints: Any) -> Walker:
    """The factory the harness calls once per worker (``benchmarks.walker:build_adapter``)."""
    return Walker(str(endpoints.tools_base_url).rstrip("/"))


def scenario(name: str, steps: int, *, persist: bool = True, **extra: Any) -> dict[str, Any]:
    """A walk of ``steps`` items as a scenario mapping (the scenario file format)."""
    return {
        "name": name,
        "description": f"The walker agent fetches and checkpoints {steps} items.",
        "agent": "benchmarks.walker:build_adapter",
        "agent_config": {"steps": steps, "persist": persist},
        "input": {"run_id": name},
        "tools": {
            "services": {
                TOOL: {"path_regex": r"^/items/\d+$", "respond": {"json": {"item": 1, "ok": True}}}
            }
        },
        "expect": {"state": "completed", "budget": {"wall_s": 120}},
        **extra,
    }
