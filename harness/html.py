"""The report as one self-contained HTML page: inline CSS and JS, no network, no external fonts."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path

from harness.output import write_text
from harness.redact import Redactor, redact_model
from harness.report_model import (
    NONE_KEY,
    EventEntry,
    Report,
    ReportItem,
    RequestEntry,
)

_CSS = """
:root { color-scheme: light dark; --bg: #fff; --fg: #1b1f24; --muted: #59636e; --line: #d1d9e0;
  --pass: #1a7f37; --fail: #cf222e; --error: #9a6700; --fired: #2da44e; --planned: #d4a72c;
  --empty: #eaeef2; --hit: #fff8c5; }
@media (prefers-color-scheme: dark) { :root { --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1;
  --line: #3d444d; --empty: #212830; --hit: #3b2e00; } }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1200px; padding: 1.5rem; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; } h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; }
.muted { color: var(--muted); }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12.5px; }
pre { white-space: pre-wrap; word-break: break-word; margin: .25rem 0; }
.cards { display: flex; gap: .75rem; flex-wrap: wrap; margin: 1rem 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: .6rem 1rem; min-width: 7rem; }
.card .n { font-size: 1.8rem; font-weight: 600; display: block; }
.card.pass .n { color: var(--pass); } .card.fail .n { color: var(--fail); }
.card.error .n { color: var(--error); }
table { border-collapse: collapse; margin: .25rem 0 1rem; }
th, td { border: 1px solid var(--line); padding: .25rem .5rem; text-align: left;
  vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.grid td.cell { width: 2.2rem; text-align: center; }
.cell.fired { background: var(--fired); color: #fff; } .cell.planned { background: var(--planned); }
.cell.absent { background: var(--empty); }
.grid th.key { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; }
.legend span { display: inline-block; padding: 0 .5rem; margin-right: .5rem; border-radius: 4px; }
.verdict { font-weight: 600; text-transform: uppercase; font-size: 12px; }
.verdict.fail { color: var(--fail); } .verdict.error { color: var(--error); }
details.failure { border: 1px solid var(--line); border-radius: 8px; margin: .5rem 0;
  padding: .4rem .8rem; }
details.failure > summary { cursor: pointer; }
tr.faulted { background: var(--hit); }
.toolbar { display: flex; gap: .5rem; align-items: center; margin: .5rem 0; flex-wrap: wrap; }
.toolbar input { padding: .3rem .5rem; min-width: 18rem; }
[hidden] { display: none !important; }
"""

_JS = """
(function () {
  "use strict";
  var input = document.getElementById("failure-filter");
  var verdict = document.getElementById("verdict-filter");
  var shown = document.getElementById("failures-shown");
  var rows = Array.prototype.slice.call(document.querySelectorAll("details.failure"));
  function apply() {
    var text = input.value.toLowerCase();
    var want = verdict.value;
    var count = 0;
    rows.forEach(function (row) {
      var ok = (!text || row.getAttribute("data-search").indexOf(text) !== -1) &&
        (!want || row.getAttribute("data-verdict") === want);
      row.hidden = !ok;
      if (ok) { count += 1; }
    });
    shown.textContent = "showing " + count + " of " + rows.length;
    shown.setAttribute("data-shown", String(count));
  }
  function setOpen(open) { rows.forEach(function (row) { row.open = open; }); }
  function on(id, open) {
    document.getElementById(id).addEventListener("click", function () { setOpen(open); });
  }
  on("expand-all", true);
  on("collapse-all", false);
  input.addEventListener("input", apply);
  verdict.addEventListener("change", apply);
  apply();
  document.documentElement.setAttribute("data-ready", "1");
})();
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if isinstance(c, int | float) else f"<td>{_e(c)}</td>"
            for c in row
        )
        body.append(f"<tr>{cells}</tr>")
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cards(report: Report) -> str:
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


def _coverage(report: Report) -> str:
    cov = report.summary.coverage
    if not cov.matrix:
        return '<p class="muted">No faults were planned.</p>'
    keys = sorted({k for row in cov.matrix.values() for k in row})
    head = "<th>scenario</th>" + "".join(f'<th class="key">{_e(k)}</th>' for k in keys)
    rows = []
    for scenario, row in cov.matrix.items():
        cells = []
        for key in keys:
            cell = row.get(key)
            if cell is None:
                cells.append(f'<td class="cell absent" title="{_e(key)}: not planned"></td>')
            else:
                state = "fired" if cell.fired else "planned"
                tip = f"{scenario} x {key}: fired in {cell.fired} of {cell.injected} item(s)"
                mark = cell.fired if cell.fired else "0"
                cells.append(f'<td class="cell {state}" title="{_e(tip)}">{mark}</td>')
        rows.append(f"<tr><th>{_e(scenario)}</th>{''.join(cells)}</tr>")
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


def _confusion(report: Report) -> str:
    confusion = report.summary.confusion
    if not confusion:
        return ""
    cols = sorted({c for row in confusion.values() for c in row}, key=lambda k: (k == NONE_KEY, k))
    return "<h2>Fault injected × category reported</h2>" + _table(
        ["fault \\ category", *cols],
        ([key, *(row.get(c, 0) for c in cols)] for key, row in confusion.items()),
    )


def _timeline(requests: Sequence[RequestEntry]) -> str:
    if not requests:
        return '<p class="muted">No requests were recorded.</p>'
    rows = []
    for r in requests:
        outcome = r.error if r.error else (r.status if r.status is not None else "")
        cls = ' class="faulted"' if r.faults else ""
        rows.append(
            f'<tr{cls}><td class="num">{r.seq}</td><td>{_e(r.surface)}</td><td>{_e(r.tool)}</td>'
            f"<td>{_e(r.method)}</td><td><code>{_e(r.url)}</code></td><td>{_e(outcome)}</td>"
            f"<td>{_e(', '.join(r.faults))}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("#", "surface", "tool", "method", "url", "status / error", "faults")
    )
    return (
        f'<table class="timeline"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _event_row(e: EventEntry, t0: float) -> str:
    """One event of the run's log as a timeline row: who, what, and how it ended (times in
    fake-clock seconds since the run's first event)."""
    cls = ""
    if e.kind == "request":
        outcome = e.error if e.error else (e.status if e.status is not None else "")
        who, what = e.tool or e.surface or "", f"{e.method} {e.url}"
        detail = ", ".join(e.faults)
        cls = ' class="faulted"' if e.faults else ""
    elif e.kind == "commit":
        who, what = e.tool or "", f"effect committed by request #{e.request_seq}"
        outcome, detail = e.idempotency_key or "(no key)", e.body or ""
    elif e.kind == "delivery":
        who, what = "reviewer", f"{e.verdict} {e.approval_id} for {e.tool}"
        outcome = f"expires at +{e.expires_at - t0:g} s" if e.expires_at is not None else ""
        detail = e.arguments or ""
    elif e.kind == "crash":
        who, what, outcome, detail = "harness", f"crash at {e.point}", e.where or "", ""
        cls = ' class="faulted"'
    elif e.kind == "restart":
        who, what = "harness", "restart in a fresh adapter" if e.fresh else "restart (same adapter)"
        outcome, detail = "", ""
    else:
        who, what, outcome, detail = "guard", f"refused {e.what}", e.target or "", ""
        cls = ' class="faulted"'
    return (
        f'<tr{cls}><td class="num">{e.seq}</td><td class="num">+{e.t - t0:g}</td>'
        f"<td>{_e(e.kind)}</td>"
        f"<td>{_e(who)}</td><td><code>{_e(what)}</code></td><td>{_e(outcome)}</td>"
        f"<td><code>{_e(detail)}</code></td></tr>"
    )


def _events(events: Sequence[EventEntry]) -> str:
    """The run's event log (the evidence the checks read) as a timeline table."""
    names = ("#", "t (s)", "event", "who", "what", "outcome", "detail")
    head = "".join(f"<th>{h}</th>" for h in names)
    t0 = events[0].t if events else 0.0
    rows = "".join(_event_row(e, t0) for e in events)
    return f'<table class="timeline"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _failure(item: ReportItem) -> str:
    failed = [c for c in item.checks if c.passed is False]
    search = " ".join(
        [item.nodeid, item.verdict, item.category or "", *(c.name for c in failed)]
    ).lower()
    checks = "".join(f"<li><b>{_e(c.name)}</b>: {_e(c.reason)}</li>" for c in failed)
    fired = ", ".join(f"{f.key} ({f.where})" if f.where else f.key for f in item.faults_fired)
    parts = [
        f'<details class="failure" data-verdict="{item.verdict}" data-search="{_e(search)}">',
        f'<summary><span class="verdict {item.verdict}">{item.verdict}</span> '
        f"<code>{_e(item.nodeid)}</code> "
        f'<span class="muted">{_e(item.category or "")} {_e(item.terminal_state or "")}</span>'
        "</summary>",
    ]
    if checks:
        parts.append(f"<p>Failed checks:</p><ul>{checks}</ul>")
    if item.error:
        parts.append(f"<p>Error:</p><pre>{_e(item.error)}</pre>")
    parts.append(f"<p>Faults fired: {_e(fired or 'none')}</p>")
    if item.reproduce:
        parts.append(f"<p>Reproduce:</p><pre><code>{_e(item.reproduce)}</code></pre>")
    if item.events:
        parts.append(f"<p>Timeline (the run's event log):</p>{_events(item.events)}</details>")
    else:
        parts.append(f"<p>Request timeline:</p>{_timeline(item.requests)}</details>")
    return "".join(parts)


def _queue_section(report: Report) -> list[str]:
    """The review queue under load: one row per load item (empty without load scenarios)."""
    if not report.summary.queue:
        return []

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
    return ["<h2>Review queue under load</h2>", _table([*header, "SLA"], rows, "queue")]


def render_html(report: Report, *, title: str = "shakeout fault-injection report") -> str:
    """Render the report as one HTML document that needs nothing but itself.

    A Content-Security-Policy forbids every fetch; the one inline script is allowed by its hash.

    Args:
        report: the report; only its summary and its non-passing items are read (the pytest
            session passes a report holding just those).
        title: the page title and heading.

    Returns:
        The HTML text.
    """
    s = report.summary
    digest = base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    bad = [i for i in report.items if i.verdict != "pass"]
    tr = s.transient_recovery
    c = s.crash
    figures: list[list[object]] = [
        ["transient recovery rate", "n/a" if tr.rate is None else f"{tr.rate:.1%}"],
        ["transient-only runs recovered", f"{tr.recovered} / {tr.items}"],
        ["crash variants", c.crash_variants],
        ["restarts", c.restarts],
        ["re-executed steps", c.reexecuted_steps],
        ["duplicate effects", c.duplicate_effects],
    ]
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">seed <code id="seed">{report.seed}</code> · schema v'
        f"{_e(report.schema_version)}</p>",
        _cards(report),
        "<h2>By fault class</h2>",
        _table(
            ["fault", "items", "pass", "fail", "error"],
            ([k, v.total, v.passed, v.fail, v.error] for k, v in s.by_fault.items()),
        ),
        "<h2>By reported category</h2>",
        _table(["category", "items"], ([k, n] for k, n in s.by_category.items())),
        _confusion(report),
        "<h2>Coverage</h2>",
        _coverage(report),
    ]
    if s.by_check:
        body += [
            "<h2>Checks</h2>",
            _table(
                ["check", "passed", "failed", "n/a"],
                ([n, k.passed, k.failed, k.not_applicable] for n, k in s.by_check.items()),
            ),
        ]
    body += [
        "<h2>Recovery</h2>",
        _table(["figure", "value"], figures),
    ]
    if s.injection:
        body += [
            "<h2>Injection</h2>",
            _table(
                ["family", "surface", "contained", "not contained", "error", "reached model"],
                (
                    [family, surface, c.contained, c.not_contained, c.error, c.reached_model]
                    for family, row in s.injection.items()
                    for surface, c in row.items()
                ),
                "injection",
            ),
        ]
    body += _queue_section(report)
    body += [
        f'<h2>Failures and errors (<span id="failure-count">{len(bad)}</span>)</h2>',
        '<div class="toolbar"><input id="failure-filter" type="search" '
        'placeholder="filter by nodeid, category, check" aria-label="filter failures">'
        '<select id="verdict-filter" aria-label="verdict"><option value="">all verdicts</option>'
        '<option value="fail">fail</option><option value="error">error</option></select>'
        '<button id="expand-all" type="button">expand all</button>'
        '<button id="collapse-all" type="button">collapse all</button>'
        '<span id="failures-shown" class="muted"></span></div>',
        "".join(_failure(i) for i in bad) or '<p class="muted">No failures.</p>',
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}<script>{_JS}</script></body></html>\n"
    )


def write_html(report: Report, path: str | Path, redactor: Redactor | None = None) -> Path:
    """Write the HTML page atomically, never through a symbolic link (see harness.output).

    Args:
        report: the report.
        path: destination; parent directories are created.
        redactor: masks secrets left in the report's text (None: written as it is).

    Returns:
        The path written.

    Raises:
        OutputError: the destination was refused or could not be written.
    """
    if redactor is not None:
        report = redact_model(report, redactor)
    return write_text(path, render_html(report), "HTML report")
