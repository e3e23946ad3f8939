"""The items list: every item, failing first, with filters and a search box; failing items with
their checks, faults and reproduce command, the first :data:`DETAIL_CAP` drawn in full.

Imports :mod:`~harness.report.html.index`, :mod:`~harness.report.html.markup` and
:mod:`~harness.report.html.timeline`.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.report.html.index import ItemRow, PageIndex, fault_order, ordered
from harness.report.html.markup import embed_json, esc
from harness.report.html.timeline import event_table, request_table, svg_timeline
from harness.report.model import NONE_KEY, Report, ReportItem

DETAIL_CAP = 100
"""Failing items drawn in full (timeline, event log); the others keep their checks and the
command that reproduces them, so a 10k-failure page stays a page."""


PASS_ROWS_CAP = 5000
"""Passing items listed; the rest are counted in a note (the JSON report holds them all)."""


def items_section(report: Report, index: PageIndex) -> str:
    """Every item, failing first, with filters and a search box; failing ones in full."""
    rows = ordered(index.rows)
    whole = {i.nodeid: i for i in report.items if i.verdict != "pass"}
    bad = [r for r in rows if r.verdict != "pass"]
    passing = [r for r in rows if r.verdict == "pass"]
    listed = bad + passing[:PASS_ROWS_CAP]
    data = []
    html = []
    for n, row in enumerate(listed):
        search = " ".join(
            [row.nodeid, row.verdict, row.category or "", row.state or "", *row.failed_checks]
        ).lower()
        data.append(
            {
                "s": row.scenario,
                "f": row.faults,
                "c": row.failed_checks,
                "v": row.verdict,
                "q": search,
            }
        )
        if row.verdict == "pass":
            html.append(_pass_row(n, row))
        else:
            html.append(_failure(n, row, whole.get(row.nodeid), detailed=n < DETAIL_CAP))
    notes = []
    if len(bad) > DETAIL_CAP:
        notes.append(
            f"The first {DETAIL_CAP} of {len(bad)} failing items are drawn in full; the others "
            "show their failed checks and the command that reproduces them (the JSON report "
            "holds every event)."
        )
    if len(passing) > PASS_ROWS_CAP:
        notes.append(
            f"{len(passing) - PASS_ROWS_CAP} passing item(s) are not listed (the first "
            f"{PASS_ROWS_CAP} are); the JSON report holds them all."
        )
    scenarios = sorted({r.scenario for r in listed})
    faults = fault_order(k for r in listed for k in r.faults)
    checks = sorted({c for r in listed for c in r.failed_checks})
    toolbar = (
        '<div class="toolbar" id="item-filters" hidden>'
        '<input id="f-search" type="search" placeholder="search node id, category, check" '
        'aria-label="search items">'
        + _options("f-scenario", "scenario", scenarios)
        + _options("f-fault", "fault", faults)
        + _options("f-check", "failed check", checks)
        + _options("f-verdict", "verdict", ("fail", "error", "pass"))
        + '<button id="f-clear" type="button">clear</button>'
        '<button id="expand-all" type="button">expand all</button>'
        '<button id="collapse-all" type="button">collapse all</button>'
        '<span id="items-shown" class="muted"></span></div>'
    )
    legend = (
        '<div class="legend muted">timeline lanes: agent (alive between crash and restart), '
        "model calls (blue), tool calls (grey; amber: an error answer) and committed effects "
        "(green diamonds), reviewer decisions (purple; red: denied); a red ring marks a "
        "request a fault touched, a red dashed line a crash.</div>"
    )
    return (
        f'<h2 id="items-title">Items: <span id="failure-count">{len(bad)}</span> failing or in '
        f"error, {len(passing)} passing</h2>"
        + "".join(f'<p class="muted">{esc(n)}</p>' for n in notes)
        + toolbar
        + (legend if bad else '<p class="muted">No failures.</p>')
        + f'<div id="items">{"".join(html)}</div>'
        + f'<script type="application/json" id="items-data">{embed_json(data)}</script>'
    )


def _options(id_: str, label: str, values: Iterable[str]) -> str:
    opts = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
    return (
        f'<select id="{id_}" aria-label="{label}"><option value="">all {label}s</option>'
        f"{opts}</select>"
    )


def _tags(row: ItemRow) -> str:
    return "".join(f'<span class="tag">{esc(k)}</span>' for k in row.faults if k != NONE_KEY)


def _pass_row(n: int, row: ItemRow) -> str:
    return (
        f'<div class="item pass" data-i="{n}"><span class="verdict pass">pass</span> '
        f"<code>{esc(row.nodeid)}</code> {_tags(row)}</div>"
    )


def _failure(n: int, row: ItemRow, item: ReportItem | None, *, detailed: bool) -> str:
    parts = [
        f'<details class="item failure {row.verdict}" data-i="{n}" data-verdict="{row.verdict}">',
        f'<summary><span class="verdict {row.verdict}">{row.verdict}</span> '
        f"<code>{esc(row.nodeid)}</code> {_tags(row)} "
        f'<span class="muted">{esc(row.category or "")} {esc(row.state or "")}</span></summary>',
    ]
    if item is None:
        checks = "".join(f"<li><b>{esc(c)}</b></li>" for c in row.failed_checks)
        if checks:
            parts.append(f"<p>Failed checks:</p><ul>{checks}</ul>")
        parts.append("</details>")
        return "".join(parts)
    failed = [c for c in item.checks if c.passed is False]
    checks = "".join(f"<li><b>{esc(c.name)}</b>: {esc(c.reason)}</li>" for c in failed)
    fired = ", ".join(f"{f.key} ({f.where})" if f.where else f.key for f in item.faults_fired)
    if checks:
        parts.append(f"<p>Failed checks:</p><ul>{checks}</ul>")
    if item.error:
        parts.append(f"<p>Error:</p><pre>{esc(item.error)}</pre>")
    parts.append(f"<p>Faults fired: {esc(fired or 'none')}</p>")
    if item.reproduce:
        parts.append(f"<p>Reproduce:</p><pre><code>{esc(item.reproduce)}</code></pre>")
    if detailed and item.events:
        parts.append(
            f"<p>The run, drawn from its event log:</p>{svg_timeline(item.events)}"
            f"<p>Timeline (the run's event log):</p>"
            f'<div class="scroll">{event_table(item.events)}</div>'
        )
    elif detailed:
        parts.append(f"<p>Request timeline:</p>{request_table(item.requests)}")
    parts.append("</details>")
    return "".join(parts)
