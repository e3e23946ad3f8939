"""Exploration: Hypothesis searches fault schedules against the universal invariants and keeps
the minimal failing one (:mod:`harness.cli.explored` writes it out and runs the command).

Errors::

    ExploreError            the scenario cannot be explored (its fault-free run already fails,
                            a surface that cannot be searched, no file to copy, bad settings)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import hypothesis
from hypothesis import strategies as st
from hypothesis.errors import Flaky

from faults.base import Fault, Schedule, Surface, registry
from harness.adapter import AgentAdapter
from harness.record import RunRecord
from harness.run.runner import probe, run_variant
from harness.scenario.expect import Expectation, gated_tools
from harness.scenario.fault_specs import import_catalogue
from harness.scenario.spec import Scenario
from harness.scenario.variant import Probe, Variant
from harness.verdict.base import Check, Verdict
from harness.verdict.effects import ApprovedEffects, NoDuplicateEffects
from harness.verdict.terminal import (
    HarnessRan,
    SingleCategory,
    TerminalStateReached,
    TraceCovers,
    TraceRetention,
)

DEFAULT_SURFACES: tuple[Surface, ...] = (
    Surface.TOOL,
    Surface.MODEL,
    Surface.STREAM,
    Surface.APPROVAL,
)
"""The surfaces searched by default (crash points have their own matrix, ``crash_matrix``)."""

DEFAULT_WALL_S = 20.0
MAX_FAULTS = 4

INVARIANTS: tuple[Check, ...] = (
    TerminalStateReached(),
    SingleCategory(),
    ApprovedEffects(),
    NoDuplicateEffects(),
    TraceCovers(),
    TraceRetention(),
)
"""The universal invariants a schedule is judged by. Not the scenario's expectations, nor
``faults_fired`` / ``model_turns``: several faults in one run can mask or add to each other."""

# Model and stream faults both act on the model request sequence, so they share one target.
_GROUP = {Surface.STREAM: Surface.MODEL}


class ExploreError(Exception):
    """The scenario cannot be explored as asked."""


@dataclass(frozen=True, order=True)
class Point:
    """One scheduled fault: a registered fault key aimed at one call of one target.

    Attributes:
        key: the fault's registry key.
        target: the tool it breaks (tool faults), None for the other surfaces.
        nth: the 1-based call index it fires on.
    """

    key: str
    target: str | None
    nth: int

    def build(self) -> Fault:
        """A fresh fault instance with its default parameters."""
        return registry()[self.key](target=self.target, at=Schedule(nth=self.nth))

    def label(self) -> str:
        """The fault's id fragment, e.g. ``tool_http_503@get_order#1``."""
        return self.build().label()

    def entry(self) -> dict[str, Any]:
        """The scenario-file entry for this fault (``{key: {target: ..., at: {nth: n}}}``)."""
        params: dict[str, Any] = {}
        if self.target is not None:
            params["target"] = self.target
        params["at"] = {"nth": self.nth}
        return {self.key: params}


@dataclass(frozen=True)
class TransientRecovered(Check):
    """A schedule of transient faults, at most one per target, leaves the fault-free outcome.

    Several transient faults on one target can legitimately exhaust a bounded retry budget
    (that is the agent stopping as it should), so such schedules are not judged by this check
    (the scenario's own faults, in ``own``, count towards a target too);
    nor are faults whose expectation the scenario overrides in its matrix (``overridden``: cell
    labels ``key@target`` and keys), as the fixed matrix would not expect recovery either.
    """

    baseline_state: str
    baseline_effects: Mapping[str, int]
    explored: tuple[Fault, ...]
    overridden: frozenset[str] = frozenset()
    own: tuple[Fault, ...] = ()
    name: ClassVar[str] = "transient_recovered"

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        if not self.explored or not all(f.transient for f in self.explored):
            return self.skip("the schedule has a permanent fault")
        cells = {n for f in self.explored for n in (f.key, f.label().split("#", 1)[0])}
        if cells & self.overridden:
            return self.skip("the scenario overrides the expectation of a fault of the schedule")
        groups = [(_GROUP.get(f.surface, f.surface), f.target) for f in self.own + self.explored]
        if len(set(groups)) < len(groups):
            return self.skip("two transient faults hit one target (a retry budget may run out)")
        final = record.final
        if final is None or not final.state.terminal:
            return self.skip("no terminal state (see terminal_state)")
        labels = ", ".join(f.label() for f in self.explored)
        if final.state.value != self.baseline_state:
            detail = f" ({final.category}: {final.error})" if final.error else ""
            return self.fail(
                f"every fault of the schedule ({labels}) is transient, so the run must end like "
                f"the fault-free run, {self.baseline_state!r}; it ended "
                f"{final.state.value!r}{detail}"
            )
        got = dict(record.committed_effects())
        if got != dict(self.baseline_effects):
            return self.fail(
                f"every fault of the schedule ({labels}) is transient, so the committed effects "
                f"must equal the fault-free run's {_counts(self.baseline_effects)}; got "
                f"{_counts(got)}"
            )
        return self.ok(f"recovered to {self.baseline_state!r}")


def _counts(effects: Mapping[str, int]) -> str:
    return "{" + ", ".join(f"{t}: {n}" for t, n in sorted(effects.items()) if n) + "}"


@dataclass(frozen=True)
class Finding:
    """A failing schedule after shrinking: the faults, the checks that broke, the run."""

    schedule: tuple[Point, ...]
    failures: tuple[Verdict, ...]
    record: RunRecord

    def labels(self) -> tuple[str, ...]:
        """The schedule's fault labels, in order."""
        return tuple(p.label() for p in self.schedule)


@dataclass(frozen=True)
class ExploreResult:
    """What an exploration did and found.

    Attributes:
        scenario: the scenario explored.
        seed: Hypothesis's seed (the same seed explores the same schedules).
        run_seed: the seed every run used (the scenario's own, else ``seed``).
        points: every (fault, target, call) the search could draw from.
        runs: schedules run, shrinking included.
        rejected: schedules the harness could not run (not counted against the agent).
        finding: the minimal failing schedule, or None.
        baseline: the fault-free run.
    """

    scenario: Scenario
    seed: int
    run_seed: int
    points: tuple[Point, ...]
    runs: int
    rejected: int
    finding: Finding | None
    baseline: RunRecord = field(repr=False)

    @property
    def found(self) -> bool:
        """Whether a failing schedule was found."""
        return self.finding is not None

    def baseline_state(self) -> str:
        """The fault-free run's terminal state."""
        final = self.baseline.final
        return "no outcome" if final is None else final.state.value


class _Broken(Exception):
    def __init__(self, finding: Finding) -> None:
        super().__init__(", ".join(v.name for v in finding.failures))
        self.finding = finding


def eligible_points(
    scenario: Scenario, found: Probe, surfaces: Collection[Surface] = DEFAULT_SURFACES
) -> tuple[Point, ...]:
    """Every registered fault of ``surfaces`` at every call the fault-free run made.

    Args:
        scenario: the scenario (its services; whether its model streams).
        found: the fault-free probe run.
        surfaces: the surfaces to draw faults from.

    Returns:
        The points, sorted by surface order, key, target and call (shrinking moves towards the
        first ones).
    """
    import_catalogue()
    out: list[Point] = []
    order = {s: i for i, s in enumerate(DEFAULT_SURFACES)}
    classes = sorted(
        (cls for cls in registry().values() if cls.surface in surfaces),
        key=lambda c: (order.get(c.surface, len(order)), c.key),
    )
    for cls in classes:
        for target, n in _calls(scenario, cls.surface, found):
            point = Point(cls.key, target, n)
            if point.build().eligible(n):
                out.append(point)
    return tuple(out)


def _calls(scenario: Scenario, surface: Surface, found: Probe) -> list[tuple[str | None, int]]:
    if surface is Surface.TOOL:
        return [
            (tool, n)
            for tool in scenario.tools.services
            for n in range(1, found.tool_calls.get(tool, 0) + 1)
        ]
    if surface is Surface.MODEL or (surface is Surface.STREAM and scenario.model.stream):
        return [(None, n) for n in range(1, found.model_requests + 1)]
    if surface is Surface.APPROVAL:
        return [(None, n) for n in range(1, found.approval_rounds + 1)]
    return []


def schedules(points: Sequence[Point]) -> st.SearchStrategy[tuple[Point, ...]]:
    """Schedules of 1 to 4 distinct points (Hypothesis shrinks towards fewer, earlier ones)."""
    # Duplicates are dropped after drawing rather than refused while drawing (``unique=True``):
    # refused draws leave gaps in the choice sequence that keep the shrinker from deleting.
    return st.lists(st.sampled_from(points), min_size=1, max_size=MAX_FAULTS).map(
        lambda drawn: tuple(dict.fromkeys(drawn))
    )


def explore(
    scenario: Scenario,
    adapter: AgentAdapter,
    *,
    seed: int,
    examples: int,
    surfaces: Collection[Surface] = DEFAULT_SURFACES,
    config: Mapping[str, Any] | None = None,
    wall_s: float | None = None,
) -> ExploreResult:
    """Search fault schedules on a scenario; shrink the first failing one to a minimal one.

    Args:
        scenario: the scenario (its own faults stay in every run).
        adapter: the agent under test.
        seed: Hypothesis's seed; the same seed draws the same schedules. The runs use the
            scenario's own seed, else this one.
        examples: how many schedules to try before shrinking (``max_examples``).
        surfaces: the surfaces faults are drawn from (tool, model, stream, approval).
        config: agent config under the scenario's ``agent_config``.
        wall_s: real-time limit per run (default: the scenario's budget, else 20 s).

    Returns:
        What was run, and the minimal failing schedule if one was found.

    Raises:
        ExploreError: a surface that cannot be searched, or the fault-free run already fails.
    """
    unknown = [s.value for s in surfaces if s not in DEFAULT_SURFACES]
    if unknown:
        raise ExploreError(
            f"explore searches the tool, model, stream and approval surfaces, got "
            f"{', '.join(unknown)}; crash points have their own matrix ('crash_matrix') and "
            "inputs theirs ('input_matrix')"
        )
    if examples < 1:
        raise ExploreError(f"examples must be at least 1, got {examples}")
    wall = wall_s or scenario.expect.budget.wall_s or DEFAULT_WALL_S
    run_seed = scenario.effective_seed(seed)
    found = probe(scenario, adapter, seed=run_seed, wall_s=wall, config=config)
    expect = Expectation(gated_tools=gated_tools(scenario), origin="exploration")
    broken = [
        c for c in (HarnessRan(), *INVARIANTS) if c.evaluate(found.record, expect).passed is False
    ]
    if broken or found.record.final is None:
        reasons = "; ".join(f"{c.name}: {c.evaluate(found.record, expect).reason}" for c in broken)
        raise ExploreError(
            f"the scenario {scenario.name!r} fails before any fault is added "
            f"({reasons or 'no outcome'}); run it with pytest and fix that first"
        )
    points = eligible_points(scenario, found, surfaces)
    if not points:
        raise ExploreError(
            f"the fault-free run of {scenario.name!r} made no call a fault of "
            f"{', '.join(s.value for s in surfaces)} can act on"
        )
    search = _Search(scenario, adapter, expect, run_seed, wall, config, found.record)

    def one(schedule: tuple[Point, ...]) -> None:
        record, failures = search.run(schedule)
        if HarnessRan().evaluate(record, expect).passed is False:
            # The harness could not apply this schedule (e.g. a fault with nothing to act on):
            # not the agent's failure, so not a finding.
            search.rejected += 1
            hypothesis.reject()
        if failures:
            search.last = Finding(schedule, failures, record)
            raise _Broken(search.last)

    given = hypothesis.seed(seed)(
        hypothesis.settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=False,
            report_multiple_bugs=False,
            verbosity=hypothesis.Verbosity.quiet,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.generate, hypothesis.Phase.shrink],
        )(hypothesis.given(schedules(points))(one))
    )
    finding: Finding | None = None
    try:
        given()
    except _Broken as exc:
        finding = search.prune(exc.finding)
    except Flaky as exc:
        last = search.last
        what = ", ".join(last.labels()) if last is not None else "a schedule"
        raise ExploreError(
            f"the agent broke an invariant under {what} once but not when the same schedule "
            f"ran again with the same seed ({type(exc).__name__}); a nondeterministic agent "
            "cannot be reproduced from a scenario file, so nothing was written"
        ) from exc
    return ExploreResult(
        scenario=scenario,
        seed=seed,
        run_seed=run_seed,
        points=points,
        runs=search.runs,
        rejected=search.rejected,
        finding=finding,
        baseline=found.record,
    )


class _Search:
    """Runs and judges schedules against one fault-free baseline."""

    def __init__(
        self,
        scenario: Scenario,
        adapter: AgentAdapter,
        expect: Expectation,
        run_seed: int,
        wall: float,
        config: Mapping[str, Any] | None,
        baseline: RunRecord,
    ) -> None:
        self.scenario = scenario
        self.adapter = adapter
        self.expect = expect
        self.run_seed = run_seed
        self.wall = wall
        self.config = config
        assert baseline.final is not None
        self.state = baseline.final.state.value
        self.effects = dict(baseline.committed_effects())
        self.own = scenario.build_faults()
        matrix = scenario.matrix
        self.overridden = frozenset(matrix.overrides) if matrix is not None else frozenset()
        self.last: Finding | None = None
        self.runs = 0
        self.rejected = 0

    def run(self, schedule: tuple[Point, ...]) -> tuple[RunRecord, tuple[Verdict, ...]]:
        explored = tuple(p.build() for p in schedule)
        label = "explore:" + "+".join(f.label() for f in explored)
        variant = Variant(self.scenario, label, (*self.own, *explored), self.expect, "fault")
        record = run_variant(
            variant, self.adapter, seed=self.run_seed, wall_s=self.wall, config=self.config
        )
        self.runs += 1
        recovered = TransientRecovered(
            self.state, self.effects, explored, self.overridden, self.own
        )
        checks = (*INVARIANTS, recovered)
        verdicts = (c.evaluate(record, self.expect) for c in checks)
        return record, tuple(v for v in verdicts if v.passed is False)

    def prune(self, finding: Finding) -> Finding:
        """Drop faults that never fired, if the same checks still break without them.

        A written scenario whose fault never fires is an ERROR under pytest (``faults_fired``),
        so the reproduction keeps only faults that act.
        """
        fired = {(f.key, f.where) for f in finding.record.firings}
        kept = tuple(
            p
            for p in finding.schedule
            if any(k == p.key and (p.target is None or w == p.target) for k, w in fired)
        )
        if not kept or kept == finding.schedule:
            return finding
        record, failures = self.run(kept)
        if {v.name for v in failures} != {v.name for v in finding.failures}:
            return finding
        return Finding(kept, failures, record)
