"""The refund desk: the agent's public face, binding the workflow to a world.

Owns ``RefundDesk``: clients built once, ``begin(world)`` binding a state directory (the
``Store``), a clock and options, and the public calls ``start``, ``resume``, ``trace``,
``review_stats`` and ``prune_traces``, each taking the run's lock (``lock``) before handing the
run to the ``Engine``. The adapter-facing types live in ``contract`` and are re-exported here.
It may import every module of the package except ``adapter`` and ``__main__``.

Where the parts are: ``workflow`` (the stages: copy and rewrite it for your agent), ``engine``
(carrying a run along the stages, checkpoints, the terminal write) and the infrastructure a
team keeps as it is: ``store``, ``lock``, ``queue``, ``gate``, ``approvals``, ``calls``,
``tools``, ``model``/``replies``, ``trace``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import httpx2

from reference_agent.calls import Calls
from reference_agent.contract import (
    BUSY,
    ClockLike,
    DecisionLike,
    NotBoundError,
    Outcome,
    UnknownRunError,
    WorldLike,
    run_id_for,
)
from reference_agent.engine import Engine
from reference_agent.lock import run_lock
from reference_agent.model import ModelClient
from reference_agent.queue import ReviewQueue, ReviewStats
from reference_agent.settings import Api, RunOptions, Settings
from reference_agent.store import Store
from reference_agent.tools import ToolClient
from reference_agent.trace import Trace
from reference_agent.trace import prune as prune_trace
from reference_agent.workflow import STEPS, TERMINAL

__all__ = [
    "BUSY",
    "STEPS",
    "TERMINAL",
    "ClockLike",
    "DecisionLike",
    "NotBoundError",
    "Outcome",
    "RefundDesk",
    "UnknownRunError",
    "WorldLike",
    "run_id_for",
]


class RefundDesk:
    """The reference agent: a customer-support refund desk.

    Clients are built once here and reused for every run; ``begin`` binds the desk to a world
    (state directory, clock, options) and drops all in-memory run state.

    Args:
        settings: endpoints, key, model name, API and streaming.
        model_http_client: the ``httpx2.Client`` the model SDKs send through.
        tools_http_client: the ``httpx.Client`` the tool calls use.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        model_http_client: httpx2.Client | None = None,
        tools_http_client: httpx.Client | None = None,
    ) -> None:
        self.settings = settings
        self._model = ModelClient(settings, model_http_client)
        self._tools = ToolClient(settings.tools_base_url, tools_http_client)
        self._store: Store | None = None
        self._world: WorldLike | None = None
        self._options = RunOptions()
        self._queue: ReviewQueue | None = None
        self._engine: Engine | None = None

    # ------------------------------------------------------------------ lifecycle

    def begin(self, world: WorldLike) -> None:
        """Bind to a world, as a freshly started process over whatever ``state_dir`` holds.

        Raises:
            ConfigError: ``world.config`` has an unknown key or an invalid value.
        """
        options = RunOptions.from_config(world.config)
        self.close_store()
        self._options = options
        self._world = world
        store = self._store = Store(world.state_dir if options.persist else None)
        self._queue = ReviewQueue(
            store, capacity=options.review_queue_capacity, sla_s=options.approval_sla_s
        )
        calls = Calls(
            store,
            world.clock,
            options,
            model=self._model,
            api=self.api,
            stream=self.stream,
            tools=self._tools,
        )
        self._engine = Engine(store, calls, options, self._queue, world.boundary)
        # Build the client of the API in use now, outside any run: a production desk builds its
        # clients at start-up, and the first Anthropic import costs seconds on a loaded machine.
        self._model.prepare(self.api)

    def close_store(self) -> None:
        """Close the database connection of the current world, if any."""
        if self._store is not None:
            self._store.close()
            self._store = None
            self._engine = None

    def close(self) -> None:
        """Close the database and the HTTP clients."""
        self.close_store()
        self._tools.close()
        self._model.close()

    def _bound(self) -> tuple[Store, Engine, WorldLike]:
        if self._store is None or self._engine is None or self._world is None:
            raise NotBoundError("call begin(world) before start/resume/trace")
        return self._store, self._engine, self._world

    def _lock_dir(self, world: WorldLike) -> Path | None:
        # persistence off: in-memory state belongs to this instance alone, so no lock is needed
        return world.state_dir if self._options.persist else None

    @property
    def api(self) -> Api:
        """The model API in use (world config overrides the settings)."""
        return self._options.api or self.settings.api

    @property
    def stream(self) -> bool:
        """Whether model answers are streamed (world config overrides the settings)."""
        return self.settings.stream if self._options.stream is None else self._options.stream

    # ------------------------------------------------------------------ public API

    def start(self, payload: Mapping[str, Any]) -> Outcome:
        """Start (or continue) the run for a ticket; returns when terminal or parked."""
        store, engine, world = self._bound()
        run_id = run_id_for(payload)
        # A second start of one ticket waits for the first to park or finish, then continues.
        with run_lock(self._lock_dir(world), run_id, wait=True):
            existing = store.get_run(run_id)
            if existing is not None and existing.state != "throttled":
                return engine.carry_on(existing, None)
            return engine.intake(run_id, payload)

    def resume(self, run_id: str, decision: DecisionLike | None = None) -> Outcome:
        """Resume a parked or crashed run, delivering a reviewer decision where one is pending.

        A decision that does not match the pending approval (other id, other tool or arguments,
        consumed, expired) is refused: no effect, recorded in the trace and in ``error``.

        Raises:
            UnknownRunError: no run with this id in the state directory.
        """
        store, engine, world = self._bound()
        with run_lock(self._lock_dir(world), run_id) as mine:
            run = store.get_run(run_id)
            if run is None:
                raise UnknownRunError(
                    f"no run {run_id!r} in this state directory; start it with start(payload)"
                )
            if not mine:
                return engine.busy(run_id, decision)
            return engine.carry_on(run, decision)

    def trace(self, run_id: str) -> Trace | None:
        """The run's trace (only its summary record when sampled out), or None if unknown."""
        store, _, _ = self._bound()
        run = store.get_run(run_id)
        if run is None:
            return None
        kept = True if run.kept_in_full is None else run.kept_in_full
        return Trace(records=store.trace_records(run_id), kept_in_full=kept)

    def review_stats(self) -> ReviewStats:
        """Time-to-decision percentiles and SLA breaches of this state directory's queue."""
        _, _, world = self._bound()
        assert self._queue is not None, "begin(world) binds the queue"
        return self._queue.stats(float(world.clock.now()))

    def prune_traces(self, older_than_s: float) -> int:
        """Delete trace records of runs that finished more than ``older_than_s`` ago."""
        store, _, world = self._bound()
        return prune_trace(store, now=float(world.clock.now()), older_than_s=older_than_s)
