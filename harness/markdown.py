"""The report as Markdown for CI pages (``--chaos-markdown``, ``$GITHUB_STEP_SUMMARY``)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from harness.report_model import NONE_KEY, InjectionCell, Report, ReportItem

MAX_FAILURES_LISTED = 25
MAX_KEYS_LISTED = 8


def _cell(value: object) -> str:
    # Pipes end a table cell and newlines end a row, so both are escaped.
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _code(value: str) -> str:
    text = _cell(value)
    return f"`` {text} ``" if "`" in text else f"`{text}`"


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
        f"## {icon} {_cell(title)}",
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


def write_markdown(report: Report, path: str | Path | None) -> list[Path]:
    """Write the Markdown summary to ``path`` and append it to ``$GITHUB_STEP_SUMMARY`` if set.

    Args:
        report: the report.
        path: the ``--chaos-markdown`` destination, or None.

    Returns:
        The files written or appended to.
    """
    text = render_markdown(report)
    written: list[Path] = []
    if path is not None:
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
        written.append(dest)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        # GitHub gives each step its own file; appending keeps other tools' summaries intact.
        with open(step_summary, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
        written.append(Path(step_summary))
    return written
