"""The deployment gate: a policy applied to a fault-injection report, as an exit code.

Exit codes: 0 every rule holds, 1 at least one rule failed, 2 the report or the policy is
unusable (:class:`~harness.report.model.ReportError`,
:class:`~harness.report.gate_policy.PolicyError`) or the report is
refused (:class:`ReportRefused`: no items, fewer items than planned, an interrupted or a stale
session).

The gate trusts no verdict it can recompute: each item is judged again from its checks
(:func:`judge_item`), and a report proves it is complete against the plan it recorded at
collection (:func:`check_complete`).

This module owns judging and the ``shakeout gate`` command; the policy itself (its keys,
defaults and reading) is :mod:`harness.report.gate_policy`, which this module imports, with the
report model and the verdict's check names. Nothing below the report imports it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TextIO

from harness.report.gate_policy import GatePolicy, PolicyError, load_policy, shown
from harness.report.model import (
    Plan,
    Report,
    ReportError,
    ReportItem,
    SessionInfo,
    Verdict,
    load_report,
    summarize,
)
from harness.report.model.collector import collector_paused

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
MAX_NODEIDS_SHOWN = 10


class ReportRefused(ReportError):
    """A readable report the gate will not judge: no items, partial, interrupted or stale."""


def _nodeid_text(nodeid: str) -> str:
    # A node id from the report, kept on one line (a hostile one is shown escaped).
    return nodeid if nodeid.isprintable() and len(nodeid) <= 500 else shown(nodeid)


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
        found = "no session id" if session is None else f"session {shown(session.id)}"
        raise ReportRefused(
            f"{label} was written by {found}, not by the session just run "
            f"({shown(expect_session)}): it is stale, the run wrote no new report; see the "
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
    # Imported here: every check class must be defined to be known, and importing them all (the
    # verdicts, the world they read) is start-up an xdist controller would pay for nothing.
    from harness.verdict.suites import known_check_names

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


# The whole command, with the cyclic collector paused (see collector.py).
@collector_paused()
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
