"""The runner: build a run's world from a scenario variant, drive the adapter, return a RunRecord.

Plain code (no pytest): the plugin and the ``chaos_run`` fixture call :func:`run_variant`, and
so can any script.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from secrets import token_hex
from typing import Any

from faults.base import Fault, Surface
from faults.injection import Payload
from faults.surfaces import (
    CrashFault,
    CrashMode,
    FaultFiring,
    HttpResponse,
    ModelAnswer,
    ReviewAction,
)
from harness.adapter import AgentAdapter, Endpoints, WorldContext
from harness.record import Blocked, Crash, Delivery, EventLog, Exchange, Restart, RunRecord
from harness.run.agent_factory import (
    AgentLoadError as AgentLoadError,  # re-exported: callers import it here
)
from harness.run.agent_factory import load_factory as load_factory
from harness.run.driver import CrashPlan, DriveResult, Reviewer, call_with_deadline, drive
from harness.run.hardkill import HardKillAdapter, hard_adapter
from harness.scenario.expect import Expectation
from harness.scenario.spec import Scenario
from harness.scenario.variant import SCENARIO_INPUT, Probe, Variant
from harness.world.clock import FakeClock
from harness.world.intercept import seal_network
from harness.world.model import BaitedModel, ScriptedModel, ToolErrorReaction, bait_of
from harness.world.services import Ledger, Sequence, Static, ToolService
from harness.world.world import World


class AdapterCache:
    """One adapter per (factory, endpoints) per process: adapters are built once per worker."""

    def __init__(self) -> None:
        self._adapters: dict[tuple[str, Endpoints], AgentAdapter] = {}
        self._lock = threading.Lock()

    def get(self, factory: str, endpoints: Endpoints) -> AgentAdapter:
        """The cached adapter, built on first use."""
        key = (factory, endpoints)
        with self._lock:
            adapter = self._adapters.get(key)
            if adapter is None:
                adapter = load_factory(factory)(endpoints)
                self._adapters[key] = adapter
                _remember_origin(adapter, factory, endpoints)
            return adapter


# Where each cached adapter came from, so a run can build what the adapter instance alone
# cannot give: a hard-kill child process, a twin instance for concurrent deliveries.
_ORIGINS: dict[int, tuple[AgentAdapter, str, Endpoints]] = {}
_TWINS: dict[tuple[str, Endpoints], AgentAdapter] = {}
_ORIGINS_LOCK = threading.Lock()


def _remember_origin(adapter: AgentAdapter, factory: str, endpoints: Endpoints) -> None:
    with _ORIGINS_LOCK:
        _ORIGINS[id(adapter)] = (adapter, factory, endpoints)


def adapter_origin(adapter: AgentAdapter) -> tuple[str, Endpoints] | None:
    """The ``(factory path, endpoints)`` an :class:`AdapterCache` built ``adapter`` from."""
    with _ORIGINS_LOCK:
        entry = _ORIGINS.get(id(adapter))
    if entry is None or entry[0] is not adapter:
        return None
    return entry[1], entry[2]


def twin_adapter(factory: str, endpoints: Endpoints) -> AgentAdapter:
    """A second instance of the agent (the factory called again), cached per worker."""
    key = (factory, endpoints)
    with _ORIGINS_LOCK:
        twin = _TWINS.get(key)
    if twin is None:
        twin = load_factory(factory)(endpoints)
        with _ORIGINS_LOCK:
            twin = _TWINS.setdefault(key, twin)
    return twin


def fresh_adapter(factory: str, endpoints: Endpoints) -> AgentAdapter:
    """A new instance of the agent from its factory: what a crashed run resumes in.

    Never cached: a crash drops the process, and with it everything the agent held in memory.
    """
    return load_factory(factory)(endpoints)


def _tracked(
    built: list[AgentAdapter], make: Callable[..., AgentAdapter], *args: Any
) -> AgentAdapter:
    adapter = make(*args)
    built.append(adapter)
    return adapter


CLOSE_DEADLINE_S = 10.0


def close_built(built: list[AgentAdapter]) -> None:
    """Close the instances a run built (those with a ``close()``), once the run is over.

    A dropped instance that is never closed keeps its database connections and clients open
    until the cyclic garbage collector happens to run (an unclosed ``sqlite3.Connection`` sits
    in a reference cycle with its statement cache), so a worker accumulated one open database
    per crash cell and its interpreter spent seconds closing them all at exit. Errors and hangs
    in an agent's ``close()`` are the agent's: they never change the run's verdict.
    """
    while built:
        close = getattr(built.pop(), "close", None)
        if callable(close):
            with contextlib.suppress(Exception):  # closing never judges the run (see above)
                call_with_deadline(close, CLOSE_DEADLINE_S)


def hard_mode(faults: tuple[Fault, ...]) -> bool:
    """Whether a run's faults ask for hard-kill crashes (the agent in a child process)."""
    return any(isinstance(f, CrashFault) and f.mode is CrashMode.HARD for f in faults)


def endpoints_of(scenario: Scenario) -> Endpoints:
    """Where the scenario's world answers."""
    return Endpoints(model_base_url=scenario.model.base_url, tools_base_url=scenario.tools.base_url)


@dataclass(frozen=True)
class _Script:
    """What every run of a scenario serves and delivers, derived once from its spec: the
    services' responses (JSON-encoded), the model's answers and the reviewer's actions. All
    are immutable, so runs share them; the behaviours holding per-run state are built fresh."""

    responses: Mapping[str, tuple[HttpResponse, ...]]
    model_answers: tuple[ModelAnswer, ...]
    review_actions: tuple[ReviewAction, ...]


# Scenario models are frozen, but not hashable (they hold dicts): keyed by id, each entry
# holding its scenario so the id stays its own for as long as the entry lives.
_SCRIPTS: dict[int, tuple[Scenario, _Script]] = {}
_SCRIPTS_MAX = 256
_SCRIPTS_LOCK = threading.Lock()


def _script(scenario: Scenario) -> _Script:
    """The scenario's derived script, built on a scenario's first run (encoding its responses
    and answers cost a third of the world's set-up per run)."""
    entry = _SCRIPTS.get(id(scenario))
    if entry is not None and entry[0] is scenario:
        return entry[1]
    script = _Script(
        responses={n: spec.responses() for n, spec in scenario.tools.services.items()},
        model_answers=scenario.model_answers(),
        review_actions=scenario.review_actions(),
    )
    with _SCRIPTS_LOCK:
        if len(_SCRIPTS) >= _SCRIPTS_MAX:
            del _SCRIPTS[next(iter(_SCRIPTS))]  # the oldest scenario
        _SCRIPTS[id(scenario)] = (scenario, script)
    return script


def build_services(scenario: Scenario) -> list[ToolService]:
    """Fresh tool services for one run."""
    out = []
    served = _script(scenario).responses
    for name, spec in scenario.tools.services.items():
        responses = served[name]
        behaviour: Static | Sequence | Ledger
        if spec.kind == "ledger":
            behaviour = Ledger(responses[0])
        elif spec.kind == "sequence":
            behaviour = Sequence(responses)
        else:
            behaviour = Static(responses[0])
        out.append(
            ToolService(name, spec.method, behaviour, path=spec.path, path_regex=spec.path_regex)
        )
    return out


def build_world(
    scenario: Scenario,
    faults: tuple[Fault, ...],
    seed: int,
    clock: FakeClock,
    log: EventLog | None = None,
    *,
    injection: tuple[Payload, str] | None = None,
    on_tool_error: ToolErrorReaction | None = None,
) -> World:
    """The world of one run: scripted model, fresh services, the faults, one seeded RNG.

    With ``injection`` (a payload and its cell's label) the scripted model takes the payload's
    bait (see :class:`harness.world.model.BaitedModel`). ``on_tool_error`` (a matrix cell's
    reaction) replaces the scenario's ``model.on_tool_error``.
    """
    model: ScriptedModel
    reaction = on_tool_error or scenario.model.on_tool_error
    answers = _script(scenario).model_answers
    if injection is None:
        model = ScriptedModel(
            scenario.model.format,
            answers,
            stream=scenario.model.stream,
            on_tool_error=reaction,
        )
    else:
        model = BaitedModel(
            bait_of(*injection),
            scenario.model.format,
            answers,
            stream=scenario.model.stream,
            on_tool_error=reaction,
        )
    return World(
        endpoints_of(scenario),
        model,
        build_services(scenario),
        faults,
        seed,
        clock,
        log,
        allow_subprocess=scenario.allow_subprocess,
    )


def run_variant(
    variant: Variant,
    adapter: AgentAdapter,
    *,
    seed: int,
    wall_s: float,
    state_root: Path | None = None,
    config: Mapping[str, Any] | None = None,
) -> RunRecord:
    """Run one variant against an adapter and return its frozen record."""
    scenario = variant.scenario
    clock = FakeClock()
    started = time.perf_counter()
    # The state directory is made only if the agent reads ``world.state_dir``: an agent that
    # keeps no state on disk saves its mkdir and removal (~0.4 ms a run, P6).
    root = Path(tempfile.gettempdir() if state_root is None else state_root)
    state_dir = root / f"{'shakeout' if state_root is None else scenario.name}-{token_hex(8)}"
    context: WorldContext | None = None
    try:
        log = EventLog()
        injection = None if variant.injection is None else (variant.injection, variant.label)
        world = build_world(
            scenario,
            variant.faults,
            seed,
            clock,
            log,
            injection=injection,
            on_tool_error=variant.on_tool_error,
        )
        agent_config = {**(config or {}), **scenario.agent_config}
        context = WorldContext(
            state_dir, clock, agent_config, seed, _no_boundary, make_state_dir=True
        )
        payload = scenario.input if variant.payload is SCENARIO_INPUT else variant.payload
        origin = adapter_origin(adapter)
        twin = None if origin is None else partial(twin_adapter, *origin)
        built: list[AgentAdapter] = []  # the fresh instances this run made, closed after it
        fresh = None if origin is None else partial(_tracked, built, fresh_adapter, *origin)
        driven: AgentAdapter | None = adapter
        hard = adapter if isinstance(adapter, HardKillAdapter) else None
        if hard is None and hard_mode(variant.faults):
            driven = hard = None if origin is None else hard_adapter(*origin)
        hard_errors: tuple[Exception, ...] = ()
        notes: tuple[str, ...] = ()
        if hard is not None:
            hard.warm()
        with world.active():
            if hard is not None:
                hard.attach(world.router, deadline=time.monotonic() + wall_s)
            try:
                if driven is None:
                    result, crash_plan, reviewer = _cannot_run_hard(seed)
                else:
                    result, crash_plan, reviewer = drive(
                        driven,
                        payload,
                        world=context,
                        faults=variant.faults,
                        reviewer_script=_script(scenario).review_actions,
                        rng=random.Random(seed ^ 0x5EED),
                        wall_s=wall_s,
                        log=log,
                        clock_advance=clock.advance,
                        monotonic=time.monotonic,
                        twin=twin,
                        fresh=None if hard is not None else fresh,
                        fresh_process=hard is not None,
                    )
            finally:
                if hard is not None:
                    notes = tuple(k.note() for k in hard.release())
                    hard_errors = tuple(hard.handler_errors)
            # Inside the world: whatever closing sends is still intercepted. A run whose call
            # hung leaves that instance to its thread.
            if result.timed_out is None:
                close_built(built)
        if result.timed_out is not None:
            # The hung call's thread lives on and would reach the real network once the world
            # is gone: this process refuses non-loopback connections from now on.
            seal_network()
        harness_error = result.harness_error
        errors = (*world.harness_errors, *hard_errors)
        if errors and harness_error is None:
            first = errors[0]
            harness_error = f"the world failed answering a request: {type(first).__name__}: {first}"
        events = log.events()
        return RunRecord(
            scenario=scenario.name,
            variant=variant.label,
            seed=seed,
            faults=variant.faults,
            exchanges=tuple(e for e in events if isinstance(e, Exchange)),
            firings=_ordered_firings(world.firings, crash_plan.firings, reviewer.firings),
            effects=world.effects,
            outcomes=tuple(result.outcomes),
            deliveries=tuple(e for e in events if isinstance(e, Delivery)),
            restarts=result.restarts,
            trace=result.trace,
            model_exhausted=len(world.model_exhausted),
            timed_out=result.timed_out,
            agent_exception=result.agent_exception,
            stopped=result.stopped,
            harness_error=harness_error,
            duration_s=time.perf_counter() - started,
            crashes=(
                *crash_plan.fired,
                *(f"after_effect:{f.where}" for f in world.firings if f.surface is Surface.CRASH),
            ),
            boundaries=tuple(crash_plan.seen),
            notes=notes,
            others=tuple(e for e in events if isinstance(e, Crash | Restart | Blocked)),
        )
    finally:
        if context is not None:
            context.close()
        if state_root is None and state_dir.exists():
            shutil.rmtree(state_dir, ignore_errors=True)


def _cannot_run_hard(seed: int) -> tuple[DriveResult, CrashPlan, Reviewer]:
    rng = random.Random(seed)
    result = DriveResult(
        harness_error=(
            "hard crash mode runs the agent in a child process built from its factory path, "
            "but this adapter instance was not built by the runner's AdapterCache; run the "
            "agent from chaos_agent / --chaos-agent, or pass a HardKillAdapter"
        )
    )
    return result, CrashPlan([], rng), Reviewer([], [], rng)


def _no_boundary(point: str, step: str) -> None:
    """Placeholder hook; the driver installs the crash plan's."""


def _ordered_firings(
    *groups: list[FaultFiring] | tuple[FaultFiring, ...],
) -> tuple[FaultFiring, ...]:
    out: list[FaultFiring] = []
    for g in groups:
        out.extend(g)
    return tuple(out)


def probe(
    scenario: Scenario,
    adapter: AgentAdapter,
    *,
    seed: int,
    wall_s: float,
    config: Mapping[str, Any] | None = None,
) -> Probe:
    """Run the scenario as written (its own faults included, as every cell has them) to learn
    where more faults can fire and what a run without a crash requests."""
    base = Variant(scenario, "probe", scenario.build_faults(), Expectation())
    record = run_variant(base, adapter, seed=seed, wall_s=wall_s, config=config)
    ledgers = {n for n, s in scenario.tools.services.items() if s.ledger is not None}
    return Probe(
        tool_calls=record.tool_calls(),
        model_requests=record.model_calls(),
        approval_rounds=len({d.approval_id for d in record.deliveries}),
        boundaries=list(record.boundaries),
        ledger_calls=Counter({t: n for t, n in record.tool_calls().items() if t in ledgers}),
        record=record,
    )
