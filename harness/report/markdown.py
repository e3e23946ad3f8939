"""The report as Markdown for CI pages (``--chaos-markdown``, ``$GITHUB_STEP_SUMMARY``).

CI pages render this Markdown, raw HTML included, so nothing from the report reaches it
unescaped: plain text has its Markdown and HTML punctuation backslash-escaped, names and commands
go in code spans whose fence outlasts any backtick run inside (CommonMark's rule), and a table
cell escapes its pipes exactly once, code spans included (GFM splits cells before code spans).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from harness.output import OutputError, append_text, write_text
from harness.redact import Redactor, redact_model
from harness.report.model import NONE_KEY, InjectionCell, Report, ReportItem, TunedOutcome

MAX_FAILURES_LISTED = 25
MAX_KEYS_LISTED = 8

# Backslash escapes work on any ASCII punctuation (CommonMark 2.4). These are the characters
# that open markup or raw HTML: code, emphasis, links and images, HTML tags and entities,
# strikethrough. "_" is left alone inside words, where it cannot open emphasis (snake_case).
_MARKUP = re.compile(r"[\\`*\[\]<>&~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_BACKTICKS = re.compile(r"`+")
_NEWLINES = re.compile(r"[\r\n]+")


class _Inline(str):
    """Text that is already Markdown (a code span): table cells escape only its pipes."""

    __slots__ = ()


def _one_line(value: object) -> str:
    return _NEWLINES.sub(" ", "" if value is None else str(value))


def _text(value: object) -> str:
    """Plain text as inert Markdown: markup and HTML characters escaped, on one line."""
    return _MARKUP.sub(lambda m: "\\" + m.group(0), _one_line(value))


def _code(value: object) -> _Inline:
    """A code span holding ``value`` literally, whatever backticks it contains."""
    text = _one_line(value)
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    # A content starting or ending with a backtick would merge with the fence; one space
    # each side is stripped again by the parser (also needed when both ends are spaces).
    if text[:1] == "`" or text[-1:] == "`" or (text[:1] == " " and text[-1:] == " "):
        text = f" {text} "
    return _Inline(f"{fence}{text}{fence}")


def _cell(value: object) -> str:
    # A pipe ends a cell even inside a code span, so it is escaped once, here, for both kinds.
    text = value if isinstance(value, _Inline) else _text(value)
    return text.replace("|", "\\|")


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    body = [list(r) for r in rows]
    # Right-align the columns that hold only numbers, so counts line up on rendered pages.
    numeric = [
        bool(body) and all(isinstance(r[i], int | float) for r in body) for i in range(len(header))
    ]
    lines = [
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in body)
    return lines


def _failed_checks(item: ReportItem) -> str:
    return ", ".join(c.name for c in item.checks if c.passed is False)


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def render_markdown(report: Report, *, title: str = "shakeout fault-injection report") -> str:
    """Render the report's summary, matrices and failures as GitHub-flavoured Markdown.

    Args:
        report: the report; only its summary and its non-passing items are read (the pytest
            session passes a report holding just those).
        title: the level-2 heading.

    Returns:
        The Markdown text, ending with a newline.
    """
    s = report.summary
    v = s.by_verdict
    icon = "✅" if v.fail == 0 and v.error == 0 else "❌"
    out = [
        f"## {icon} {_text(title)}",
        "",
        f"**{s.total}** items: **{v.passed}** pass, **{v.fail}** fail, **{v.error}** error "
        f"· seed `{report.seed}` · schema v{report.schema_version}",
        "",
        "### By fault class",
        "",
        *_table(
            ["fault", "items", "pass", "fail", "error"],
            ([k, c.total, c.passed, c.fail, c.error] for k, c in s.by_fault.items()),
        ),
        "",
        "### By reported category",
        "",
        *_table(["category", "items"], s.by_category.items()),
        "",
    ]
    out += _confusion(s.confusion)
    out += _coverage(report)
    if s.by_check:
        out += [
            "### Checks",
            "",
            *_table(
                ["check", "passed", "failed", "n/a"],
                ([n, c.passed, c.failed, c.not_applicable] for n, c in s.by_check.items()),
            ),
            "",
        ]
    tr = s.transient_recovery
    rate = "n/a" if tr.rate is None else f"{tr.rate:.1%} ({tr.recovered}/{tr.items})"
    c = s.crash
    out += [
        "### Recovery",
        "",
        *_table(
            ["figure", "value"],
            [
                ["transient recovery rate", rate],
                ["crash variants", c.crash_variants],
                ["restarts", c.restarts],
                ["re-executed steps", c.reexecuted_steps],
                ["duplicate effects", c.duplicate_effects],
            ],
        ),
        "",
    ]
    out += _injection(s.injection)
    out += _tuned(s.tuned_outcomes)
    out += _failures(report.items)
    return "\n".join(out) + "\n"


def _injection(table: Mapping[str, Mapping[str, InjectionCell]]) -> list[str]:
    """Injection family x surface: contained, not contained, errors, payloads that reached the
    model."""
    if not table:
        return []
    rows = [
        [family, surface, c.contained, c.not_contained, c.error, c.reached_model]
        for family, row in table.items()
        for surface, c in row.items()
    ]
    header = ["family", "surface", "contained", "not contained", "error", "reached model"]
    return ["### Injection", "", *_table(header, rows), ""]


def _confusion(confusion: Mapping[str, Mapping[str, int]]) -> list[str]:
    if not confusion:
        return []
    columns = sorted({cat for row in confusion.values() for cat in row}, key=_none_last)
    return [
        "### Fault injected × category reported",
        "",
        *_table(
            ["fault \\ category", *columns],
            ([key, *(row.get(col, 0) for col in columns)] for key, row in confusion.items()),
        ),
        "",
    ]


def _none_last(key: str) -> tuple[bool, str]:
    return (key == NONE_KEY, key)


def _coverage(report: Report) -> list[str]:
    # One row per scenario rather than a scenario x fault grid: with dozens of fault keys the
    # grid is too wide for a CI page (the HTML report draws it as a colour grid instead).
    cov = report.summary.coverage
    rows = []
    for scenario, row in cov.matrix.items():
        if not row:
            continue
        missing = [k for k, cell in row.items() if not cell.fired]
        shown = ", ".join(missing[:MAX_KEYS_LISTED])
        if len(missing) > MAX_KEYS_LISTED:
            shown += f", … ({len(missing) - MAX_KEYS_LISTED} more)"
        fired = len(row) - len(missing)
        rows.append([scenario, len(row), fired, shown])
    if not rows:
        return []
    frac = "n/a" if cov.fraction is None else f"{cov.fraction:.1%}"
    return [
        f"### Coverage: {cov.exercised_pairs}/{cov.planned_pairs} scenario × fault pairs "
        f"exercised ({frac})",
        "",
        *_table(["scenario", "faults planned", "fired", "planned but never fired"], rows),
        "",
    ]


def _tuned(rules: Sequence[TunedOutcome]) -> list[str]:
    if not rules:
        return []
    rows = [
        [
            _code(r.scenario),
            _code(r.fault),
            " | ".join(r.accept),
            " | ".join(r.declared),
            r.source,
            r.reason,
            f"{r.passed}/{r.items}",
            ", ".join(f"{k} {n}" for k, n in r.held.items()),
        ]
        for r in rules
    ]
    header = ["scenario", "fault", "accepts", "fault's own", "set in", "reason", "pass", "ended"]
    return ["### Changed expectations", "", *_table(header, rows), ""]


def _failures(items: Sequence[ReportItem]) -> list[str]:
    bad = [i for i in items if i.verdict != "pass"]
    if not bad:
        return ["No failures."]
    rows = [
        [
            i.verdict.upper(),
            _code(i.nodeid),
            i.category or "",
            _failed_checks(i) or _first_line(i.error),
            _code(i.reproduce) if i.reproduce else "",
        ]
        for i in bad[:MAX_FAILURES_LISTED]
    ]
    out = [
        f"### Failures and errors ({len(bad)})",
        "",
        *_table(["verdict", "item", "category", "failed checks / error", "reproduce"], rows),
    ]
    if len(bad) > MAX_FAILURES_LISTED:
        out += ["", f"… and {len(bad) - MAX_FAILURES_LISTED} more (see the JSON or HTML report)."]
    return out


def write_markdown(
    report: Report, path: str | Path | None, redactor: Redactor | None = None
) -> list[Path]:
    """Write the Markdown summary to ``path`` and append it to ``$GITHUB_STEP_SUMMARY`` if set.

    The file is written atomically and never through a symbolic link (see
    :mod:`harness.output`).

    Args:
        report: the report.
        path: the ``--chaos-markdown`` destination, or None.
        redactor: masks secrets left in the report's text (None: written as it is).

    Returns:
        The files written or appended to.

    Raises:
        OutputError: a destination was refused or could not be written; the other one is
            still attempted first.
    """
    if redactor is not None:
        report = redact_model(report, redactor)
    text = render_markdown(report)
    written: list[Path] = []
    problems: list[OutputError] = []
    if path is not None:
        try:
            written.append(write_text(path, text, "Markdown summary"))
        except OutputError as exc:
            problems.append(exc)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        # GitHub gives each step its own file; appending keeps other tools' summaries intact.
        try:
            written.append(append_text(step_summary, text + "\n", "$GITHUB_STEP_SUMMARY file"))
        except OutputError as exc:
            problems.append(exc)
    if problems:
        raise OutputError("; ".join(str(p) for p in problems))
    return written
