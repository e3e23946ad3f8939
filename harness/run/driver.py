"""Drive an agent adapter through one run: start, reviewer decisions, crashes and restarts.

The driver owns the run's control flow and nothing else: it does not know HTTP (the world does)
nor judge the run (checks do). Every adapter call runs in a daemon thread under the run's
wall-clock deadline, so an agent that hangs fails its run instead of hanging CI.
"""

from __future__ import annotations

import queue
import random
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from faults.base import Fault
from faults.surfaces import (
    AgentCrash,
    ApprovalFault,
    CrashFault,
    CrashPoint,
    FaultFiring,
    ReviewAction,
    ReviewContext,
)
from harness.adapter import (
    AdapterContractError,
    AgentAdapter,
    Decision,
    Outcome,
    RunState,
    WorldContext,
)
from harness.record import Crash, Delivery, EventLog, Restart, TraceCopy

T = TypeVar("T")

MAX_RESTARTS = 8
MAX_REVIEW_ROUNDS = 16


class RunTimedOut(Exception):
    """The agent did not return within the run's wall-clock limit."""


class _CallResult:
    __slots__ = ("error", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None


CALL_THREAD_NAME = "shakeout-agent-call"
IDLE_THREAD_NAME = "shakeout-agent-idle"


class _CallThread:
    """A daemon thread that runs adapter calls one after another.

    Idle threads are kept for the next call: an agent's thread-bound state (an asyncio event
    loop, and the HTTP clients bound to it) then outlives one call, as it does in a real worker.
    A fresh thread per call made pydantic-ai rebuild its HTTP client, SSL context included
    (50-120 ms), on every call. The thread is named ``shakeout-agent-call`` while it runs one.
    """

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[
            tuple[Callable[[], Any], _CallResult, threading.Event] | None
        ] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name=IDLE_THREAD_NAME, daemon=True)
        self.thread.start()

    def submit(self, fn: Callable[[], Any], box: _CallResult, done: threading.Event) -> None:
        self._calls.put((fn, box, done))

    def abandon(self) -> None:
        """Let the thread end once its hung call returns (if it ever does)."""
        self._calls.put(None)

    def _serve(self) -> None:
        while True:
            job = self._calls.get()
            if job is None:
                return
            fn, box, done = job
            self.thread.name = CALL_THREAD_NAME
            try:
                box.value = fn()
            except BaseException as exc:  # carried to the caller's thread, re-raised there
                box.error = exc
            finally:
                self.thread.name = IDLE_THREAD_NAME
                done.set()


_IDLE: list[_CallThread] = []
_IDLE_LOCK = threading.Lock()


def call_with_deadline(fn: Callable[[], T], deadline_s: float) -> T:
    """Run ``fn`` in a daemon thread; raise RunTimedOut if it does not return in time.

    A hung call's thread is abandoned (Python cannot kill a thread); it is a daemon, so it never
    keeps the process alive. Threads whose call returned are reused for later calls.
    """
    with _IDLE_LOCK:
        worker = _IDLE.pop() if _IDLE else None
    if worker is None:
        worker = _CallThread()
    box = _CallResult()
    done = threading.Event()
    worker.submit(fn, box, done)
    if not done.wait(max(deadline_s, 0.0)):
        worker.abandon()
        raise RunTimedOut
    with _IDLE_LOCK:
        _IDLE.append(worker)
    if box.error is not None:
        raise box.error
    return box.value  # type: ignore[no-any-return]


@dataclass
class CrashPlan:
    """Decides, at each boundary the agent reports, whether to crash it there."""

    faults: Sequence[CrashFault]
    rng: random.Random
    log: EventLog | None = None
    clock: Callable[[], float] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    fired: list[str] = field(default_factory=list)
    firings: list[FaultFiring] = field(default_factory=list)
    seen: list[tuple[str, str]] = field(default_factory=list)

    def boundary(self, point: str, step: str) -> None:
        """The hook handed to the agent: raises AgentCrash where a crash is scheduled."""
        self.seen.append((point, step))
        for fault in self.faults:
            if fault.point.value != point:
                continue
            if fault.target is not None and fault.target != step:
                continue
            key = f"{fault.key}|{fault.target}"
            n = self.counts.get(key, 0) + 1
            self.counts[key] = n
            if fault.at.fires(n, self.rng):
                self.fired.append(f"{point}:{step}")
                self.firings.append(
                    FaultFiring(fault.key, fault.surface, f"{point}:{step}", n, {}, fault.label())
                )
                self._logged(point, step)
                raise AgentCrash(f"shakeout crash fault {fault.key} at {point}:{step}")

    def _logged(self, point: str, where: str) -> None:
        if self.log is not None:
            t = self.clock() if self.clock is not None else 0.0
            self.log.add(Crash(point, where, self.log.next(), t))

    def parked_crash(self, round_index: int) -> CrashFault | None:
        """A while-parked crash scheduled for this review round, if any."""
        for fault in self.faults:
            if fault.point is CrashPoint.WHILE_PARKED and fault.at.fires(round_index, self.rng):
                self.fired.append(f"while_parked:{round_index}")
                self.firings.append(
                    FaultFiring(
                        fault.key, fault.surface, "while_parked", round_index, {}, fault.label()
                    )
                )
                self._logged("while_parked", str(round_index))
                return fault
        return None


@dataclass
class Reviewer:
    """The scripted reviewer: one action per approval request, bent by approval faults."""

    script: Sequence[ReviewAction]
    faults: Sequence[ApprovalFault]
    rng: random.Random
    rounds: int = 0
    firings: list[FaultFiring] = field(default_factory=list)

    def next_action(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        expires_at: float | None = None,
        now: float | None = None,
    ) -> ReviewAction:
        """The action for the next approval round (``expires_at``/``now``: the fake clock's
        view of the pending approval, for faults that time their decision against it)."""
        self.rounds += 1
        i = self.rounds
        scripted = self.script[i - 1] if i - 1 < len(self.script) else ReviewAction("never")
        action = scripted
        for fault in self.faults:
            if fault.target is not None and fault.target != tool:
                continue
            if fault.at.fires(i, self.rng):
                action = fault.review(
                    ReviewContext(tool, arguments, scripted, i, expires_at=expires_at, now=now)
                )
                self.firings.append(
                    FaultFiring(fault.key, fault.surface, f"approval:{tool}", i, {}, fault.label())
                )
        return action


@dataclass
class DriveResult:
    """What the driver saw; the runner merges it with the world's records."""

    outcomes: list[Outcome] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    restarts: int = 0
    timed_out: float | None = None
    agent_exception: str | None = None
    stopped: str | None = None
    harness_error: str | None = None
    trace: TraceCopy | None = None


def drive(
    adapter: AgentAdapter,
    payload: Any,
    *,
    world: WorldContext,
    faults: Sequence[Fault],
    reviewer_script: Sequence[ReviewAction],
    rng: random.Random,
    wall_s: float,
    log: EventLog,
    clock_advance: Callable[[float], None],
    monotonic: Callable[[], float],
    twin: Callable[[], AgentAdapter] | None = None,
    fresh: Callable[[], AgentAdapter] | None = None,
    fresh_process: bool = False,
) -> tuple[DriveResult, CrashPlan, Reviewer]:
    """Run one scenario variant through the adapter until a terminal state or a limit.

    ``twin`` builds a second adapter instance of the same agent, for a reviewer action that
    delivers one decision from two workers at once (``ReviewAction.concurrent``). ``fresh``
    builds a new instance from the agent's factory: after a crash the run resumes in it, over
    the same state dir, so nothing the crashed instance held in memory survives (without a
    factory the same instance is re-begun, and the restart event says so). ``fresh_process``:
    the adapter's ``begin`` itself starts a new process (hard-kill mode).
    """
    crash_plan = CrashPlan(
        [f for f in faults if isinstance(f, CrashFault)], rng, log, world.clock.now
    )
    reviewer = Reviewer(reviewer_script, [f for f in faults if isinstance(f, ApprovalFault)], rng)
    world = world.with_boundary(crash_plan.boundary)
    result = DriveResult()
    deadline = monotonic() + wall_s

    def call(fn: Callable[[], Any]) -> Outcome | None:
        """One adapter call; None when a crash fault tore it down."""
        raw = call_with_deadline(fn, deadline - monotonic())
        return Outcome.read(raw)

    def concurrently(run_id: str, decision: Decision) -> Outcome:
        """The decision delivered at once to the adapter and a twin over the same state."""
        if twin is None:
            raise _NoTwin(
                "a reviewer action delivers a decision concurrently, but the runner has no "
                "second instance of the agent; run the agent from a factory path (chaos_agent)"
            )
        other = twin()
        other.begin(world)
        again = replace(result.deliveries[-1], seq=log.next(), t=_now(world))
        log.add(again)
        result.deliveries.append(again)
        first, second = call_with_deadline(
            partial(_both, adapter, other, run_id, decision), deadline - monotonic()
        )
        outcomes = [Outcome.read(first), Outcome.read(second)]
        # carry on from the run's furthest point: a terminal outcome, else one still parked on
        # an approval (the loser of the race reports the one it could not use)
        outcomes.sort(key=lambda o: (o.state.terminal, o.pending_approval is not None))
        result.outcomes.append(outcomes[0])
        return outcomes[1]

    def restart() -> None:
        nonlocal adapter
        result.restarts += 1
        if result.restarts > MAX_RESTARTS:
            raise _GiveUp(
                f"the harness stopped the run after {MAX_RESTARTS} restarts: every resumed run "
                "was crashed again, so it never settled; a crash fault scheduled on every call "
                "(at: {every: true}) or on many (at: {first: N}) crashes each resume, aim it at "
                "one call (at: {nth: N})"
            )
        if fresh is not None:
            adapter = fresh()
        log.add(Restart(log.next(), _now(world), fresh is not None or fresh_process))
        adapter.begin(world)

    try:
        adapter.begin(world)
        # The wall-clock limit is the run's own: what begin() builds (clients, SDK imports, a
        # database) is set-up, like a service's start-up, and never counts against the run.
        deadline = monotonic() + wall_s
        run_id: str | None = None
        outcome: Outcome | None = None
        while outcome is None:
            try:
                outcome = call(lambda: adapter.start(payload))
            except AgentCrash:
                # The intake message is redelivered, as a queue would after a crash: a well-
                # built agent recognises the same input and continues the same run.
                restart()
        result.outcomes.append(outcome)
        run_id = outcome.run_id
        rounds = 0
        while outcome.state is RunState.AWAITING_APPROVAL:
            rounds += 1
            if rounds > MAX_REVIEW_ROUNDS:
                raise _GiveUp(
                    f"the harness stopped the run after {MAX_REVIEW_ROUNDS} review rounds: the "
                    f"agent still awaited approval (of {_asked(outcome)}) after "
                    f"{MAX_REVIEW_ROUNDS} decisions; after resume(run_id, decision) a run must act "
                    "on the decision and go on to a terminal state, not ask again (a workflow "
                    f"that really needs more approvals than {MAX_REVIEW_ROUNDS} belongs in "
                    "several scenarios)"
                )
            pending = outcome.pending_approval
            if pending is None:
                raise AdapterContractError(
                    "the agent reported 'awaiting_approval' without a pending_approval; an "
                    "adapter must say what it is waiting for"
                )
            if crash_plan.parked_crash(rounds) is not None:
                restart()
            action = reviewer.next_action(
                pending.tool, pending.arguments, expires_at=pending.expires_at, now=_now(world)
            )
            if action.after_restart:
                restart()
            decision: Decision | None = None
            if action.verdict == "never":
                clock_advance(max(pending.expires_at - _now(world), 0.0) + 1.0)
            else:
                clock_advance(action.delay_s)
                arguments = dict(action.arguments or pending.arguments)
                decision = Decision(
                    approval_id=pending.approval_id,
                    approved=action.verdict == "approve",
                    tool=pending.tool,
                    arguments=arguments,
                )
            for _ in range(max(action.times, 1)):
                delivery = Delivery(
                    approval_id=pending.approval_id,
                    tool=pending.tool,
                    verdict=action.verdict if decision is not None else "never",
                    arguments=decision.arguments if decision is not None else {},
                    bound_to_requested=action.arguments is None,
                    seq=log.next(),
                    t=_now(world),
                    expires_at=pending.expires_at,
                )
                log.add(delivery)
                result.deliveries.append(delivery)
                nxt: Outcome | None = None
                while nxt is None:
                    try:
                        if action.concurrent and decision is not None:
                            nxt = concurrently(run_id, decision)
                        else:
                            nxt = call(partial(adapter.resume, run_id, decision))
                    except AgentCrash:
                        restart()
                result.outcomes.append(nxt)
                outcome = nxt
                if decision is None:
                    break
        trace = adapter.trace(run_id)
        if trace is not None:
            result.trace = TraceCopy(
                tuple(dict(r) for r in trace.records), bool(trace.kept_in_full)
            )
    except RunTimedOut:
        result.timed_out = wall_s
    except _GiveUp as exc:
        result.stopped = str(exc)
    except AdapterContractError as exc:
        result.harness_error = f"adapter contract: {exc}"
    except _NoTwin as exc:
        result.harness_error = str(exc)
    except AgentCrash as exc:  # pragma: no cover - every crash is caught where it is raised
        result.harness_error = f"unhandled crash signal: {exc}"
    except Exception as exc:
        result.agent_exception = summarise_exception(exc)
    return result, crash_plan, reviewer


class _GiveUp(Exception):
    """The run does not settle (restart or review loop): the harness stops it."""


def _asked(outcome: Outcome) -> str:
    pending = outcome.pending_approval
    return repr(pending.tool) if pending is not None else "nothing named"


class _NoTwin(Exception):
    """A concurrent delivery needs a second adapter instance and none can be built."""


def _both(
    first: AgentAdapter, second: AgentAdapter, run_id: str, decision: Decision
) -> tuple[Any, Any]:
    """``resume(run_id, decision)`` on two adapters released at once by a barrier."""
    barrier = threading.Barrier(2)
    box = _CallResult()

    def other() -> None:
        try:
            barrier.wait()
            box.value = second.resume(run_id, decision)
        except BaseException as exc:  # carried to the caller's thread, re-raised there
            box.error = exc

    worker = threading.Thread(target=other, name="shakeout-twin-call", daemon=True)
    worker.start()
    try:
        barrier.wait()
        mine = first.resume(run_id, decision)
    finally:
        worker.join()
    if box.error is not None:
        raise box.error
    return mine, box.value


def _now(world: WorldContext) -> float:
    return world.clock.now()


def summarise_exception(exc: BaseException) -> str:
    """An exception as one line plus the agent-side frame it came from."""
    told = getattr(exc, "summary", None)
    if isinstance(told, str):
        return told  # summarised where it happened (an agent in another process)
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    for frame in reversed(frames):
        if "/harness/" not in frame.filename:
            where = f" (at {Path(frame.filename).name}:{frame.lineno} in {frame.name})"
            break
    return f"{type(exc).__name__}: {exc}{where}"
