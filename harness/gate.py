"""The deployment gate: a policy applied to a fault-injection report, as an exit code.

Exit codes: 0 every rule holds, 1 at least one rule failed, 2 the report or the policy is
unusable (:class:`~harness.report_model.ReportError`, :class:`PolicyError`).
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from faults.base import Category
from harness.checks import known_check_names
from harness.report_model import Report, ReportError, ReportItem, load_report

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
MAX_NODEIDS_SHOWN = 10

ALLOWED_KEYS: tuple[str, ...] = (
    "max_failures",
    "max_errors",
    "category",
    "checks",
    "min_transient_recovery",
    "min_coverage",
)
CATEGORIES: tuple[str, ...] = tuple(c.value for c in Category)


class PolicyError(ValueError):
    """The gate policy is missing or malformed (unknown key, wrong type, out of range)."""


@dataclass(frozen=True)
class GatePolicy:
    """The rules of the gate; a rule left None is not applied.

    Attributes:
        max_failures: most items allowed with verdict ``fail``.
        max_errors: most items allowed with verdict ``error``.
        category: most items allowed to report each error category (e.g. ``{"logic": 0}``).
        checks: most failures allowed per check name (e.g. ``{"duplicate_effects": 0}``).
        min_transient_recovery: least share of transient-only runs that must pass (0..1).
        min_coverage: least exercised scenario x fault pairs: an int is a count, a float a
            fraction of the pairs planned (0..1).
        source: where the policy was read from, for messages.
    """

    max_failures: int | None = None
    max_errors: int | None = None
    category: Mapping[str, int] = field(default_factory=dict)
    checks: Mapping[str, int] = field(default_factory=dict)
    min_transient_recovery: float | None = None
    min_coverage: int | float | None = None
    source: str = "<policy>"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> GatePolicy:
        """Validate a policy table (the body of ``[tool.shakeout.gate]``).

        Args:
            data: the parsed TOML table.
            source: where it came from, named in error messages.

        Returns:
            The policy.

        Raises:
            PolicyError: an unknown key, a value of the wrong type or out of range.
        """
        allowed = ", ".join(ALLOWED_KEYS)
        for key in data:
            if key not in ALLOWED_KEYS:
                raise PolicyError(
                    f"{source}: unknown gate policy key {key!r}; allowed keys: {allowed}"
                )
        categories = _count_table(data.get("category", {}), "category", source)
        for name in categories:
            if name not in CATEGORIES:
                raise PolicyError(
                    f"{source}: unknown gate policy key 'category.{name}'; allowed categories: "
                    f"{', '.join(CATEGORIES)}"
                )
        recovery = data.get("min_transient_recovery")
        if recovery is not None and not (_is_number(recovery) and 0 <= recovery <= 1):
            raise PolicyError(
                f"{source}: min_transient_recovery must be a number from 0 to 1, "
                f"got {recovery!r}; write e.g. min_transient_recovery = 0.99"
            )
        coverage = data.get("min_coverage")
        if coverage is not None and not (
            (_is_int(coverage) and coverage >= 0)
            or (isinstance(coverage, float) and 0 <= coverage <= 1)
        ):
            raise PolicyError(
                f"{source}: min_coverage must be a count (an integer >= 0) or a fraction "
                f"(a float from 0.0 to 1.0), got {coverage!r}"
            )
        return cls(
            max_failures=_count(data.get("max_failures"), "max_failures", source),
            max_errors=_count(data.get("max_errors"), "max_errors", source),
            category=categories,
            checks=_count_table(data.get("checks", {}), "checks", source),
            min_transient_recovery=float(recovery) if recovery is not None else None,
            min_coverage=coverage,
            source=source,
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return _is_int(value) or isinstance(value, float)


def _count(value: object, name: str, source: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise PolicyError(f"{source}: {name} must be an integer >= 0, got {value!r}")
    return value


def _count_table(value: object, name: str, source: str) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise PolicyError(
            f"{source}: {name} must be a table of name = max count "
            f"(e.g. {name}.logic = 0), got {value!r}"
        )
    return {str(k): _count(v, f"{name}.{k}", source) or 0 for k, v in value.items()}


def load_policy(policy_path: str | Path | None, cwd: str | Path | None = None) -> GatePolicy:
    """Read the gate policy from a TOML file or from ``[tool.shakeout.gate]`` in pyproject.toml.

    A policy file may hold the rules at its top level, or be a pyproject.toml-shaped file with
    a ``[tool.shakeout.gate]`` table.

    Args:
        policy_path: a TOML file, or None to read ``pyproject.toml`` in ``cwd``.
        cwd: the directory whose pyproject.toml is read when ``policy_path`` is None.

    Returns:
        The policy.

    Raises:
        PolicyError: no policy found, the TOML does not parse, or a rule is malformed.
    """
    if policy_path is None:
        path = Path(cwd if cwd is not None else Path.cwd()) / "pyproject.toml"
        if not path.is_file():
            raise PolicyError(
                f"no gate policy: {path} does not exist; add a [tool.shakeout.gate] table to "
                "pyproject.toml or pass a policy TOML file"
            )
    else:
        path = Path(policy_path)
        if not path.is_file():
            raise PolicyError(f"gate policy file {path} does not exist; check the path")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"gate policy {path} is not valid TOML: {exc}") from None
    if policy_path is None or "tool" in data:
        table = data.get("tool", {}).get("shakeout", {}).get("gate")
        if table is None:
            raise PolicyError(
                f"no gate policy: {path} has no [tool.shakeout.gate] table; add one, e.g. "
                "max_failures = 0, or pass a policy TOML file"
            )
        if not isinstance(table, dict):
            raise PolicyError(f"{path}: tool.shakeout.gate must be a table, got {table!r}")
        return GatePolicy.from_mapping(table, f"{path} [tool.shakeout.gate]")
    return GatePolicy.from_mapping(data, str(path))


@dataclass(frozen=True)
class RuleResult:
    """One rule's outcome: what was measured against what was allowed, and the items behind it."""

    rule: str
    passed: bool
    detail: str
    nodeids: tuple[str, ...] = ()


@dataclass(frozen=True)
class GateResult:
    """Every rule's outcome for one report."""

    rules: tuple[RuleResult, ...]

    @property
    def passed(self) -> bool:
        """Whether every rule held."""
        return all(r.passed for r in self.rules)

    @property
    def failed(self) -> tuple[RuleResult, ...]:
        """The rules that did not hold."""
        return tuple(r for r in self.rules if not r.passed)


def _max_rule(
    rule: str, limit: int, items: list[ReportItem], pick: Callable[[ReportItem], bool]
) -> RuleResult:
    hits = [i.nodeid for i in items if pick(i)]
    return RuleResult(rule, len(hits) <= limit, f"{len(hits)} > {limit} allowed", tuple(hits))


def _has_category(name: str) -> Callable[[ReportItem], bool]:
    return lambda item: item.category == name


def _fails_check(name: str) -> Callable[[ReportItem], bool]:
    return lambda item: any(c.name == name and c.passed is False for c in item.checks)


def evaluate_gate(report: Report, policy: GatePolicy) -> GateResult:
    """Apply every rule of the policy to the report.

    Args:
        report: the loaded report.
        policy: the gate policy.

    Returns:
        The outcome of each configured rule, in a fixed order.

    Raises:
        PolicyError: the policy names a check that no item of a non-empty report carries
            (most likely a typo).
    """
    items = report.items
    rules: list[RuleResult] = []
    if policy.max_failures is not None:
        rules.append(
            _max_rule("max_failures", policy.max_failures, items, lambda i: i.verdict == "fail")
        )
    if policy.max_errors is not None:
        rules.append(
            _max_rule("max_errors", policy.max_errors, items, lambda i: i.verdict == "error")
        )
    for name, limit in sorted(policy.category.items()):
        rules.append(_max_rule(f"category.{name}", limit, items, _has_category(name)))
    # A check the report does not carry is fine when shakeout knows it (a subset of the items
    # may not exercise it: 0 failures); an unknown name is a typo in the policy.
    known_checks = sorted(set(report.summary.by_check) | known_check_names())
    for name, limit in sorted(policy.checks.items()):
        if items and name not in known_checks:
            raise PolicyError(
                f"{policy.source}: checks.{name} is not a shakeout check; known checks: "
                f"{', '.join(known_checks)}"
            )
        rules.append(_max_rule(f"checks.{name}", limit, items, _fails_check(name)))
    if policy.min_transient_recovery is not None:
        rules.append(_transient_rule(report, policy.min_transient_recovery))
    if policy.min_coverage is not None:
        rules.append(_coverage_rule(report, policy.min_coverage))
    return GateResult(tuple(rules))


def _transient_rule(report: Report, minimum: float) -> RuleResult:
    tr = report.summary.transient_recovery
    if tr.rate is None:
        return RuleResult(
            "min_transient_recovery", True, "no transient-only run fired a fault; not applicable"
        )
    unrecovered = tuple(
        i.nodeid
        for i in report.items
        if i.verdict == "fail"
        and i.faults_fired
        and i.faults_injected
        and all(f.transient for f in i.faults_injected)
    )
    return RuleResult(
        "min_transient_recovery",
        tr.rate >= minimum,
        f"{tr.rate:.4f} ({tr.recovered}/{tr.items}) < {minimum} required",
        unrecovered,
    )


def _coverage_rule(report: Report, minimum: int | float) -> RuleResult:
    cov = report.summary.coverage
    unexercised = tuple(
        f"{scenario} x {key}"
        for scenario, row in cov.matrix.items()
        for key, cell in row.items()
        if not cell.fired
    )
    if isinstance(minimum, float):
        fraction = cov.fraction if cov.fraction is not None else 0.0
        detail = f"{fraction:.4f} ({cov.exercised_pairs}/{cov.planned_pairs} pairs) < {minimum}"
        return RuleResult("min_coverage", fraction >= minimum, detail, unexercised)
    detail = f"{cov.exercised_pairs} exercised scenario x fault pairs < {minimum} required"
    return RuleResult("min_coverage", cov.exercised_pairs >= minimum, detail, unexercised)


def format_gate(result: GateResult, report_path: str, total_items: int) -> list[str]:
    """Lines describing each failed rule (with up to 10 nodeids each) and the verdict line.

    Args:
        result: the gate outcome.
        report_path: the report file, named in the verdict line.
        total_items: the number of items in the report.

    Returns:
        Lines to print, the verdict line last.
    """
    lines: list[str] = []
    for rule in result.failed:
        lines.append(f"FAILED {rule.rule}: {rule.detail}")
        lines.extend(f"    {n}" for n in rule.nodeids[:MAX_NODEIDS_SHOWN])
        if len(rule.nodeids) > MAX_NODEIDS_SHOWN:
            lines.append(f"    ... and {len(rule.nodeids) - MAX_NODEIDS_SHOWN} more")
    n = len(result.rules)
    if result.passed:
        lines.append(f"shakeout gate: PASS ({n} rules, {total_items} items, {report_path})")
    else:
        lines.append(
            f"shakeout gate: FAIL ({len(result.failed)} of {n} rules failed, "
            f"{total_items} items, {report_path})"
        )
    return lines


def gate_main(
    report_path: str, policy_path: str | None, *, out: TextIO | None = None, cwd: str | None = None
) -> int:
    """Apply the gate policy to a report and print the outcome; the ``shakeout gate`` command.

    Args:
        report_path: the JSON report.
        policy_path: a policy TOML file, or None for ``[tool.shakeout.gate]`` in
            ``pyproject.toml`` of the current directory.
        out: where to print (stdout by default).
        cwd: directory whose pyproject.toml is read when ``policy_path`` is None.

    Returns:
        0 when every rule holds, 1 when a rule failed, 2 when the report or policy is unusable.
    """
    stream = out if out is not None else sys.stdout
    try:
        policy = load_policy(policy_path, cwd)
        report = load_report(report_path)
        result = evaluate_gate(report, policy)
    except (ReportError, PolicyError) as exc:
        print(f"shakeout gate: ERROR {exc}", file=stream)
        return EXIT_ERROR
    for line in format_gate(result, report_path, len(report.items)):
        print(line, file=stream)
    return EXIT_PASS if result.passed else EXIT_FAIL
