"""Expansion of one scenario into variants: the base run, fault cells and crash cells.

Each cell's expectation is derived from its fault's class: a transient fault must be recovered
with the fault-free run's terminal state and effects; a permanent one must end failed with the
fault's category (or the state the fault class or a scenario override declares). Cells are aimed
only at points a fault-free probe run actually reached, so every cell's fault can fire. How a
cell's expectation is derived lives in ``expect``; this module aims the cells.

May import: ``expect``, ``fault_specs``, ``spec``, and outside the package the run's variant and
probe (``harness.run.runner``), the record and the injection cells.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator

from faults.base import Fault, Schedule, Surface, registry
from faults.surfaces import CrashFault, CrashMode, CrashPoint
from harness.record import Baseline
from harness.scenario.expect import Expectation, Tuning, accepted, expectation, rules
from harness.scenario.fault_specs import import_catalogue
from harness.scenario.injection import injection_cells
from harness.scenario.spec import Scenario
from harness.scenario.variant import Probe, Variant


def base_variant(scenario: Scenario) -> Variant:
    """The scenario as written, with its own faults."""
    return Variant(
        scenario,
        "base",
        scenario.build_faults(),
        expectation(scenario, scenario.expect, "the scenario's expect"),
    )


def _make(cls: type[Fault], target: str | None, at: Schedule, times: int = 1) -> Fault:
    if times == 1:  # the class's own default (a loop fault answers many requests by default)
        return cls(target=target, at=at)
    return cls(target=target, at=at, times=times)


def _routes_proven(probe: Probe) -> bool:
    return not probe.record.unrouted()


def baseline_of(scenario: Scenario, probe: Probe) -> Baseline:
    """The fault-free run's effects and approvals: the oracle of the scenario's cells."""
    return Baseline.of(probe.record)


def fault_cells(
    scenario: Scenario, probe: Probe, tuning: Tuning | None = None
) -> Iterator[Variant]:
    """One variant per (matrix fault x eligible target x call index), plus, where the scenario
    budgets attempts, a cell per transient tool fault that outlasts them, and each tool fault
    cell again per reaction in ``matrix.on_tool_error``."""
    matrix = scenario.matrix
    if matrix is None:
        return
    import_catalogue()
    reg = registry()
    own = scenario.build_faults()
    baseline = baseline_of(scenario, probe)
    attempts = scenario.expect.budget.attempts
    for key in matrix.fault_keys():
        cls = reg[key]
        if cls.surface is Surface.CRASH:
            continue  # crash cells come from crash_matrix
        exhaust = (
            matrix.exhaust
            and attempts is not None
            and cls.surface is Surface.TOOL
            and cls.transient
            and cls.needs_real_answer
            and cls.category is not None
        )
        for target, n in _points(scenario, cls, probe, matrix.targets, matrix.calls):
            for times in (1, attempts) if exhaust and attempts else (1,):
                fault = _make(cls, target, Schedule(nth=n), times)
                if not fault.eligible(n):
                    continue
                label = fault.label()
                expect, acceptance = accepted(scenario, fault, label, baseline, tuning)
                proven = _routes_proven(probe)
                expect = dataclasses.replace(expect, routes_proven=proven)
                if acceptance is not None and acceptance.alternatives:
                    acceptance = dataclasses.replace(
                        acceptance,
                        alternatives=tuple(
                            (o, dataclasses.replace(e, routes_proven=proven))
                            for o, e in acceptance.alternatives
                        ),
                    )
                yield Variant(
                    scenario, label, (*own, fault), expect, "fault", acceptance=acceptance
                )
                if cls.surface is not Surface.TOOL:
                    continue
                for reaction in matrix.on_tool_error:
                    # the same cell, the model reacting to the failed call if it is handed one
                    yield Variant(
                        scenario,
                        f"{label}+{reaction}",
                        (*own, fault),
                        expect,
                        "fault",
                        acceptance=acceptance,
                        on_tool_error=reaction,
                    )


def _points(
    scenario: Scenario,
    cls: type[Fault],
    probe: Probe,
    targets: tuple[str, ...] | None,
    calls: tuple[int, ...],
) -> Iterator[tuple[str | None, int]]:
    surface = cls.surface
    if surface is Surface.TOOL:
        for tool in scenario.tools.services:
            if targets is not None and tool not in targets:
                continue
            for n in calls:
                if n <= probe.tool_calls.get(tool, 0):
                    yield tool, n
    elif surface is Surface.MODEL:
        for n in calls:
            if n <= probe.model_requests:
                yield None, n
    elif surface is Surface.STREAM:
        if scenario.model.stream:
            for n in calls:
                if n <= probe.model_requests:
                    yield None, n
    elif surface is Surface.APPROVAL:
        for n in calls:
            if n <= probe.approval_rounds:
                yield None, n


def crash_classes() -> dict[CrashPoint, type[CrashFault]]:
    """The registered crash fault class of each crash point."""
    import_catalogue()
    out: dict[CrashPoint, type[CrashFault]] = {}
    for cls in registry().values():
        if issubclass(cls, CrashFault) and cls.__dict__.get("key"):
            out.setdefault(cls.point, cls)
    return out


def crash_cells(scenario: Scenario, probe: Probe) -> Iterator[Variant]:
    """One variant per crash point the fault-free run passed (each step boundary, each effect)."""
    spec = scenario.crash_matrix
    if spec is None:
        return
    classes = crash_classes()
    own = scenario.build_faults()
    base = expectation(
        scenario,
        scenario.expect,
        "crash and resume: same as the fault-free run",
        budget=False,
        baseline=baseline_of(scenario, probe),
    )
    base = dataclasses.replace(base, routes_proven=_routes_proven(probe))
    baseline = dict(probe.tool_calls)
    baseline["(model)"] = probe.model_requests
    for point in spec.points:
        cls = classes.get(point)
        if cls is None:
            continue
        targets: list[tuple[str | None, int, dict[str, int]]] = []
        if point is CrashPoint.AFTER_EFFECT:
            targets = [(tool, 1, {tool: 1}) for tool in probe.ledger_calls]
        elif point is CrashPoint.WHILE_PARKED:
            targets = [(None, n, {}) for n in range(1, probe.approval_rounds + 1)]
        else:
            seen: Counter[str] = Counter()
            for p, step in probe.boundaries:
                if p == point.value:
                    seen[step] += 1
            targets = [(step, 1, {}) for step in seen]
        if not targets:
            yield _missing_point(scenario, point, probe)
            continue
        for target, n, extra in targets:
            fault = cls(target=target, at=Schedule(nth=n), mode=spec.mode)
            yield Variant(
                scenario,
                fault.label(),
                (*own, fault),
                base,
                "crash",
                baseline_requests=baseline,
                allowed_extra=extra,
            )


def _missing_point(scenario: Scenario, point: CrashPoint, probe: Probe) -> Variant:
    """An ERROR cell for a crash point the scenario asks for but the fault-free run never
    reached: coverage counts the cells asked for, not the ones that happened to exist."""
    if point is CrashPoint.AFTER_EFFECT:
        why = "the fault-free run committed no effect on a ledger service"
    elif point is CrashPoint.WHILE_PARKED:
        why = "the fault-free run never parked for an approval"
    else:
        announced = sorted({p for p, _ in probe.boundaries})
        why = (
            f"the agent announced no {point.value!r} boundary (it called world.boundary with "
            f"{', '.join(announced) if announced else 'nothing'}); an adapter must call "
            f"world.boundary({point.value!r}, step) at each such point"
        )
    # the cell's crash fault is listed as injected, never fired: coverage counts it as asked for
    # and not exercised
    asked = crash_classes()[point](
        mode=scenario.crash_matrix.mode if scenario.crash_matrix else CrashMode.IN_PROCESS
    )
    return Variant(
        scenario,
        f"{point.value}:missing",
        (*scenario.build_faults(), asked),
        Expectation(origin="crash matrix"),
        "crash",
        error=(
            f"crash point {point.value!r} was asked for in crash_matrix but yields no cell: {why}; "
            "remove the point from crash_matrix.points if the agent has no such boundary"
        ),
    )


def input_cells(scenario: Scenario) -> Iterator[Variant]:
    """One variant per edge-case input family (each runs many generated payloads)."""
    spec = scenario.input_matrix
    if spec is None:
        return
    from faults.inputs import INPUT_STRATEGIES

    families = spec.families or tuple(INPUT_STRATEGIES)
    base = dataclasses.replace(rules(scenario), origin="edge-case input")
    for family in families:
        yield Variant(
            scenario,
            f"input:{family}",
            scenario.build_faults(),
            base,
            "input",
            input_family=family,
            must_reject=family in spec.must_reject,
            examples=spec.examples,
        )


def expand(
    scenario: Scenario, probe: Probe | None, seed: int = 0, tuning: Tuning | None = None
) -> list[Variant]:
    """Every variant of a scenario: base, fault cells, crash cells, injection cells, then input
    cells. ``seed`` (the run seed) picks each injection cell's payload; ``tuning`` holds the
    project's outcome rules (``[tool.shakeout.outcomes]``).

    When the fault-free probe run did not pass, its cells are still planned from what it
    reached, each an ERROR ("base run failed"): never fewer items than the scenario asks for.
    """
    if scenario.load is not None:  # one item drives every run of the load (harness/load/)
        return [dataclasses.replace(base_variant(scenario), kind="load")]
    variants = [base_variant(scenario)]
    if probe is not None:
        cells = [
            *fault_cells(scenario, probe, tuning),
            *crash_cells(scenario, probe),
            *injection_cells(
                scenario, probe, seed, rules=rules(scenario), baseline=baseline_of(scenario, probe)
            ),
        ]
        if probe.failure is not None:
            why = (
                f"base run failed ({probe.failure}), so this cell cannot be judged against it; "
                "fix the scenario's base run first"
            )
            cells = [dataclasses.replace(c, error=c.error or why) for c in cells]
        variants.extend(cells)
    variants.extend(input_cells(scenario))
    return variants
