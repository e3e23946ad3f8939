"""The figures: the count cards, recovery and injection, the review queue under load, and the
tables behind the heatmaps (per fault, per category, fault x category, coverage, per check).

Imports :mod:`~harness.report.html.markup`, and :mod:`~harness.report.html.index` for the sections'
signature.
"""

from __future__ import annotations

from harness.report.html.index import PageIndex
from harness.report.html.markup import esc, table
from harness.report.model import NONE_KEY, Report


def cards(report: Report) -> str:
    v = report.summary.by_verdict
    cards = [("total", "items", v.total), ("pass", "pass", v.passed), ("fail", "fail", v.fail)]
    cards.append(("error", "error", v.error))
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card {key}"><span class="n" id="count-{key}" data-count="{n}">{n}</span>'
            f'<span class="muted">{label}</span></div>'
            for key, label, n in cards
        )
        + "</div>"
    )


def figures_section(report: Report, index: PageIndex) -> str:
    """Recovery and crash figures, and the injection cells."""
    s = report.summary
    tr, c = s.transient_recovery, s.crash
    figures: list[list[object]] = [
        ["transient recovery rate", "n/a" if tr.rate is None else f"{tr.rate:.1%}"],
        ["transient-only runs recovered", f"{tr.recovered} / {tr.items}"],
        ["crash variants", c.crash_variants],
        ["restarts", c.restarts],
        ["re-executed steps", c.reexecuted_steps],
        ["duplicate effects", c.duplicate_effects],
    ]
    parts = ["<h2>Recovery</h2>", table(["figure", "value"], figures)]
    if s.injection:
        parts += [
            "<h2>Injection</h2>",
            table(
                ["family", "surface", "contained", "not contained", "error", "reached model"],
                (
                    [family, surface, x.contained, x.not_contained, x.error, x.reached_model]
                    for family, row in s.injection.items()
                    for surface, x in row.items()
                ),
                "injection",
            ),
        ]
    return "".join(parts)


def queue_section(report: Report, index: PageIndex) -> str:
    """The review queue under load: one row per load item (empty without load scenarios)."""
    if not report.summary.queue:
        return ""

    def seconds(value: float | None, limit: float | None) -> str:
        shown = "n/a" if value is None else f"{value:g}"
        return shown if limit is None else f"{shown} / {limit:g}"

    rows = []
    for nodeid, q in report.summary.queue.items():
        lat = [seconds(q.latency_s.get(k), q.sla_s.get(k)) for k in ("p50", "p90", "p99")]
        met = {True: "met", False: "missed", None: "n/a"}[q.sla_met]
        rows.append(
            [
                nodeid,
                q.runs,
                f"{q.max_queue_length} / {q.capacity}",
                q.queued,
                f"{q.throttled} ({q.resumed_after_drain} resumed)",
                q.silent_drops,
                q.spurious_throttles,
                *lat,
                met,
            ]
        )
    header = ["load item", "runs", "max queue / capacity", "queued", "throttled"]
    header += ["silent drops", "spurious throttles", "p50 s / SLA", "p90 s / SLA", "p99 s / SLA"]
    return "<h2>Review queue under load</h2>" + table([*header, "SLA"], rows, "queue")


def tables_section(report: Report, index: PageIndex) -> str:
    """The figures behind the heatmaps as plain tables, folded away."""
    s = report.summary
    parts = [
        "<h3>By fault class</h3>",
        table(
            ["fault", "items", "pass", "fail", "error"],
            ([k, v.total, v.passed, v.fail, v.error] for k, v in s.by_fault.items()),
        ),
        "<h3>By reported category</h3>",
        table(["category", "items"], ([k, n] for k, n in s.by_category.items())),
        _confusion(report),
        "<h3>Coverage</h3>",
        _coverage(report),
    ]
    if s.by_check:
        parts += [
            "<h3>Checks</h3>",
            table(
                ["check", "passed", "failed", "n/a"],
                ([n, k.passed, k.failed, k.not_applicable] for n, k in s.by_check.items()),
            ),
        ]
    return (
        '<details class="more" id="tables"><summary>Figures as tables: per fault class, per '
        "category, fault × category, coverage, per check</summary>"
        f"{''.join(parts)}</details>"
    )


def _confusion(report: Report) -> str:
    confusion = report.summary.confusion
    if not confusion:
        return ""
    cols = sorted({c for row in confusion.values() for c in row}, key=lambda k: (k == NONE_KEY, k))
    return "<h2>Fault injected × category reported</h2>" + table(
        ["fault \\ category", *cols],
        ([key, *(row.get(c, 0) for c in cols)] for key, row in confusion.items()),
    )


def _coverage(report: Report) -> str:
    cov = report.summary.coverage
    if not cov.matrix:
        return '<p class="muted">No faults were planned.</p>'
    keys = sorted({k for row in cov.matrix.values() for k in row})
    head = "<th>scenario</th>" + "".join(f'<th class="key">{esc(k)}</th>' for k in keys)
    rows = []
    for scenario, row in cov.matrix.items():
        cells = []
        for key in keys:
            cell = row.get(key)
            if cell is None:
                cells.append(f'<td class="cell absent" title="{esc(key)}: not planned"></td>')
            else:
                state = "fired" if cell.fired else "planned"
                tip = f"{scenario} x {key}: fired in {cell.fired} of {cell.injected} item(s)"
                mark = cell.fired if cell.fired else "0"
                cells.append(f'<td class="cell {state}" title="{esc(tip)}">{mark}</td>')
        rows.append(f"<tr><th>{esc(scenario)}</th>{''.join(cells)}</tr>")
    frac = "n/a" if cov.fraction is None else f"{cov.fraction:.1%}"
    legend = (
        '<p class="legend"><span class="cell fired">fired</span>'
        '<span class="cell planned">planned, never fired</span>'
        '<span class="cell absent">not planned</span></p>'
    )
    return (
        f'<p><span id="coverage-exercised">{cov.exercised_pairs}</span> of '
        f'<span id="coverage-planned">{cov.planned_pairs}</span> scenario x fault pairs '
        f"exercised ({frac}).</p>{legend}"
        f'<table class="grid" id="coverage"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
