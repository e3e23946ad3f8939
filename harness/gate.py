"""The deployment gate: a policy applied to a fault-injection report, as an exit code.

Exit codes: 0 every rule holds, 1 at least one rule failed, 2 the report or the policy is
unusable (:class:`~harness.report_model.ReportError`, :class:`PolicyError`) or the report is
refused (:class:`ReportRefused`: no items, fewer items than planned, an interrupted or a stale
session).

The gate trusts no verdict it can recompute: each item is judged again from its checks
(:func:`judge_item`), and a report proves it is complete against the plan it recorded at
collection (:func:`check_complete`).
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from faults.base import Category
from harness.report_model import (
    FileRefused,
    Plan,
    Report,
    ReportError,
    ReportItem,
    SessionInfo,
    Verdict,
    load_report,
    read_bounded,
    summarize,
)
from harness.verdict.suites import known_check_names

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
MAX_NODEIDS_SHOWN = 10
MAX_POLICY_BYTES = 1024 * 1024
"""The largest policy file (or pyproject.toml) read."""

ALLOWED_KEYS: tuple[str, ...] = (
    "max_failures",
    "max_errors",
    "category",
    "checks",
    "min_transient_recovery",
    "min_coverage",
    "allow_partial",
)
RULE_KEYS = tuple(k for k in ALLOWED_KEYS if k != "allow_partial")
CATEGORIES: tuple[str, ...] = tuple(c.value for c in Category)
DEFAULT_RULES: dict[str, int] = {"max_failures": 0, "max_errors": 0}
"""The rules that apply whenever a policy does not set them: no failures, no errors."""
_DEFAULT_TEXT = "max_failures = 0, max_errors = 0"


class PolicyError(ValueError):
    """The gate policy is malformed (unknown key, wrong type, out of range) or unreadable."""


class ReportRefused(ReportError):
    """A readable report the gate will not judge: no items, partial, interrupted or stale."""


@dataclass(frozen=True)
class GatePolicy:
    """The rules of the gate; a rule left None is not applied.

    ``max_failures`` and ``max_errors`` always apply: a policy that leaves one out gets 0
    (:data:`DEFAULT_RULES`), and ``notes`` says so.

    Attributes:
        max_failures: most items allowed with verdict ``fail``.
        max_errors: most items allowed with verdict ``error``.
        category: most items allowed to report each error category (e.g. ``{"logic": 0}``).
        checks: most failures allowed per check name (e.g. ``{"duplicate_effects": 0}``).
        min_transient_recovery: least share of transient-only runs that must pass (0..1).
        min_coverage: least exercised scenario x fault pairs: an int is a count, a float a
            fraction of the pairs planned (0..1).
        allow_partial: judge a report that holds fewer items than its session planned.
        source: where the policy was read from, for messages.
        notes: what the gate says about the policy itself (defaults applied), one line each.
    """

    max_failures: int | None = None
    max_errors: int | None = None
    category: Mapping[str, int] = field(default_factory=dict)
    checks: Mapping[str, int] = field(default_factory=dict)
    min_transient_recovery: float | None = None
    min_coverage: int | float | None = None
    allow_partial: bool = False
    source: str = "<policy>"
    notes: tuple[str, ...] = ()

    @classmethod
    def default(cls, why: str) -> GatePolicy:
        """The default policy (:data:`DEFAULT_RULES`), for when none is configured.

        Args:
            why: why no policy was found, said in the note.

        Returns:
            The policy.
        """
        return cls(
            max_failures=DEFAULT_RULES["max_failures"],
            max_errors=DEFAULT_RULES["max_errors"],
            source="the default policy",
            notes=(f"{why}; applying the default rules {_DEFAULT_TEXT}",),
        )

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
                f"got {_shown(recovery)}; write e.g. min_transient_recovery = 0.99"
            )
        coverage = data.get("min_coverage")
        if coverage is not None and not (
            (_is_int(coverage) and coverage >= 0)
            or (isinstance(coverage, float) and 0 <= coverage <= 1)
        ):
            raise PolicyError(
                f"{source}: min_coverage must be a count (an integer >= 0) or a fraction "
                f"(a float from 0.0 to 1.0), got {_shown(coverage)}"
            )
        partial = data.get("allow_partial", False)
        if not isinstance(partial, bool):
            raise PolicyError(
                f"{source}: allow_partial must be true or false, got {_shown(partial)}"
            )
        counts = {
            name: _count(data.get(name), name, source) for name in ("max_failures", "max_errors")
        }
        notes: list[str] = []
        if not any(key in data for key in RULE_KEYS):
            notes.append(f"{source} has no rules; applying the default rules {_DEFAULT_TEXT}")
        else:
            unset = [name for name, value in counts.items() if value is None]
            if unset:
                text = ", ".join(f"{name} = {DEFAULT_RULES[name]}" for name in unset)
                notes.append(f"{source} does not set {' or '.join(unset)}; applying {text}")
        for name, value in counts.items():
            if value is None:
                counts[name] = DEFAULT_RULES[name]
        return cls(
            max_failures=counts["max_failures"],
            max_errors=counts["max_errors"],
            category=categories,
            checks=_count_table(data.get("checks", {}), "checks", source),
            min_transient_recovery=float(recovery) if recovery is not None else None,
            min_coverage=coverage,
            allow_partial=partial,
            source=source,
            notes=tuple(notes),
        )


def _shown(value: object) -> str:
    # A value from a hostile file, shown on one short line.
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def _nodeid_text(nodeid: str) -> str:
    # A node id from the report, kept on one line (a hostile one is shown escaped).
    return nodeid if nodeid.isprintable() and len(nodeid) <= 500 else _shown(nodeid)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return _is_int(value) or isinstance(value, float)


def _count(value: object, name: str, source: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise PolicyError(f"{source}: {name} must be an integer >= 0, got {_shown(value)}")
    return value


def _count_table(value: object, name: str, source: str) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise PolicyError(
            f"{source}: {name} must be a table of name = max count "
            f"(e.g. {name}.logic = 0), got {_shown(value)}"
        )
    return {str(k): _count(v, f"{name}.{k}", source) or 0 for k, v in value.items()}


def load_policy(policy_path: str | Path | None, cwd: str | Path | None = None) -> GatePolicy:
    """Read the gate policy from a TOML file or from ``[tool.shakeout.gate]`` in pyproject.toml.

    A policy file may hold the rules at its top level, or be a pyproject.toml-shaped file with
    a ``[tool.shakeout.gate]`` table. Where no policy is configured (no pyproject.toml, no
    table, an empty file or table), the default rules apply and the policy's ``notes`` say so.

    Args:
        policy_path: a TOML file, or None to read ``pyproject.toml`` in ``cwd``.
        cwd: the directory whose pyproject.toml is read when ``policy_path`` is None.

    Returns:
        The policy.

    Raises:
        PolicyError: the policy file is missing, not a regular file, too large, does not parse,
            or a rule is malformed.
    """
    if policy_path is None:
        path = Path(cwd if cwd is not None else Path.cwd()) / "pyproject.toml"
        if not path.exists():
            return GatePolicy.default(f"no gate policy: {path} does not exist")
    else:
        path = Path(policy_path)
    try:
        raw = read_bounded(path, limit=MAX_POLICY_BYTES, what="gate policy")
    except FileRefused as exc:
        raise PolicyError(f"{exc}; check the path") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise PolicyError(f"gate policy {path} is not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"gate policy {path} is not valid TOML: {exc}") from None
    except ValueError as exc:
        # tomllib lets int()'s digit limit through as a bare ValueError.
        raise PolicyError(f"gate policy {path} holds a value TOML cannot read: {exc}") from None
    except RecursionError:
        # tomllib has no depth limit of its own; the file size bounds how deep it can go.
        raise PolicyError(
            f"gate policy {path} nests arrays or tables too deeply to read; a gate policy "
            "needs two levels at most"
        ) from None
    if policy_path is None or "tool" in data:
        table: dict[str, Any] = data
        dotted = []
        for key in ("tool", "shakeout", "gate"):
            dotted.append(key)
            value = table.get(key)
            if value is None:
                return GatePolicy.default(
                    f"no gate policy: {path} has no [tool.shakeout.gate] table"
                )
            if not isinstance(value, dict):
                raise PolicyError(
                    f"{path}: {'.'.join(dotted)} must be a table, got {_shown(value)}; the "
                    "gate policy is the [tool.shakeout.gate] table"
                )
            table = value
        return GatePolicy.from_mapping(table, f"{path} [tool.shakeout.gate]")
    return GatePolicy.from_mapping(data, str(path))


@dataclass(frozen=True)
class RuleResult:
    """One rule's outcome: what was measured against what was allowed, and the items behind it.

    A rule over an empty set (no transient-only run, nothing planned to cover, a check no item
    ran) is not applicable: it neither holds nor fails, and says so.
    """

    rule: str
    passed: bool
    detail: str
    nodeids: tuple[str, ...] = ()
    applicable: bool = True


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

    @property
    def not_applicable(self) -> tuple[RuleResult, ...]:
        """The rules over an empty set."""
        return tuple(r for r in self.rules if not r.applicable)


def _not_applicable(rule: str, why: str) -> RuleResult:
    return RuleResult(rule, True, f"not applicable: {why}", applicable=False)


_SEVERITY: dict[str, int] = {"pass": 0, "error": 1, "fail": 2}


def judge_item(item: ReportItem) -> Verdict:
    """The item's verdict from its own evidence, never milder than the verdict it records.

    FAIL when a check that is not a harness check failed; else ERROR when a harness check
    failed, when no check held (nothing backs a pass) or the item carries a harness error
    text; else PASS. FAIL is never hidden by ERROR. The recorded ``verdict`` can only make it
    worse (a test's own assertion after a passing run is recorded as ``fail`` with every check
    held).

    Args:
        item: a report item.

    Returns:
        ``pass``, ``fail`` or ``error``.
    """
    failed = [c for c in item.checks if c.passed is False]
    derived: Verdict
    if any(not c.harness for c in failed):
        derived = "fail"
    elif failed or item.error or not any(c.passed is True for c in item.checks):
        derived = "error"
    else:
        derived = "pass"
    return item.verdict if _SEVERITY[item.verdict] > _SEVERITY[derived] else derived


def rejudge(report: Report) -> tuple[Report, list[tuple[str, str, str]]]:
    """The report with every item judged again by :func:`judge_item` and the summary recomputed.

    Args:
        report: the loaded report.

    Returns:
        The rejudged report, and (nodeid, recorded, judged) for each item whose verdict changed.
    """
    changed: list[tuple[str, str, str]] = []
    items: list[ReportItem] = []
    for item in report.items:
        verdict = judge_item(item)
        if verdict != item.verdict:
            changed.append((item.nodeid, item.verdict, verdict))
            item = item.model_copy(update={"verdict": verdict})
        items.append(item)
    if not changed:
        return report, changed
    return report.model_copy(update={"items": items, "summary": summarize(items)}), changed


def check_complete(
    plan: Plan,
    session: SessionInfo | None,
    nodeids: Iterable[str],
    policy: GatePolicy,
    *,
    label: str,
    expect_session: str | None = None,
) -> list[str]:
    """Refuse a report that does not prove it is this run's whole result.

    Args:
        plan: the report's plan.
        session: the report's session identity.
        nodeids: every item's node id.
        policy: the gate policy (``allow_partial``).
        label: how to name the report in messages.
        expect_session: the session id the caller just ran, or None not to check.

    Returns:
        Notes to print (a partial report judged because the policy allows it).

    Raises:
        ReportRefused: the report is stale (another session), from an interrupted session,
            holds no items, or holds fewer items than planned without ``allow_partial``.
    """
    rerun = "rerun the suite"
    if expect_session is not None and (session is None or session.id != expect_session):
        found = "no session id" if session is None else f"session {_shown(session.id)}"
        raise ReportRefused(
            f"{label} was written by {found}, not by the session just run "
            f"({_shown(expect_session)}): it is stale, the run wrote no new report; see the "
            f"run's output above and {rerun}"
        )
    if session is not None and session.interrupted:
        raise ReportRefused(
            f"{label} is from a session that did not finish "
            f"({' '.join(session.interrupted.split())}); {rerun}"
        )
    seen = set(nodeids)
    if not seen:
        raise ReportRefused(
            f"{label} holds no items ({plan.items} planned): nothing was tested; check the "
            "run's output and its selection (paths, -k, -m, --chaos-shard)"
        )
    missing = sorted(set(plan.nodeids) - seen)
    if not missing:
        return []
    example = _nodeid_text(missing[0])
    what = (
        f"{label} holds {plan.items - len(missing)} of the {plan.items} items its session "
        f"planned ({len(missing)} missing, e.g. {example})"
    )
    if not policy.allow_partial:
        raise ReportRefused(
            f"{what}: the run did not finish; {rerun}, or set allow_partial = true in the gate "
            "policy to judge what ran"
        )
    return [f"{what}; judging what ran, as allow_partial = true"]


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
        if name not in report.summary.by_check:
            rules.append(_not_applicable(f"checks.{name}", "no item ran this check"))
            continue
        rules.append(_max_rule(f"checks.{name}", limit, items, _fails_check(name)))
    if policy.min_transient_recovery is not None:
        rules.append(_transient_rule(report, policy.min_transient_recovery))
    if policy.min_coverage is not None:
        rules.append(_coverage_rule(report, policy.min_coverage))
    return GateResult(tuple(rules))


def _transient_rule(report: Report, minimum: float) -> RuleResult:
    tr = report.summary.transient_recovery
    if tr.rate is None:
        return _not_applicable("min_transient_recovery", "no transient-only run fired a fault")
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
    if not cov.planned_pairs or cov.fraction is None:
        return _not_applicable("min_coverage", "no item planned a fault, nothing to cover")
    if isinstance(minimum, float):
        fraction = cov.fraction
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
        lines.extend(f"    {_nodeid_text(n)}" for n in rule.nodeids[:MAX_NODEIDS_SHOWN])
        if len(rule.nodeids) > MAX_NODEIDS_SHOWN:
            lines.append(f"    ... and {len(rule.nodeids) - MAX_NODEIDS_SHOWN} more")
    lines.extend(f"n/a {rule.rule}: {rule.detail}" for rule in result.not_applicable)
    n = len(result.rules) - len(result.not_applicable)
    na = f", {len(result.not_applicable)} not applicable" if result.not_applicable else ""
    if result.passed:
        lines.append(f"shakeout gate: PASS ({n} rules{na}, {total_items} items, {report_path})")
    else:
        lines.append(
            f"shakeout gate: FAIL ({len(result.failed)} of {n} rules failed{na}, "
            f"{total_items} items, {report_path})"
        )
    return lines


def rejudged_note(changed: list[tuple[str, str, str]]) -> str:
    """The note naming items whose recorded verdict the gate made worse (up to three).

    Args:
        changed: (nodeid, recorded, judged) per item, as :func:`rejudge` returns them.

    Returns:
        One line.
    """
    shown = ", ".join(f"{_nodeid_text(n)} ({was} -> {now})" for n, was, now in changed[:3])
    more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
    return (
        f"{len(changed)} item(s) record a milder verdict than their checks show; judged by the "
        f"checks: {shown}{more}"
    )


def gate_main(
    report_path: str,
    policy_path: str | None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    cwd: str | None = None,
    expect_session: str | None = None,
) -> int:
    """Apply the gate policy to a report and print the outcome; the ``shakeout gate`` command.

    Args:
        report_path: the JSON report.
        policy_path: a policy TOML file, or None for ``[tool.shakeout.gate]`` in
            ``pyproject.toml`` of the current directory (the default rules when there is none).
        out: where to print the outcome (stdout by default).
        err: where to print an error, one line (stderr by default).
        cwd: directory whose pyproject.toml is read when ``policy_path`` is None.
        expect_session: the session id the report must carry (``--session``), or None.

    Returns:
        0 when every rule holds, 1 when a rule failed, 2 when the report or policy is unusable
        or the report is refused.
    """
    stream = out if out is not None else sys.stdout
    errors = err if err is not None else sys.stderr
    try:
        policy = load_policy(policy_path, cwd)
        loaded = load_report(report_path)
        notes = [*policy.notes]
        notes += check_complete(
            loaded.plan,
            loaded.session,
            (i.nodeid for i in loaded.items),
            policy,
            label=f"report {report_path}",
            expect_session=expect_session,
        )
        report, changed = rejudge(loaded)
        if changed:
            notes.append(rejudged_note(changed))
        result = evaluate_gate(report, policy)
    except (ReportError, PolicyError) as exc:
        print(f"shakeout gate: ERROR {' '.join(str(exc).split())}", file=errors)
        return EXIT_ERROR
    for note in notes:
        print(f"shakeout gate: note: {note}", file=stream)
    for line in format_gate(result, report_path, len(report.items)):
        print(line, file=stream)
    return EXIT_PASS if result.passed else EXIT_FAIL
