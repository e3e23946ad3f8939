"""Expectations: the one module that says what a run must show and where that comes from.

The scenario file's side: ``expect`` (:class:`Expect`, with its :class:`Budget` and ``effects``),
a matrix cell's :class:`ExpectOverride` and an :class:`OutcomeRule` (``matrix.outcomes`` or
``[tool.shakeout.outcomes]``). The checks' side: :class:`Expectation`, what one run of one
variant must show, and :class:`Acceptance`, the outcomes a fault cell accepts. Between them, the
derivation: :func:`expectation` (a scenario's ``Expect`` as an ``Expectation``),
:func:`override_for` (the one lookup of a cell's override), :func:`accepted` and :func:`derive`
(a fault cell's expectation from its fault's class, the overrides and the outcome rules).

May import: ``base``, ``fault_specs`` and the run record (``harness.record``, for the fault-free
baseline); it reads a :class:`~harness.scenario.spec.Scenario` but never imports its module at
run time.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    model_validator,
)

from faults.base import OUTCOME_STATES, Fault, FaultOutcome, Surface, registry
from harness.record import Baseline
from harness.scenario.base import (
    MAX_CALLS,
    MAX_ENTRIES,
    MAX_NAME,
    MAX_WALL_S,
    CategoryName,
    RuleProblem,
    TerminalState,
    _fail,
    _Spec,
)
from harness.scenario.fault_specs import import_catalogue

if TYPE_CHECKING:
    from harness.scenario.spec import Scenario


# --------------------------------------------------------------------------- the file's side


class Budget(_Spec):
    """Upper bounds on one run: model and tool requests, and real seconds (``wall_s``)."""

    model_calls: NonNegativeInt | None = Field(None, le=MAX_CALLS)
    tool_calls: NonNegativeInt | None = Field(None, le=MAX_CALLS)
    wall_s: float | None = Field(None, gt=0, le=MAX_WALL_S)
    attempts: PositiveInt | None = Field(None, le=MAX_CALLS)
    """Attempts per identical request (the first try and its retries, SDK retries included);
    the matrix adds cells whose transient fault outlasts them."""


EffectsSpec = (
    Annotated[int, Field(ge=0, le=MAX_CALLS)]
    | Annotated[list[dict[str, Any]], Field(max_length=MAX_ENTRIES)]
)
"""Per tool: how many effects commit, or their bodies in commit order (each a subset match:
``issue_refund: [{amount: 49.99, order_id: O-1001}]`` means one effect with those fields)."""


def effect_counts(effects: Mapping[str, EffectsSpec] | None) -> dict[str, int] | None:
    """Effects per tool from an ``effects`` expectation."""
    if effects is None:
        return None
    return {t: v if isinstance(v, int) else len(v) for t, v in effects.items()}


def effect_bodies(effects: Mapping[str, EffectsSpec] | None) -> dict[str, tuple[Any, ...]]:
    """The expected bodies per tool, where an ``effects`` expectation states them."""
    return {t: tuple(v) for t, v in (effects or {}).items() if not isinstance(v, int)}


class ExpectOverride(_Spec):
    """Replaces some expectations for one matrix cell (the fields given replace the base)."""

    state: TerminalState | None = None
    category: CategoryName | None = None
    effects: dict[str, EffectsSpec] | None = None
    approvals: NonNegativeInt | None = None
    calls_made: tuple[str, ...] | None = None
    calls_not_made: tuple[str, ...] | None = None
    budget: Budget | None = None


class OutcomeRule(_Spec):
    """The outcomes a fault's cells accept instead of the fault's own, and why.

    ``accept`` lists outcomes (``recover``, ``fail``, ``escalate``, ``complete``, ``reject``,
    ``expire``; ``shakeout faults`` shows each fault's own): a cell passes when the run ends in
    any of them, all other checks holding. ``reason`` is required and shown in the report.
    """

    accept: tuple[FaultOutcome, ...] = Field(min_length=1, max_length=len(FaultOutcome))
    reason: str = Field(min_length=1, max_length=MAX_NAME * 5)

    @model_validator(mode="after")
    def _reason_says_something(self) -> OutcomeRule:
        if not self.reason.strip():
            raise _fail(
                RuleProblem(
                    ("reason",),
                    "the reason is blank",
                    "say why this agent may end this way, e.g. 'a free-form loop takes a text "
                    "answer as its final answer'",
                )
            )
        return self


class Expect(_Spec):
    """What must hold at the end of the run.

    ``effects`` counts committed ledger effects per tool exactly (tools not listed are not
    checked); ``approvals`` counts approval requests exactly; ``calls_made`` tools must be called
    at least once, ``calls_not_made`` never; ``budget`` bounds the run.
    """

    state: TerminalState
    category: CategoryName | None = None
    effects: dict[str, EffectsSpec] | None = None
    approvals: NonNegativeInt | None = None
    calls_made: tuple[str, ...] = ()
    calls_not_made: tuple[str, ...] = ()
    budget: Budget = Field(default_factory=Budget)

    @model_validator(mode="after")
    def _category_matches_state(self) -> Expect:
        problem = _category_problem(self.state, self.category)
        if problem is not None:
            raise _fail(problem)
        return self

    def merged(self, override: ExpectOverride) -> Expect:
        """This expectation with the override's fields replacing ours.

        Setting ``state`` without ``category`` clears the category unless the state is failed.
        """
        changes = {n: getattr(override, n) for n in override.model_fields_set}
        if "state" in changes and "category" not in changes and changes["state"] != "failed":
            changes["category"] = None
        return self.model_copy(update=changes)


def _category_problem(state: str, category: str | None) -> RuleProblem | None:
    if state == "failed" and category is None:
        return RuleProblem(
            ("category",),
            "a failed run must name its category",
            "add 'category: model', 'tool', 'logic' or 'input' next to 'state: failed'",
        )
    if state != "failed" and category is not None:
        return RuleProblem(
            ("category",),
            f"only a failed run has a category, but state is '{state}'",
            "remove 'category' or set 'state: failed'",
        )
    return None


# --------------------------------------------------------------------------- the checks' side


@dataclass(frozen=True)
class Expectation:
    """What a run of one variant must show. None fields are not checked."""

    state: str | None = None
    category: str | None = None
    check_category: bool = False
    effects: Mapping[str, int] | None = None
    approvals: int | None = None
    calls_made: tuple[str, ...] = ()
    calls_not_made: tuple[str, ...] = ()
    max_model_calls: int | None = None
    max_tool_calls: int | None = None
    gated_tools: frozenset[str] = field(default_factory=frozenset)
    origin: str = "scenario"  # where the expectation came from, for messages
    bodies: Mapping[str, tuple[Mapping[str, Any], ...]] | None = None
    """Per tool, the bodies its committed effects must show (each a subset match, in order)."""
    baseline: Baseline | None = None
    """The fault-free run: a cell that must end like it is compared effect by effect."""
    vary: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Per tool, body fields that legitimately differ between runs (ids, timestamps)."""
    approval_map: Mapping[str, Mapping[str, tuple[str, float]]] = field(default_factory=dict)
    """Per tool, approval argument -> (body field, factor) where the names or units differ."""
    allowed_after_failure: frozenset[str] = field(default_factory=frozenset)
    """Gated tools whose effects a run may still commit after a permanent failure."""
    max_attempts: int | None = None
    """Requests per identical request (first try and retries) the budget allows."""
    allow_subprocess: bool = False
    routes_proven: bool = False
    """The fault-free run of this cell's scenario made no unrouted request: one made here follows
    from how the agent handled the cell's fault (a FAIL), not from a missing route (an ERROR)."""
    summary_max_chars: int = 500
    """The longest approval summary allowed, in characters (the scenario's approval_summary)."""
    summary_raw_run: int = 40
    """Verbatim characters of ticket or tool text, outside a fenced quote, that count as raw."""
    input_texts: tuple[str, ...] = ()
    """The ticket's free-text values (evidence of what the customer wrote)."""
    recovery_required: bool = True
    """A transient fault's broken call must be answered for real before the run goes on (False
    for a cell that accepts ending ``completed`` without asking again)."""


@dataclass(frozen=True)
class Acceptance:
    """The outcomes a fault cell accepts: the fault's own, or a rule's with its reason.

    Attributes:
        outcomes: the accepted outcomes, the first the one the cell's expectation states.
        alternatives: the expectation of every other accepted outcome.
        declared: the fault class's own outcomes.
        reason: why a rule changed them (None: the fault's own).
        source: where the rule came from: ``fault``, ``scenario`` or ``pyproject.toml``.
    """

    outcomes: tuple[FaultOutcome, ...]
    alternatives: tuple[tuple[FaultOutcome, Expectation], ...] = ()
    declared: tuple[FaultOutcome, ...] = ()
    reason: str | None = None
    source: str = "fault"

    def describe(self) -> str:
        """One line for failure text, e.g. ``recover | complete (scenario: free-form loop)``."""
        head = " | ".join(o.value for o in self.outcomes)
        if self.reason is None:
            return f"{head} (the fault's own)"
        own = " | ".join(o.value for o in self.declared)
        return f"{head} (the fault's own: {own}; changed in the {self.source}: {self.reason})"


# --------------------------------------------------------------------------- derivation


def gated_tools(scenario: Scenario) -> frozenset[str]:
    """Tools whose effects need an approval first (declared ``gated: true`` in the scenario)."""
    return frozenset(n for n, s in scenario.tools.services.items() if getattr(s, "gated", False))


_RULES: list[tuple[Scenario, Expectation]] = []
"""The last scenario :func:`rules` derived for, and what it derived (one entry)."""


def rules(scenario: Scenario) -> Expectation:
    """What every run of the scenario keeps, whatever its cell: gated tools and how approvals
    map onto bodies, varying body fields, attempts per request, allowed subprocesses.

    One expectation per scenario: every variant's expectation is this one with its own fields
    replaced, so the sets and maps here are shared by all of them instead of copied per variant
    (a 10k-variant session kept about 0.6 KiB per item of them). The scenario is frozen, so the
    last one asked for is remembered by identity.
    """
    if _RULES and _RULES[0][0] is scenario:
        return _RULES[0][1]
    derived = _derive_rules(scenario)
    _RULES[:] = [(scenario, derived)]
    return derived


def _derive_rules(scenario: Scenario) -> Expectation:
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


class OutcomeConfigError(ValueError):
    """``[tool.shakeout.outcomes]`` in pyproject.toml is malformed; the message says where."""


Tuning = Mapping[str, OutcomeRule]
"""FaultOutcome rules by fault key or cell label (``key@target``), e.g. from pyproject.toml."""


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
                f"{', '.join(o.value for o in FaultOutcome)})"
            ) from None
    return out


def override_for(scenario: Scenario, *labels: str) -> tuple[Expect, str | None]:
    """The expectation of a matrix cell: the first of ``labels`` (e.g. the cell label, then the
    fault key) that ``matrix.overrides`` names, applied to the scenario's ``expect``, with that
    label; the scenario's own ``expect`` and None when none is overridden."""
    overrides = scenario.matrix.overrides if scenario.matrix is not None else {}
    for label in labels:
        if label in overrides:
            return scenario.expect.merged(overrides[label]), label
    return scenario.expect, None


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
    merged, name = override_for(scenario, cell, fault.key)
    if name is not None:
        return expectation(scenario, merged, f"matrix override {name!r}", budget=False), None
    declared = type(fault).outcomes()
    if fault.transient and outlasts(scenario, fault):
        declared = (FaultOutcome.FAIL,)
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
    outcome: FaultOutcome,
    baseline: Baseline | None = None,
    why: str | None = None,
) -> Expectation:
    """What a fault cell must show to end in ``outcome`` (``why``: a rule's reason)."""
    base = rules(scenario)
    gated = gated_tools(scenario)
    if outcome is FaultOutcome.RECOVER:
        origin = f"transient {fault.key}: same as the fault-free run"
        if why is not None or not fault.transient:
            origin = f"{fault.key} {outcome.value}: same as the fault-free run ({why})"
        return expectation(scenario, scenario.expect, origin, budget=False, baseline=baseline)
    state = OUTCOME_STATES[outcome]
    if outcome is FaultOutcome.FAIL:
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
    if outcome in (FaultOutcome.REJECT, FaultOutcome.EXPIRE):
        return dataclasses.replace(
            base, state=state, check_category=True, effects=dict.fromkeys(gated, 0), origin=origin
        )
    return dataclasses.replace(
        base,
        state=state,
        check_category=True,
        origin=origin,
        recovery_required=outcome is not FaultOutcome.COMPLETE,
    )


def outlasts(scenario: Scenario, fault: Fault) -> bool:
    """Whether a transient fault fails as many attempts as the scenario's budget allows."""
    attempts = scenario.expect.budget.attempts
    return attempts is not None and fault.times >= attempts and fault.surface is Surface.TOOL
