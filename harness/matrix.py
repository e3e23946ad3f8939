"""Expansion of one scenario into variants: the base run, fault cells and crash cells.

Each cell's expectation is derived from its fault's class: a transient fault must be recovered
with the fault-free run's terminal state and effects; a permanent one must end failed with the
fault's category (or the state the fault class or a scenario override declares). Cells are aimed
only at points a fault-free probe run actually reached, so every cell's fault can fire.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from faults.base import Fault, Schedule, Surface, registry
from faults.surfaces import CrashFault, CrashPoint
from harness.checks import Expectation
from harness.runner import Probe, Variant
from harness.scenario import Expect, Scenario, import_catalogue


def gated_tools(scenario: Scenario) -> frozenset[str]:
    """Tools whose effects need an approval first (declared ``gated: true`` in the scenario)."""
    return frozenset(n for n, s in scenario.tools.services.items() if getattr(s, "gated", False))


def expectation(
    scenario: Scenario, expect: Expect, origin: str, *, budget: bool = True
) -> Expectation:
    """A scenario ``Expect`` as the checks' ``Expectation``."""
    return Expectation(
        state=expect.state,
        category=expect.category,
        check_category=True,
        effects=dict(expect.effects) if expect.effects is not None else None,
        approvals=expect.approvals,
        calls_made=tuple(expect.calls_made),
        calls_not_made=tuple(expect.calls_not_made),
        max_model_calls=expect.budget.model_calls if budget else None,
        max_tool_calls=expect.budget.tool_calls if budget else None,
        gated_tools=gated_tools(scenario),
        origin=origin,
    )


def base_variant(scenario: Scenario) -> Variant:
    """The scenario as written, with its own faults."""
    return Variant(
        scenario,
        "base",
        scenario.build_faults(),
        expectation(scenario, scenario.expect, "the scenario's expect"),
    )


def derive(scenario: Scenario, fault: Fault, label: str) -> Expectation:
    """The expectation of a fault cell, from the fault's class unless the scenario overrides it."""
    cell = label.split("#", 1)[0]
    overrides = scenario.matrix.overrides if scenario.matrix is not None else {}
    for name in (cell, fault.key):
        if name in overrides:
            merged = scenario.expect.merged(overrides[name])
            return expectation(scenario, merged, f"matrix override {name!r}", budget=False)
    gated = gated_tools(scenario)
    state = type(fault).expected_state
    if state is not None:
        return Expectation(
            state=state,
            category=None,
            check_category=True,
            gated_tools=gated,
            effects=dict.fromkeys(gated, 0),
            origin=f"{fault.key} is expected to end {state!r}",
        )
    if fault.transient:
        return expectation(
            scenario,
            scenario.expect,
            f"transient {fault.key}: same as the fault-free run",
            budget=False,
        )
    return Expectation(
        state="failed",
        category=None if fault.category is None else fault.category.value,
        check_category=True,
        gated_tools=gated,
        origin=f"permanent {fault.key}: failed with its category",
    )


def _make(cls: type[Fault], target: str | None, at: Schedule) -> Fault:
    return cls(target=target, at=at)


def fault_cells(scenario: Scenario, probe: Probe) -> Iterator[Variant]:
    """One variant per (matrix fault x eligible target x call index)."""
    matrix = scenario.matrix
    if matrix is None:
        return
    import_catalogue()
    reg = registry()
    own = scenario.build_faults()
    for key in matrix.fault_keys():
        cls = reg[key]
        if cls.surface is Surface.CRASH:
            continue  # crash cells come from crash_matrix
        for target, n in _points(scenario, cls, probe, matrix.targets, matrix.calls):
            fault = _make(cls, target, Schedule(nth=n))
            if not fault.eligible(n):
                continue
            label = fault.label()
            yield Variant(scenario, label, (*own, fault), derive(scenario, fault, label), "fault")


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
        scenario, scenario.expect, "crash and resume: same as the fault-free run", budget=False
    )
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


def input_cells(scenario: Scenario) -> Iterator[Variant]:
    """One variant per edge-case input family (each runs many generated payloads)."""
    spec = scenario.input_matrix
    if spec is None:
        return
    from faults.inputs import INPUT_STRATEGIES

    families = spec.families or tuple(INPUT_STRATEGIES)
    base = Expectation(gated_tools=gated_tools(scenario), origin="edge-case input")
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


def expand(scenario: Scenario, probe: Probe | None) -> list[Variant]:
    """Every variant of a scenario: base, fault cells, crash cells, then input cells."""
    variants = [base_variant(scenario)]
    if probe is not None:
        variants.extend(fault_cells(scenario, probe))
        variants.extend(crash_cells(scenario, probe))
    variants.extend(input_cells(scenario))
    return variants
