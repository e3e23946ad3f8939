"""Expansion of one scenario into variants: the base run, fault cells and crash cells.

Each cell's expectation is derived from its fault's class: a transient fault must be recovered
with the fault-free run's terminal state and effects; a permanent one must end failed with the
fault's category (or the state the fault class or a scenario override declares). Cells are aimed
only at points a fault-free probe run actually reached, so every cell's fault can fire.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

from pydantic import ValidationError

from faults.base import OUTCOME_STATES, Fault, Outcome, Schedule, Surface, registry
from faults.surfaces import CrashFault, CrashMode, CrashPoint
from harness.injection import injection_cells
from harness.record import Baseline
from harness.runner import Probe, Variant
from harness.scenario.spec import (
    Expect,
    OutcomeRule,
    Scenario,
    effect_bodies,
    effect_counts,
    import_catalogue,
)
from harness.verdict.checks import Acceptance, Expectation


def gated_tools(scenario: Scenario) -> frozenset[str]:
    """Tools whose effects need an approval first (declared ``gated: true`` in the scenario)."""
    return frozenset(n for n, s in scenario.tools.services.items() if getattr(s, "gated", False))


def rules(scenario: Scenario) -> Expectation:
    """What every run of the scenario keeps, whatever its cell: gated tools and how approvals
    map onto bodies, varying body fields, attempts per request, allowed subprocesses."""
    services = scenario.tools.services
    matrix = scenario.matrix
    return Expectation(
        gated_tools=gated_tools(scenario),
        vary={n: frozenset(s.vary) for n, s in services.items() if s.vary},
        approval_map={n: s.approval_fields() for n, s in services.items() if s.approval_map},
        allowed_after_failure=frozenset(matrix.allow_after_failure if matrix else ()),
        max_attempts=scenario.expect.budget.attempts,
        allow_subprocess=scenario.allow_subprocess,
        summary_max_chars=scenario.approval_summary.max_chars,
        summary_raw_run=scenario.approval_summary.raw_run,
        input_texts=input_texts(scenario.input),
    )


def input_texts(payload: object) -> tuple[str, ...]:
    """The ticket's free-text values (every string in the input, nested ones too)."""
    if isinstance(payload, str):
        return (payload,)
    if isinstance(payload, dict):
        return tuple(t for v in payload.values() for t in input_texts(v))
    if isinstance(payload, list | tuple):
        return tuple(t for v in payload for t in input_texts(v))
    return ()


def expectation(
    scenario: Scenario,
    expect: Expect,
    origin: str,
    *,
    budget: bool = True,
    baseline: Baseline | None = None,
) -> Expectation:
    """A scenario ``Expect`` as the checks' ``Expectation``."""
    return dataclasses.replace(
        rules(scenario),
        state=expect.state,
        category=expect.category,
        check_category=True,
        effects=effect_counts(expect.effects),
        bodies=effect_bodies(expect.effects) or None,
        approvals=expect.approvals,
        calls_made=tuple(expect.calls_made),
        calls_not_made=tuple(expect.calls_not_made),
        max_model_calls=expect.budget.model_calls if budget else None,
        max_tool_calls=expect.budget.tool_calls if budget else None,
        origin=origin,
        baseline=baseline,
    )


def base_variant(scenario: Scenario) -> Variant:
    """The scenario as written, with its own faults."""
    return Variant(
        scenario,
        "base",
        scenario.build_faults(),
        expectation(scenario, scenario.expect, "the scenario's expect"),
    )


class OutcomeConfigError(ValueError):
    """``[tool.shakeout.outcomes]`` in pyproject.toml is malformed; the message says where."""


Tuning = Mapping[str, OutcomeRule]
"""Outcome rules by fault key or cell label (``key@target``), e.g. from pyproject.toml."""


def project_outcomes(pyproject: Path | None) -> dict[str, OutcomeRule]:
    """The ``[tool.shakeout.outcomes]`` table of a pyproject.toml: per fault key (or
    ``key@target``), ``accept = [...]`` and ``reason = "..."``.

    Raises:
        OutcomeConfigError: the table, a key or a rule is malformed.
    """
    if pyproject is None or not pyproject.is_file():
        return {}
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise OutcomeConfigError(f"{pyproject}: cannot be read as TOML: {exc}") from None
    table = data.get("tool", {}).get("shakeout", {}).get("outcomes", {})
    where = f"{pyproject}: [tool.shakeout.outcomes]"
    if not isinstance(table, dict):
        raise OutcomeConfigError(f"{where} must be a table of fault keys")
    import_catalogue()
    known = registry()
    out: dict[str, OutcomeRule] = {}
    for label, raw in table.items():
        key = label.partition("@")[0]
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise OutcomeConfigError(
                f"{where}.{label}: unknown fault key {key!r}{hint}; `shakeout faults` lists them"
            )
        try:
            out[label] = OutcomeRule.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'rule'}: {e['msg']}" for e in exc.errors()
            )
            raise OutcomeConfigError(
                f'{where}.{label}: {problems}; write e.g. accept = ["recover", "fail"] '
                'and reason = "why this agent may end so" (outcomes: '
                f"{', '.join(o.value for o in Outcome)})"
            ) from None
    return out


def derive(
    scenario: Scenario,
    fault: Fault,
    label: str,
    baseline: Baseline | None = None,
    tuning: Tuning | None = None,
) -> Expectation:
    """The expectation of a fault cell's first accepted outcome (see :func:`accepted`)."""
    return accepted(scenario, fault, label, baseline, tuning)[0]


def accepted(
    scenario: Scenario,
    fault: Fault,
    label: str,
    baseline: Baseline | None = None,
    tuning: Tuning | None = None,
) -> tuple[Expectation, Acceptance | None]:
    """The expectation of a fault cell and the outcomes it accepts.

    ``matrix.overrides`` wins (an explicit expectation, no alternatives); then the scenario's
    ``matrix.outcomes``, then ``tuning`` (``[tool.shakeout.outcomes]``), each looked up by the
    full label, the label without its call index, and the fault key; else the fault class's
    own outcomes. A transient fault (one that does not outlast the agent's attempts) accepts
    ``recover``: it must end like the fault-free run, same state, and with ``baseline`` the
    same effects compared by body; one that outlasts them accepts ``fail``.
    """
    cell = label.split("#", 1)[0]
    names = (label, cell, fault.key)
    overrides = scenario.matrix.overrides if scenario.matrix is not None else {}
    for name in names[1:]:
        if name in overrides:
            merged = scenario.expect.merged(overrides[name])
            return expectation(scenario, merged, f"matrix override {name!r}", budget=False), None
    declared = type(fault).outcomes()
    if fault.transient and _outlasts(scenario, fault):
        declared = (Outcome.FAIL,)
    rule: OutcomeRule | None = None
    source = "fault"
    for found, where in (
        (scenario.matrix.outcomes if scenario.matrix is not None else {}, "scenario"),
        (tuning or {}, "pyproject.toml"),
    ):
        rule = next((found[n] for n in names if n in found), None)
        if rule is not None:
            source = where
            break
    outcomes = rule.accept if rule is not None else declared
    why = None if rule is None else f"accepted by the {source}: {rule.reason}"
    expects = [(o, outcome_expectation(scenario, fault, o, baseline, why)) for o in outcomes]
    return expects[0][1], Acceptance(
        outcomes=tuple(outcomes),
        alternatives=tuple(expects[1:]),
        declared=declared,
        reason=None if rule is None else rule.reason,
        source=source,
    )


def outcome_expectation(
    scenario: Scenario,
    fault: Fault,
    outcome: Outcome,
    baseline: Baseline | None = None,
    why: str | None = None,
) -> Expectation:
    """What a fault cell must show to end in ``outcome`` (``why``: a rule's reason)."""
    base = rules(scenario)
    gated = gated_tools(scenario)
    if outcome is Outcome.RECOVER:
        origin = f"transient {fault.key}: same as the fault-free run"
        if why is not None or not fault.transient:
            origin = f"{fault.key} {outcome.value}: same as the fault-free run ({why})"
        return expectation(scenario, scenario.expect, origin, budget=False, baseline=baseline)
    state = OUTCOME_STATES[outcome]
    if outcome is Outcome.FAIL:
        kind = "permanent" if not fault.transient else f"{fault.times} failed attempts in a row of"
        origin = f"{kind} {fault.key}: failed with its category"
        if why is not None:
            origin = f"{fault.key} {outcome.value}: failed with its category ({why})"
        return dataclasses.replace(
            base,
            state=state,
            category=None if fault.category is None else fault.category.value,
            check_category=True,
            origin=origin,
        )
    origin = f"{fault.key} is expected to end {state!r}"
    if why is not None:
        origin = f"{fault.key} {outcome.value}: ends {state!r} ({why})"
    if outcome in (Outcome.REJECT, Outcome.EXPIRE):
        return dataclasses.replace(
            base, state=state, check_category=True, effects=dict.fromkeys(gated, 0), origin=origin
        )
    return dataclasses.replace(
        base,
        state=state,
        check_category=True,
        origin=origin,
        recovery_required=outcome is not Outcome.COMPLETE,
    )


def _outlasts(scenario: Scenario, fault: Fault) -> bool:
    """Whether a transient fault fails as many attempts as the scenario's budget allows."""
    attempts = scenario.expect.budget.attempts
    return attempts is not None and fault.times >= attempts and fault.surface is Surface.TOOL


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
