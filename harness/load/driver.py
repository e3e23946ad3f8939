"""The load driver: arrivals, reviewers and resubmissions of throttled runs on one fake clock,
against one agent state directory, each run in a world of its own.

Imports only :mod:`~harness.load.record` (what it records).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from harness.adapter import (
    AdapterContractError,
    AgentAdapter,
    Decision,
    Outcome,
    OutcomeLike,
    RunState,
    WorldContext,
)
from harness.load.record import LoadRecord, LoadRun, Parked, Step
from harness.record import Commit, Delivery, EventLog, Exchange, RunRecord
from harness.run.driver import RunTimedOut, call_with_deadline, summarise_exception
from harness.run.runner import build_world
from harness.scenario.spec import Load, Scenario
from harness.world.clock import FakeClock
from harness.world.intercept import seal_network
from harness.world.world import World

MAX_THROTTLES_PER_RUN = 64
"""A run throttled this often is not started again (only an agent that never admits it)."""


@dataclass
class _Pending:
    run: int
    approval_id: str
    tool: str
    arguments: Mapping[str, Any]
    parked_at: float
    parked_order: int
    expires_at: float
    delivered_at: float | None = None
    delivered_order: int | None = None
    verdict: str | None = None

    def frozen(self, t0: float) -> Parked:
        return Parked(
            self.run,
            self.approval_id,
            self.parked_at - t0,
            self.parked_order,
            self.expires_at - t0,
            None if self.delivered_at is None else self.delivered_at - t0,
            self.delivered_order,
            self.verdict,
        )


class _Stop(Exception):
    """The load cannot go on (the agent hung or raised, or broke the adapter contract)."""


@dataclass
class _Load:
    """The simulation: arrivals, reviewers and resubmissions on one fake clock."""

    scenario: Scenario
    spec: Load
    adapter: AgentAdapter
    clock: FakeClock
    log: EventLog
    seed: int
    deadline: float
    worlds: dict[int, World] = field(default_factory=dict)
    steps: dict[int, list[Step]] = field(default_factory=dict)
    run_ids: dict[int, str] = field(default_factory=dict)
    pending: dict[str, _Pending] = field(default_factory=dict)  # every approval seen, by id
    waiting: deque[str] = field(default_factory=deque)  # parked, no reviewer yet
    in_review: list[tuple[float, int, str, int]] = field(default_factory=list)
    throttled: deque[int] = field(default_factory=deque)
    outcomes: dict[int, list[Outcome]] = field(default_factory=dict)
    seqs: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # (after, upto] per call
    deliveries: dict[int, list[Delivery]] = field(default_factory=dict)
    order: int = 0
    reviews: int = 0
    timed_out: float | None = None
    agent_exception: str | None = None
    harness_error: str | None = None

    def run(self, wall_s: float) -> None:
        spec = self.spec
        free = spec.reviewers
        t0 = self.clock.now()
        arrivals = iter(range(1, spec.runs + 1))
        next_run = next(arrivals, None)
        try:
            while True:
                t_arrival = math.inf if next_run is None else t0 + (next_run - 1) * spec.arrival_s
                t_review = self.in_review[0][0] if self.in_review else math.inf
                if t_arrival == math.inf and t_review == math.inf:
                    break
                if t_review <= t_arrival:  # a slot freed at t comes before an arrival at t
                    _, _, approval_id, review_index = heapq.heappop(self.in_review)
                    self._advance_to(t_review)
                    free += 1
                    self._deliver(approval_id, review_index)
                    self._resubmit()
                else:
                    assert next_run is not None
                    self._advance_to(t_arrival)
                    self._start(next_run, "start")
                    next_run = next(arrivals, None)
                free = self._assign(free)
        except RunTimedOut:
            self.timed_out = wall_s
        except AdapterContractError as exc:
            self.harness_error = f"adapter contract: {exc}"
        except _Stop:
            pass

    def _advance_to(self, t: float) -> None:
        now = self.clock.now()
        if t > now:
            self.clock.advance(t - now)

    def _tick(self) -> int:
        self.order += 1
        return self.order

    def queue_length(self) -> int:
        """Approvals parked, not decided, not expired: the harness's view of the queue."""
        now = self.clock.now()
        waiting = self.pending.values()
        return sum(1 for p in waiting if p.delivered_at is None and p.expires_at > now)

    def _world(self, number: int) -> World:
        world = self.worlds.get(number)
        if world is None:
            scenario = self.scenario.for_load_run(number)
            world = build_world(scenario, (), self.seed, self.clock, self.log)
            self.worlds[number] = world
        return world

    def _call(self, number: int, fn: Callable[[], OutcomeLike]) -> Outcome:
        after = self.log.count()
        with self._world(number).active():
            try:
                raw = call_with_deadline(fn, self.deadline - time.monotonic())
            except (RunTimedOut, AdapterContractError):
                raise
            except Exception as exc:
                self.agent_exception = f"run {number}: {summarise_exception(exc)}"
                raise _Stop from None
            finally:
                self.seqs.setdefault(number, []).append((after, self.log.count()))
        outcome = Outcome.read(raw)
        self.outcomes.setdefault(number, []).append(outcome)
        return outcome

    def _start(self, number: int, action: str) -> None:
        before = self.queue_length()
        payload = self.scenario.load_input(number)
        outcome = self._call(number, partial(self.adapter.start, payload))
        self._handle(number, action, outcome, before)

    def _resubmit(self) -> None:
        """Start throttled runs again, one per slot the harness sees free now."""
        for _ in range(len(self.throttled)):
            if self.queue_length() >= self.spec.capacity:
                return
            self._start(self.throttled.popleft(), "resubmit")

    def _deliver(self, approval_id: str, review_index: int) -> None:
        p = self.pending[approval_id]
        review = self.spec.review[review_index % len(self.spec.review)]
        now = self.clock.now()
        expired = p.expires_at <= now
        decision = None
        if not expired:
            decision = Decision(
                approval_id=approval_id,
                approved=review.verdict == "approve",
                tool=p.tool,
                arguments=dict(p.arguments),
            )
        delivery = Delivery(
            approval_id=approval_id,
            tool=p.tool,
            verdict=review.verdict if decision is not None else "never",
            arguments={} if decision is None else decision.arguments,
            bound_to_requested=True,
            seq=self.log.next(),
            t=now,
            expires_at=p.expires_at,
        )
        self.log.add(delivery)
        self.deliveries.setdefault(p.run, []).append(delivery)
        p.delivered_at = now
        p.delivered_order = self._tick()
        p.verdict = "expired" if decision is None else review.verdict
        before = self.queue_length()
        run_id = self.run_ids[p.run]
        outcome = self._call(p.run, partial(self.adapter.resume, run_id, decision))
        self._handle(p.run, "deliver", outcome, before)

    def _assign(self, free: int) -> int:
        """Idle reviewers take the oldest waiting approvals."""
        while free and self.waiting:
            approval_id = self.waiting.popleft()
            index = self.reviews
            self.reviews += 1
            review = self.spec.review[index % len(self.spec.review)]
            due = self.clock.now() + review.delay_s
            heapq.heappush(self.in_review, (due, self._tick(), approval_id, index))
            free -= 1
        return free

    def _handle(self, number: int, action: str, outcome: Outcome, before: int) -> None:
        now = self.clock.now()
        step = Step(
            self._tick(),
            now,
            action,
            outcome.state.value,
            outcome.category,
            outcome.error,
            before,
        )
        self.steps.setdefault(number, []).append(step)
        self.run_ids.setdefault(number, outcome.run_id)
        if outcome.state is RunState.AWAITING_APPROVAL:
            pending = outcome.pending_approval
            if pending is None:
                raise AdapterContractError(
                    f"run {number} reported 'awaiting_approval' without a pending_approval; an "
                    "adapter must say what it is waiting for"
                )
            if pending.approval_id not in self.pending:
                self.pending[pending.approval_id] = _Pending(
                    number,
                    pending.approval_id,
                    pending.tool,
                    dict(pending.arguments),
                    now,
                    step.order,
                    pending.expires_at,
                )
                self.waiting.append(pending.approval_id)
        elif outcome.state is RunState.THROTTLED and self.spec.resubmit:
            throttles = sum(1 for s in self.steps[number] if s.state == "throttled")
            if throttles < MAX_THROTTLES_PER_RUN:
                self.throttled.append(number)

    def run_records(self, exchanges: Sequence[Exchange], seed: int) -> tuple[RunRecord, ...]:
        """Each run's own record: the requests made during its calls, its world's effects, the
        decisions delivered to it and its outcomes, for the per-run rules."""
        out = []
        for number, world in sorted(self.worlds.items()):
            spans = self.seqs.get(number, [])
            mine = tuple(e for e in exchanges if any(lo < e.seq <= hi for lo, hi in spans))
            out.append(
                RunRecord(
                    scenario=self.scenario.name,
                    variant=f"run {number}",
                    seed=seed,
                    faults=(),
                    exchanges=mine,
                    firings=(),
                    effects=world.effects,
                    outcomes=tuple(self.outcomes.get(number, ())),
                    deliveries=tuple(self.deliveries.get(number, ())),
                )
            )
        return tuple(out)

    def record(self, stopped: str | None, t0: float) -> LoadRecord:
        """The load as seen, times in fake seconds since the first start."""
        runs = tuple(
            LoadRun(
                n,
                self.run_ids.get(n),
                tuple(dataclasses.replace(s, t=s.t - t0) for s in self.steps.get(n, ())),
            )
            for n in range(1, self.spec.runs + 1)
        )
        parked = tuple(
            sorted((p.frozen(t0) for p in self.pending.values()), key=lambda p: p.parked_order)
        )
        return LoadRecord(
            capacity=self.spec.capacity,
            sla=self.spec.sla.targets(),
            resubmit=self.spec.resubmit,
            reviewers=self.spec.reviewers,
            runs=runs,
            parked=parked,
            stopped=stopped,
        )


def run_load(
    scenario: Scenario,
    adapter: AgentAdapter,
    *,
    seed: int,
    wall_s: float,
    config: Mapping[str, Any] | None = None,
    variant: str = "load",
) -> RunRecord:
    """Drive a load scenario's runs against one agent state directory; return the record.

    ``wall_s`` bounds the whole load in real time. Each run talks to a world of its own
    (scripted model, services), all on one fake clock and one event log.
    """
    spec = scenario.load
    if spec is None:
        raise ValueError(f"scenario {scenario.name!r} has no 'load' section")
    clock = FakeClock()
    t0 = clock.now()
    log = EventLog()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="shakeout-load-") as tmp:
        agent_config = {**(config or {}), **scenario.agent_config}
        if spec.capacity_key is not None:
            agent_config[spec.capacity_key] = spec.capacity
        world = WorldContext(Path(tmp), clock, agent_config, seed, _no_boundary)
        sim = _Load(scenario, spec, adapter, clock, log, seed, time.monotonic() + wall_s)
        try:
            call_with_deadline(partial(adapter.begin, world), wall_s)
        except RunTimedOut:
            sim.timed_out = wall_s
        except Exception as exc:
            sim.harness_error = f"the agent's begin(world) raised {type(exc).__name__}: {exc}"
        else:
            sim.run(wall_s)
        stopped = sim.harness_error or sim.agent_exception
        if sim.timed_out is not None:
            # The hung call's thread lives on and would reach the real network once no world
            # is active: this process refuses non-loopback connections from now on.
            seal_network()
            stopped = f"the load did not finish within {wall_s:g} s (wall clock)"
        worlds = list(sim.worlds.values())
        errors = [e for w in worlds for e in w.harness_errors]
        harness_error = sim.harness_error
        if errors and harness_error is None:
            first = errors[0]
            harness_error = f"the world failed answering a request: {type(first).__name__}: {first}"
        effects: list[Commit] = sorted((c for w in worlds for c in w.effects), key=lambda c: c.seq)
        events = log.events()
        return RunRecord(
            scenario=scenario.name,
            variant=variant,
            seed=seed,
            faults=(),
            exchanges=tuple(e for e in events if isinstance(e, Exchange)),
            firings=(),
            effects=tuple(effects),
            outcomes=(),
            deliveries=tuple(e for e in events if isinstance(e, Delivery)),
            timed_out=sim.timed_out,
            agent_exception=sim.agent_exception,
            harness_error=harness_error,
            duration_s=time.perf_counter() - started,
            others=tuple(e for e in events if not isinstance(e, Exchange | Delivery | Commit)),
            load=dataclasses.replace(
                sim.record(stopped, t0),
                records=sim.run_records([e for e in events if isinstance(e, Exchange)], seed),
            ),
        )


def _no_boundary(point: str, step: str) -> None:
    """A load has no crash points: boundaries are announced and ignored."""
