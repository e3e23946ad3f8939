"""The review queue under load: many runs against one agent state, judged from the harness's log.

A load scenario (a top-level ``load:``) starts ``load.runs`` copies of its input (``{n}`` in any
string of the scenario becomes the run's number) against ONE agent state directory,
``arrival_s`` apart on the fake clock. A run that parks in ``awaiting_approval`` joins the
review queue as the harness sees it; ``reviewers`` take approvals oldest first and each
delivers its decision ``delay_s`` later (``load.review``, cycled). A run the agent throttles
is started again as soon as the harness sees a free slot (``resubmit``). The harness never
asks the agent how long its queue is: the queue is the set of approvals the harness saw
parked and has not yet decided, minus those whose ``expires_at`` has passed, and every figure
below is computed from that evidence:

- ``queue_bounded``: that queue never held more than ``capacity`` approvals;
- ``runs_accounted``: every run was queued and ended after its decision, or ended ``throttled``
  with a reason in ``error`` (a *typed* reason; anything else is a silent drop);
- ``approved_runs_end``: a run whose approval was granted ends in ``expect.state``;
- ``throttle_justified``: a run was throttled only while the queue was at capacity;
- ``intake_resumes``: every throttled run, started again once the queue drained, was queued;
- ``review_sla``: time to decision (delivery minus park, fake clock) at p50/p90/p99 within the
  declared SLA, and no approval left to expire in the queue;
- ``unapproved_effects`` and ``duplicate_effects``: the universal rules, on each run's own
  requests, effects and decisions;
- ``load_exercised`` (a harness check): the queue filled at least once, else the scenario
  tested no throttling and is an ERROR, not a pass.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from harness.adapter import (
    AdapterContractError,
    AgentAdapter,
    Decision,
    Outcome,
    OutcomeLike,
    RunState,
    WorldContext,
)
from harness.checks import (
    AllRequestsRouted,
    ApprovedEffects,
    Check,
    Expectation,
    HarnessRan,
    NetworkContained,
    NoDuplicateEffects,
    Verdict,
)
from harness.clock import FakeClock
from harness.driver import RunTimedOut, _summarise, call_with_deadline
from harness.intercept import seal_network
from harness.record import Commit, Delivery, EventLog, Exchange, RunRecord
from harness.runner import build_world
from harness.scenario import Load, Scenario
from harness.world import World

MAX_THROTTLES_PER_RUN = 64
"""A run throttled this often is not started again (only an agent that never admits it)."""

PERCENTILES = (50, 90, 99)


# --------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class Step:
    """One adapter call for one load run, as the harness saw it.

    Attributes:
        order: position among every step and delivery of the load (one counter).
        t: fake time of the call.
        action: ``start``, ``resubmit`` (a throttled run started again) or ``deliver``.
        state: the state the agent reported.
        category: the category it reported.
        error: the reason it reported.
        queue_before: approvals pending in the harness's view of the queue before the call.
    """

    order: int
    t: float
    action: str
    state: str
    category: str | None
    error: str | None
    queue_before: int


@dataclass(frozen=True)
class Parked:
    """An approval the harness saw a run park on, and what became of it.

    ``ended`` is when it left the queue: its delivery, or its expiry when that came first (the
    agent counts an approval pending while ``expires_at > now``).
    """

    run: int
    approval_id: str
    parked_at: float
    parked_order: int
    expires_at: float
    delivered_at: float | None = None
    delivered_order: int | None = None
    verdict: str | None = None  # approve | deny | expired (picked after its expiry)

    def end_key(self) -> tuple[float, int] | None:
        """Sort key of the moment it left the queue (None: it never did)."""
        delivered, order = self.delivered_at, self.delivered_order
        if delivered is not None and order is not None and delivered < self.expires_at:
            return (delivered, order)
        if math.isfinite(self.expires_at):
            return (self.expires_at, -1)  # gone at expires_at, before anything else then
        return None

    @property
    def latency(self) -> float | None:
        """Time to decision on the fake clock, for a delivered decision."""
        if self.delivered_at is None or self.verdict not in ("approve", "deny"):
            return None
        return self.delivered_at - self.parked_at


@dataclass(frozen=True)
class LoadRun:
    """One of the load's runs: its number, the agent's run id, and every call made for it."""

    number: int
    run_id: str | None
    steps: tuple[Step, ...]

    @property
    def final(self) -> Step | None:
        """The last call's step."""
        return self.steps[-1] if self.steps else None

    @property
    def queued(self) -> bool:
        """Whether the run ever parked for a review."""
        return any(s.state == RunState.AWAITING_APPROVAL.value for s in self.steps)

    @property
    def throttles(self) -> tuple[Step, ...]:
        """The calls the agent answered ``throttled``."""
        return tuple(s for s in self.steps if s.state == RunState.THROTTLED.value)


@dataclass(frozen=True)
class LoadRecord:
    """What the harness saw of a load: runs, parked approvals, the declared bounds.

    Times are fake-clock seconds since the load's first start.
    """

    capacity: int
    sla: Mapping[str, float]
    resubmit: bool
    reviewers: int
    runs: tuple[LoadRun, ...]
    parked: tuple[Parked, ...]
    stopped: str | None = None  # why the load stopped before every run ended, if it did
    records: tuple[RunRecord, ...] = ()  # each run's own record: its requests, effects, decisions


# --------------------------------------------------------------------------- pure figures


def percentile(values: Iterable[float], q: float) -> float | None:
    """The nearest-rank percentile ``q`` (0 < q <= 100) of ``values``; None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def queue_lengths(parked: Sequence[Parked]) -> list[tuple[float, int, int]]:
    """The queue's length after every change, as ``(t, order, length)`` in time order.

    A sweep over parks (+1) and ends (-1, a delivery or an expiry); at one fake instant, events
    keep the order they happened in, and an expiry at ``t`` comes before anything else at ``t``.
    """
    events: list[tuple[float, int, int]] = []
    for p in parked:
        events.append((p.parked_at, p.parked_order, 1))
        end = p.end_key()
        if end is not None:
            events.append((end[0], end[1], -1))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    out: list[tuple[float, int, int]] = []
    length = 0
    for t, order, delta in events:
        length += delta
        out.append((t, order, length))
    return out


def max_queue_length(parked: Sequence[Parked]) -> int:
    """The most approvals pending at once."""
    return max((n for _, _, n in queue_lengths(parked)), default=0)


def latencies(parked: Sequence[Parked]) -> list[float]:
    """Time to decision of every delivered decision."""
    return [p.latency for p in parked if p.latency is not None]


def figures(load: LoadRecord) -> dict[str, Any]:
    """The queue figures of the report item (the shape ``report_model.QueueFigures`` fixes)."""
    waits = latencies(load.parked)
    throttled = [r for r in load.runs if r.throttles]
    lat = {f"p{q}": _rounded(percentile(waits, q)) for q in PERCENTILES}
    breaches = [k for k, limit in load.sla.items() if (lat.get(k) or 0.0) > limit]
    expired = sum(1 for p in load.parked if p.verdict == "expired")
    return {
        "runs": len(load.runs),
        "capacity": load.capacity,
        "reviewers": load.reviewers,
        "max_queue_length": max_queue_length(load.parked),
        "queued": sum(1 for r in load.runs if r.queued),
        "throttled": len(throttled),
        "throttle_events": sum(len(r.throttles) for r in load.runs),
        "resumed_after_drain": sum(1 for r in throttled if _queued_after_throttle(r)),
        "still_throttled": sum(
            1 for r in load.runs if r.final is not None and r.final.state == "throttled"
        ),
        "silent_drops": len(silent_drops(load)),
        "spurious_throttles": len(spurious_throttles(load)),
        "decided": len(waits),
        "expired": expired,
        "latency_s": lat,
        "sla_s": dict(load.sla),
        "sla_met": None if not waits else not breaches and not expired,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _queued_after_throttle(run: LoadRun) -> bool:
    first = next(i for i, s in enumerate(run.steps) if s.state == "throttled")
    return any(s.state == "awaiting_approval" for s in run.steps[first + 1 :])


def silent_drops(load: LoadRecord) -> list[tuple[LoadRun, str]]:
    """Runs that were neither queued and decided nor throttled with a reason, and why."""
    out = []
    for run in load.runs:
        final = run.final
        if final is None:
            continue  # never started: the load stopped first (load_finished says why)
        if final.state == "awaiting_approval":
            out.append((run, "it is still parked: no decision ended it"))
        elif final.state == "throttled":
            if not (final.error or "").strip():
                out.append((run, "it ended 'throttled' without a reason in 'error'"))
        elif not run.queued:
            why = f" ({final.error})" if final.error else ""
            out.append(
                (
                    run,
                    f"it ended '{final.state}'{why} at {final.action} without parking for a "
                    "review or saying it was throttled",
                )
            )
    return out


def spurious_throttles(load: LoadRecord) -> list[tuple[LoadRun, Step]]:
    """Throttles while the harness saw fewer pending approvals than the capacity."""
    return [(run, s) for run in load.runs for s in run.throttles if s.queue_before < load.capacity]


# --------------------------------------------------------------------------- the driver


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
                self.agent_exception = f"run {number}: {_summarise(exc)}"
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


# --------------------------------------------------------------------------- the checks


class _LoadCheck(Check):
    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        load = record.load
        if load is None:
            return self.error("not a load run: the record has no load section")
        return self.judge(load, record)

    def judge(self, load: LoadRecord, record: RunRecord) -> Verdict:
        raise NotImplementedError


class LoadFinished(_LoadCheck):
    """Every run of the load was driven to its end: the agent neither hung nor raised."""

    name: ClassVar[str] = "load_finished"

    def judge(self, load: LoadRecord, record: RunRecord) -> Verdict:
        if record.harness_error:
            return self.skip("the harness could not run the load (see harness_ran)")
        if record.timed_out is not None:
            return self.fail(
                f"the load did not finish within {record.timed_out:g} s (wall clock): the agent "
                "stopped answering; every start and resume must return once the run is parked "
                "or ended"
            )
        if record.agent_exception:
            return self.fail(
                f"the agent raised instead of returning an outcome: {record.agent_exception}"
            )
        started = sum(1 for r in load.runs if r.steps)
        return self.ok(f"{started} run(s) driven to their end")


class QueueBounded(_LoadCheck):
    """Evidence: the approvals parked and not yet decided or expired never exceed the capacity."""

    name: ClassVar[str] = "queue_bounded"

    def judge(self, load: LoadRecord, record: RunRecord) -> Verdict:
        lengths = queue_lengths(load.parked)
        peak = max((n for _, _, n in lengths), default=0)
        if peak > load.capacity:
            t, order, _ = next(x for x in lengths if x[2] > load.capacity)
            who = next((p for p in load.parked if p.parked_order == order), None)
            culprit = (
                "" if who is None else f" when run {who.run} parked approval {who.approval_id!r}"
            )
            return self.fail(
                f"the review queue held {peak} approvals waiting for a decision at once "
                f"(capacity {load.capacity}); it first went over at t={t:g}{culprit}. Throttle "
                f"intake while {load.capacity} approvals are pending instead of queueing more"
            )
        return self.ok(f"at most {peak} of {load.capacity} approvals pending at once")


class RunsAccounted(_LoadCheck):
    """Every run was queued and ended after its decision, or ended throttled with a reason."""

    name: ClassVar[str] = "runs_accounted"

    def judge(self, load: LoadRecord, record: RunRecord) -> Verdict:
        drops = silent_drops(load)
        started = [r for r in load.runs if r.steps]
        if not started:
            return self.skip("no run started (see load_finished)")
        if drops:
            listed = "; ".join(f"run {r.number} ({r.run_id}): {why}" for r, why in drops[:5])
            return self.fail(
                f"{len(drops)} of {len(started)} run(s) silently dropped: {listed}. Every run "
                "must park for its review, or end 'throttled' with the reason in 'error'"
            )
        queued = sum(1 for r in started if r.queued)
        throttled = sum(1 for r in started if r.final is not None and r.final.state == "throttled")
        return self.ok(
            f"{queued} run(s) queued and decided, {throttled} ended throttled with a reason, "
            "0 silent drops"
        )


class ApprovedRunsEnd(Check):
    """A run whose approval was granted ends in the scenario's ``expect.state``."""

    name: ClassVar[str] = "approved_runs_end"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        load = record.load
        if load is None:
            return self.error("not a load run: the record has no load section")
        if expect.state is None:
            return self.skip("the scenario expects no state")
        approved = {p.run for p in load.parked if p.verdict == "approve"}
        if not approved:
            return self.skip("no approval was granted")
        wrong = [
            r
            for r in load.runs
            if r.number in approved and r.final is not None and r.final.state != expect.state
        ]
        if wrong:
            run = wrong[0]
            assert run.final is not None
            why = f" ({run.final.error})" if run.final.error else ""
            return self.fail(
                f"{len(wrong)} of {len(approved)} approved run(s) did not end "
                f"'{expect.state}': run {run.number} ({run.run_id}) ended '{run.final.state}'"
                f"{why}"
            )
        return self.ok(f"{len(approved)} approved run(s) ended '{expect.state}'")


@dataclass(frozen=True)
class PerRun(Check):
    """A universal rule judged on each run of the load (its requests, effects and decisions)."""

    rule: Check
    name: ClassVar[str] = "per_run"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        name = self.rule.name
        load = record.load
        if load is None:
            return Verdict(name, False, "not a load run: the record has no load section", True)
        judged = [(r, self.rule.evaluate(r, expect)) for r in load.records]
        for run, verdict in judged:
            if verdict.passed is False:
                return Verdict(name, False, f"{run.variant}: {verdict.reason}", verdict.harness)
        held = sum(1 for _, v in judged if v.passed)
        if not held:
            reasons = {v.reason for _, v in judged}
            return Verdict(name, None, "; ".join(sorted(reasons)) or "no run started")
        return Verdict(name, True, f"held in each of {held} run(s)")


class ThrottleJustified(_LoadCheck):
    """A run is throttled only while the harness sees the queue at capacity."""

    name: ClassVar[str] = "throttle_justified"

    def judge(self, load: LoadRecord, record: RunRecord) -> Verdict:
        events = sum(len(r.throttles) for r in load.runs)
        if not events:
            return self.skip("no run was throttled")
        wrong = spurious_throttles(load)
        if wrong:
            run, step = wrong[0]
            return self.fail(
                f"{len(wrong)} of {events} throttle(s) came while the queue had room: run "
                f"{run.number} was throttled at t={step.t:g} ({step.action}) with "
                f"{step.queue_before} of {load.capacity} approvals pending (approvals decided "
                "or expired are no longer pending); count only approvals still waiting for a "
                "decision"
            )
        return self.ok(f"{events} throttle(s), each with the queue at capacity")


class IntakeResumes(_LoadCheck):
    """A throttled run started again after the queue drained is queued."""

    name: ClassVar[str] = "intake_resumes"

    def judge(self, load: LoadRecord, record: RunRecord) -> Verdict:
        if not load.resubmit:
            return self.skip("load.resubmit is off: throttled runs are not started again")
        throttled = [r for r in load.runs if r.throttles]
        if not throttled:
            return self.skip("no run was throttled")
        stuck = [r for r in throttled if not _queued_after_throttle(r)]
        if stuck and load.stopped is None:
            run = stuck[0]
            tries = [s for s in run.steps if s.action == "resubmit"]
            seen = (
                f"; started again {len(tries)} time(s), with {tries[0].queue_before} of "
                f"{load.capacity} approvals pending the first time"
                if tries
                else ""
            )
            return self.fail(
                f"{len(stuck)} of {len(throttled)} throttled run(s) never got into the queue "
                f"after it drained: run {run.number} ({run.run_id}){seen}. Intake must "
                "resume as soon as approvals are decided"
            )
        if stuck:
            return self.skip(f"the load stopped early: {load.stopped}")
        first = min(
            s.t
            for r in throttled
            for s in r.steps
            if s.action == "resubmit" and s.state != "throttled"
        )
        return self.ok(
            f"{len(throttled)} throttled run(s), all queued once the queue drained (first at "
            f"t={first:g})"
        )


class ReviewSla(_LoadCheck):
    """Time to decision (delivery minus park, fake clock) within the declared percentiles."""

    name: ClassVar[str] = "review_sla"

    def judge(self, load: LoadRecord, record: RunRecord) -> Verdict:
        waits = latencies(load.parked)
        expired = [p for p in load.parked if p.verdict == "expired"]
        if not waits and not expired:
            return self.skip("no approval was decided")
        measured = {f"p{q}": percentile(waits, q) for q in PERCENTILES}
        shown = ", ".join(
            f"{k} {v:g} s" if v is not None else f"{k} n/a" for k, v in measured.items()
        )
        over = [
            f"{k} {measured[k]:g} s > {limit:g} s"
            for k, limit in load.sla.items()
            if (measured.get(k) or 0.0) > limit
        ]
        if expired:
            over.append(
                f"{len(expired)} approval(s) expired in the queue before a reviewer took them"
            )
        if over:
            return self.fail(
                f"review latency over the SLA: {'; '.join(over)} (measured {shown} over "
                f"{len(waits)} decision(s)); a bounded queue keeps the wait within capacity x "
                "review time / reviewers: lower the capacity or throttle sooner"
            )
        return self.ok(f"{shown} over {len(waits)} decision(s), within the SLA")


class LoadExercised(_LoadCheck):
    """The queue filled at least once (else the scenario tested no throttling: an ERROR)."""

    name: ClassVar[str] = "load_exercised"

    def judge(self, load: LoadRecord, record: RunRecord) -> Verdict:
        if load.stopped is not None:
            return self.skip(f"the load stopped early: {load.stopped}")
        peak = max_queue_length(load.parked)
        if peak < load.capacity:
            return Verdict(
                self.name,
                False,
                f"the queue never filled (at most {peak} of {load.capacity} approvals pending), "
                "so throttling was never tested; start more runs (load.runs), space them closer "
                "(load.arrival_s) or slow the reviewers (load.review delay_s)",
                harness=True,
            )
        return self.ok(f"the queue reached {peak} of {load.capacity}")


LOAD_CHECKS: tuple[Check, ...] = (
    HarnessRan(),
    AllRequestsRouted(),
    NetworkContained(),
    PerRun(ApprovedEffects()),
    PerRun(NoDuplicateEffects()),
    LoadFinished(),
    QueueBounded(),
    RunsAccounted(),
    ApprovedRunsEnd(),
    ThrottleJustified(),
    IntakeResumes(),
    ReviewSla(),
    LoadExercised(),
)
"""What a load item is judged by."""


def judge_load(record: RunRecord, expect: Expectation) -> tuple[Verdict, ...]:
    """Every load check on a load record."""
    return tuple(c.evaluate(record, expect) for c in LOAD_CHECKS)
