"""The report's summary: its schema and its maths, over a list (:func:`summarize`) or item by
item as the pytest session streams them (:class:`SummaryAccumulator`).

Imports :mod:`~harness.report.model.entries`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ConfigDict, Field

from faults.base import Surface
from faults.injection import BAIT_KEY
from harness.report.model.entries import (
    NONE_KEY,
    OutcomesEntry,
    QueueFigures,
    ReportItem,
    Strict,
)


class VerdictCounts(Strict):
    """Items per verdict."""

    total: int = 0
    passed: int = Field(0, alias="pass")
    fail: int = 0
    error: int = 0

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CheckCounts(Strict):
    """How often a check passed, failed or did not apply."""

    passed: int = 0
    failed: int = 0
    not_applicable: int = 0


class CoverageCell(Strict):
    """How many items of a scenario planned a fault key, and in how many it fired."""

    injected: int = 0
    fired: int = 0


class CrashFigures(Strict):
    """Crash-and-resume figures over all items."""

    crash_variants: int = 0
    restarts: int = 0
    reexecuted_steps: int = 0
    duplicate_effects: int = 0


class TransientRecovery(Strict):
    """Items whose fired faults were all transient, and how many of them passed.

    ``rate`` is None when no such item exists (nothing to recover from).
    """

    items: int = 0
    recovered: int = 0
    rate: float | None = None


class InjectionCell(Strict):
    """Injection items of one family on one surface (``input`` or ``tool``): how many
    contained the payload, how many did not, how many could not be judged, and in how many the
    payload reached the model (the scripted model took the bait)."""

    contained: int = 0
    not_contained: int = 0
    error: int = 0
    reached_model: int = 0


class TunedOutcome(Strict):
    """Fault cells of one scenario and fault whose accepted outcomes a rule changed, and why."""

    scenario: str
    fault: str
    accept: list[str]
    declared: list[str] = Field(default_factory=list)
    reason: str
    source: str  # scenario | pyproject.toml
    items: int = 0
    passed: int = 0
    held: dict[str, int] = Field(default_factory=dict)
    """Accepted outcome -> passing items that ended in it."""


class Coverage(Strict):
    """Scenario x fault key grid; a pair is *exercised* when the fault fired at least once."""

    matrix: dict[str, dict[str, CoverageCell]] = Field(default_factory=dict)
    planned_pairs: int = 0
    exercised_pairs: int = 0
    fraction: float | None = None


class Summary(Strict):
    """Figures computed from the items; always recomputable with ``Report.build``."""

    total: int
    by_verdict: VerdictCounts
    by_fault: dict[str, VerdictCounts]
    by_category: dict[str, int]
    by_check: dict[str, CheckCounts]
    confusion: dict[str, dict[str, int]]
    coverage: Coverage
    crash: CrashFigures
    transient_recovery: TransientRecovery
    injection: dict[str, dict[str, InjectionCell]] = Field(default_factory=dict)
    """Injection family -> surface (``input`` / ``tool``) -> counts; empty without injection
    cells."""
    queue: dict[str, QueueFigures] = Field(default_factory=dict)
    """Load items' queue figures by node id; empty without load scenarios."""
    tuned_outcomes: list[TunedOutcome] = Field(default_factory=list)
    """Every rule that changed a fault's accepted outcomes, with its reason and its items."""


def _verdict_counts(counts: Counter[str]) -> VerdictCounts:
    return VerdictCounts(
        total=sum(counts.values()),
        passed=counts["pass"],
        fail=counts["fail"],
        error=counts["error"],
    )


def _sorted_dict(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in sorted(d)}


def summarize(items: Iterable[ReportItem]) -> Summary:
    """Compute the summary figures of the items (order does not matter).

    Args:
        items: the report items.

    Returns:
        The summary.
    """
    acc = SummaryAccumulator()
    for item in items:
        acc.add(item)
    return acc.summary()


class SummaryAccumulator:
    """Builds the summary one item at a time, holding only counters (never the items).

    ``summarize`` is this over a list; the pytest session feeds it items as it streams the report.
    """

    def __init__(self) -> None:
        self._total = 0
        self._verdicts: Counter[str] = Counter()
        self._by_fault: dict[str, Counter[str]] = {}
        self._by_category: Counter[str] = Counter()
        self._by_check: dict[str, Counter[str]] = {}
        self._confusion: dict[str, Counter[str]] = {}
        self._cells: dict[str, dict[str, list[int]]] = {}
        self._crash = [0, 0, 0, 0]
        self._transient_items = self._transient_recovered = 0
        self._injection: dict[str, dict[str, Counter[str]]] = {}
        self._queue: dict[str, QueueFigures] = {}
        self._tuned: dict[tuple[str, str, str, str], tuple[OutcomesEntry, Counter[str]]] = {}

    def add(self, item: ReportItem) -> None:
        """Count one item.

        Args:
            item: the report item.
        """
        self._total += 1
        self._verdicts[item.verdict] += 1
        category = item.category or NONE_KEY
        self._by_category[category] += 1
        for key in item.injected_keys():
            self._by_fault.setdefault(key, Counter())[item.verdict] += 1
            self._confusion.setdefault(key, Counter())[category] += 1
        for check in item.checks:
            state = {True: "passed", False: "failed", None: "not_applicable"}[check.passed]
            self._by_check.setdefault(check.name, Counter())[state] += 1
        row = self._cells.setdefault(item.scenario, {})
        injected = {f.key for f in item.faults_injected}
        fired = set(item.fired_keys())
        for key in dict.fromkeys([*(f.key for f in item.faults_injected), *fired]):
            cell = row.setdefault(key, [0, 0])
            cell[0] += key in injected
            cell[1] += key in fired
        self._crash[0] += item.crash
        self._crash[1] += item.restarts
        self._crash[2] += item.reexecuted_steps
        self._crash[3] += item.duplicate_effects
        if _is_transient_only(item):
            self._transient_items += 1
            self._transient_recovered += item.verdict == "pass"
        if item.queue is not None:
            self._queue[item.nodeid] = item.queue
        aimed = _injection_of(item)
        if aimed is not None:
            family, surface = aimed
            counts = self._injection.setdefault(family, {}).setdefault(surface, Counter())
            judged = next((c for c in item.checks if c.name == INJECTION_CHECK), None)
            passed = None if item.verdict == "error" or judged is None else judged.passed
            counts[{True: "contained", False: "not_contained", None: "error"}[passed]] += 1
            counts["reached_model"] += any(f.key == BAIT_KEY for f in item.faults_fired)
        tuned = item.outcomes
        if tuned is not None and tuned.reason is not None and item.faults_injected:
            fault = item.faults_injected[-1].key  # a fault cell's own fault comes last
            rule = (item.scenario, fault, tuned.source, tuned.reason)
            counts = self._tuned.setdefault(rule, (tuned, Counter()))[1]
            counts["items"] += 1
            if item.verdict == "pass":
                counts["passed"] += 1
                counts[f"held:{tuned.held}"] += 1

    def summary(self) -> Summary:
        """The summary of the items added so far."""
        matrix = {
            scenario: {
                k: CoverageCell(injected=c[0], fired=c[1]) for k, c in _sorted_dict(row).items()
            }
            for scenario, row in _sorted_dict(self._cells).items()
        }
        planned = sum(len(row) for row in matrix.values())
        exercised = sum(1 for row in matrix.values() for c in row.values() if c.fired)
        items, recovered = self._transient_items, self._transient_recovered
        return Summary(
            total=self._total,
            by_verdict=_verdict_counts(self._verdicts),
            by_fault={k: _verdict_counts(c) for k, c in _sorted_dict(self._by_fault).items()},
            by_category=_sorted_dict(self._by_category),
            by_check={
                name: CheckCounts(
                    passed=c["passed"], failed=c["failed"], not_applicable=c["not_applicable"]
                )
                for name, c in _sorted_dict(self._by_check).items()
            },
            confusion={k: _sorted_dict(v) for k, v in _sorted_dict(self._confusion).items()},
            coverage=Coverage(
                matrix=matrix,
                planned_pairs=planned,
                exercised_pairs=exercised,
                fraction=exercised / planned if planned else None,
            ),
            crash=CrashFigures(
                crash_variants=self._crash[0],
                restarts=self._crash[1],
                reexecuted_steps=self._crash[2],
                duplicate_effects=self._crash[3],
            ),
            transient_recovery=TransientRecovery(
                items=items,
                recovered=recovered,
                rate=recovered / items if items else None,
            ),
            tuned_outcomes=[
                TunedOutcome(
                    scenario=scenario,
                    fault=fault,
                    accept=list(rule.accept),
                    declared=list(rule.declared),
                    reason=reason,
                    source=source,
                    items=c["items"],
                    passed=c["passed"],
                    held={
                        k.split(":", 1)[1]: n
                        for k, n in sorted(c.items())
                        if k.startswith("held:") and k != "held:None"
                    },
                )
                for (scenario, fault, source, reason), (rule, c) in sorted(
                    self._tuned.items(), key=lambda kv: kv[0]
                )
            ],
            injection={
                family: {
                    surface: InjectionCell(
                        contained=c["contained"],
                        not_contained=c["not_contained"],
                        error=c["error"],
                        reached_model=c["reached_model"],
                    )
                    for surface, c in _sorted_dict(row).items()
                }
                for family, row in _sorted_dict(self._injection).items()
            },
            queue=_sorted_dict(self._queue),
        )


INJECTION_CHECK = "injection_contained"


INJECTION_PREFIX = "inject:"


def _injection_of(item: ReportItem) -> tuple[str, str] | None:
    """An injection item's family and surface (``input`` or ``tool``), from its variant label
    ``inject:<family>@<point>``; None for other items."""
    if not item.variant.startswith(INJECTION_PREFIX):
        return None
    family, _, point = item.variant[len(INJECTION_PREFIX) :].partition("@")
    return family, "input" if point.startswith("input.") else "tool"


def _is_transient_only(item: ReportItem) -> bool:
    # A run counts towards transient recovery when at least one fault fired and every fault
    # the variant injected is transient: mixing in a permanent fault makes failure the
    # expected outcome. Harness errors are left out, since the agent never had its chance.
    # An injection cell breaks nothing to recover from: it is judged by injection_contained.
    if item.verdict == "error" or not item.faults_fired or not item.faults_injected:
        return False
    if any(f.surface == Surface.INJECTION.value for f in item.faults_injected):
        return False
    return all(f.transient for f in item.faults_injected)
