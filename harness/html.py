"""The report as one self-contained HTML page: inline CSS and JS, no network, no external fonts.

The page is a list of sections, each built by its own function from the report and the
:class:`PageIndex` (one compact row per item, passing ones too): the scenario x fault heatmap,
the category confusion heatmap, the items (failing first, with filters and a search box, and
each failing item's run drawn as a timeline from its event log), then the figures.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from harness.output import write_text
from harness.redact import Redactor, redact_model
from harness.report_model import (
    NONE_KEY,
    VERDICTS,
    EventEntry,
    Report,
    ReportItem,
    RequestEntry,
    Verdict,
)

DETAIL_CAP = 100
"""Failing items drawn in full (timeline, event log); the others keep their checks and the
command that reproduces them, so a 10k-failure page stays a page."""
PASS_ROWS_CAP = 5000
"""Passing items listed; the rest are counted in a note (the JSON report holds them all)."""
TIMELINE_EVENTS_CAP = 400
"""Events drawn in one timeline; a longer run is cut with a note (the table below holds all)."""
EXPECTED_CATEGORY_CHECK = "expected_category"
# The expected_category check's failure reason starts "expected category 'tool' (...)" or
# "expected category None (...)"; when it passes, the expected category is the one reported.
_EXPECTED = re.compile(r"expected category (?:None|'([^']*)')")
_CATEGORY_ORDER = (NONE_KEY, "input", "logic", "model", "tool")
_RANK = {"fail": 0, "error": 1, "pass": 2}
"""Items order: failing first, then errors, then passes."""

_CSS = """
:root { color-scheme: light dark; --bg: #fff; --fg: #1b1f24; --muted: #59636e; --line: #d1d9e0;
  --pass: #1a7f37; --fail: #cf222e; --error: #9a6700; --fired: #2da44e; --planned: #d4a72c;
  --empty: #eaeef2; --hit: #fff8c5; --c-pass: #2da44e; --c-fail: #cf222e; --c-error: #d4a72c;
  --model: #0969da; --tool: #6e7781; --review: #8250df; --panel: #f6f8fa; }
@media (prefers-color-scheme: dark) { :root { --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1;
  --line: #3d444d; --empty: #212830; --hit: #3b2e00; --panel: #151b23; --tool: #9198a1; } }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1280px; padding: 1.5rem; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; } h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; }
a { color: inherit; }
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
.scroll { overflow-x: auto; max-width: 100%; }
.grid td.cell { width: 2.2rem; text-align: center; }
.cell.fired { background: var(--fired); color: #fff; } .cell.planned { background: var(--planned); }
.cell.absent { background: var(--empty); }
.grid th.key, .heat th.key { writing-mode: vertical-rl; transform: rotate(180deg);
  white-space: nowrap; font-weight: 500; font-size: 12px; padding: .3rem .1rem; }
.heat { border-collapse: separate; border-spacing: 2px; }
.heat th, .heat td { border: 0; }
.heat th.row { white-space: nowrap; font-weight: 500; text-align: right; font-size: 12.5px; }
.heat td.hm { width: 26px; min-width: 26px; height: 26px; padding: 0; text-align: center;
  vertical-align: middle; border-radius: 4px; font-size: 11px; font-weight: 600; }
.heat td.hm a { display: block; line-height: 26px; text-decoration: none; color: #fff; }
.hm.pass { background: var(--c-pass); } .hm.fail { background: var(--c-fail); }
.hm.error { background: var(--c-error); } .hm.error a { color: #1b1f24; }
.hm.empty { background: var(--empty); }
.heat td.total { font-size: 11px; color: var(--muted); text-align: center; }
.conf td.cm { width: 3.2rem; height: 2.2rem; text-align: center; vertical-align: middle;
  font-variant-numeric: tabular-nums; }
.conf td.cm.off { background: rgba(207, 34, 46, var(--a)); }
.conf td.cm.diag { background: rgba(45, 164, 78, var(--a)); outline: 2px solid var(--pass);
  outline-offset: -2px; font-weight: 600; }
.legend { display: flex; gap: .9rem; flex-wrap: wrap; align-items: center; margin: .25rem 0 .5rem; }
.legend i { display: inline-block; width: 14px; height: 14px; border-radius: 3px;
  vertical-align: -2px; margin-right: .3rem; }
.legend i.pass { background: var(--c-pass); } .legend i.fail { background: var(--c-fail); }
.legend i.error { background: var(--c-error); } .legend i.empty { background: var(--empty); }
.verdict { font-weight: 600; text-transform: uppercase; font-size: 12px; display: inline-block;
  min-width: 3.2rem; }
.verdict.fail { color: var(--fail); } .verdict.error { color: var(--error); }
.verdict.pass { color: var(--pass); }
#items .item { border: 1px solid var(--line); border-radius: 8px; margin: .35rem 0;
  padding: .35rem .8rem; }
#items .item { content-visibility: auto; contain-intrinsic-size: auto 2.4rem; }
#items .item.fail { border-left: 4px solid var(--c-fail); }
#items .item.error { border-left: 4px solid var(--c-error); }
#items .item.pass { border-left: 4px solid var(--c-pass); padding: .15rem .8rem; }
#items details > summary { cursor: pointer; }
.tag { display: inline-block; border: 1px solid var(--line); border-radius: 10px;
  padding: 0 .45rem; margin: 0 .15rem; font-size: 11.5px; color: var(--muted); }
tr.faulted { background: var(--hit); }
.toolbar { display: flex; gap: .5rem; align-items: center; margin: .5rem 0; flex-wrap: wrap;
  position: sticky; top: 0; background: var(--bg); padding: .4rem 0; z-index: 1; }
.toolbar input { padding: .3rem .5rem; min-width: 16rem; }
.toolbar select { max-width: 14rem; }
svg.tl { display: block; margin: .5rem 0; background: var(--panel); border-radius: 6px; }
svg.tl text { font: 11px system-ui, sans-serif; fill: var(--muted); }
svg.tl .lane { stroke: var(--line); }
svg.tl .alive { fill: var(--model); opacity: .18; }
svg.tl .m { fill: var(--model); } svg.tl .t { fill: var(--tool); }
svg.tl .bad { fill: var(--c-error); } svg.tl .commit { fill: var(--c-pass); }
svg.tl .rv { fill: var(--review); } svg.tl .deny { fill: var(--c-fail); }
svg.tl .fault { fill: none; stroke: var(--c-fail); stroke-width: 2; }
svg.tl .crash { stroke: var(--c-fail); stroke-width: 2; stroke-dasharray: 4 3; }
svg.tl .crash-label { fill: var(--c-fail); font-weight: 600; }
svg.tl .fault-label { fill: var(--c-fail); font-size: 10px; }
svg.tl .restart { fill: var(--fg); } svg.tl .blocked { stroke: var(--c-fail); stroke-width: 2.5; }
details.more { margin: .5rem 0; } details.more > summary { cursor: pointer; color: var(--muted); }
[hidden] { display: none !important; }
"""

_JS = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("items-data").textContent);
  var rows = Array.prototype.slice.call(document.querySelectorAll("#items .item"));
  var search = document.getElementById("f-search");
  var pick = {
    scenario: document.getElementById("f-scenario"),
    fault: document.getElementById("f-fault"),
    check: document.getElementById("f-check"),
    verdict: document.getElementById("f-verdict")
  };
  var shown = document.getElementById("items-shown");
  function apply() {
    var text = search.value.toLowerCase();
    var s = pick.scenario.value, f = pick.fault.value, c = pick.check.value;
    var v = pick.verdict.value;
    var count = 0;
    rows.forEach(function (row) {
      var d = data[Number(row.getAttribute("data-i"))];
      var ok = (!s || d.s === s) && (!f || d.f.indexOf(f) !== -1) &&
        (!c || d.c.indexOf(c) !== -1) && (!v || d.v === v) &&
        (!text || d.q.indexOf(text) !== -1);
      row.hidden = !ok;
      if (ok) { count += 1; }
    });
    shown.textContent = "showing " + count + " of " + rows.length;
    shown.setAttribute("data-shown", String(count));
  }
  function reset() {
    search.value = "";
    Object.keys(pick).forEach(function (k) { pick[k].value = ""; });
  }
  function setOpen(open) {
    document.querySelectorAll("#items details").forEach(function (d) { d.open = open; });
  }
  document.getElementById("expand-all").addEventListener("click", function () { setOpen(true); });
  document.getElementById("collapse-all").addEventListener("click", function () {
    setOpen(false);
  });
  document.getElementById("f-clear").addEventListener("click", function () { reset(); apply(); });
  search.addEventListener("input", apply);
  Object.keys(pick).forEach(function (k) { pick[k].addEventListener("change", apply); });
  document.querySelectorAll("[data-filter-scenario]").forEach(function (cell) {
    cell.addEventListener("click", function (event) {
      event.preventDefault();
      reset();
      pick.scenario.value = cell.getAttribute("data-filter-scenario");
      pick.fault.value = cell.getAttribute("data-filter-fault");
      apply();
      document.getElementById("items-title").scrollIntoView();
    });
  });
  document.getElementById("item-filters").hidden = false;
  apply();
  document.documentElement.setAttribute("data-ready", "1");
})();
"""


class ItemRow(BaseModel):
    """One item as the page lists and counts it (kept for every item, passing ones too).

    ``expected`` is the category the item's ``expected_category`` check asked for (``none``
    for "no category"), or None when that check did not apply.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    nodeid: str
    scenario: str
    variant: str = "base"
    verdict: Verdict
    faults: list[str]
    failed_checks: list[str]
    category: str | None = None
    expected: str | None = None
    state: str | None = None

    @classmethod
    def of(cls, item: ReportItem) -> ItemRow:
        """The row of one report item.

        Args:
            item: the report item (whole: its checks give the expected category).

        Returns:
            The row.
        """
        # The session keeps a row per item: names shared by many rows are stored once.
        expected = expected_category(item)
        return cls.model_construct(
            nodeid=item.nodeid,
            scenario=sys.intern(item.scenario),
            variant=item.variant,
            verdict=item.verdict,
            faults=[sys.intern(k) for k in item.injected_keys()],
            failed_checks=[sys.intern(c.name) for c in item.checks if c.passed is False],
            category=None if item.category is None else sys.intern(item.category),
            expected=None if expected is None else sys.intern(expected),
            state=None if item.terminal_state is None else sys.intern(item.terminal_state),
        )


class PageIndex(BaseModel):
    """Every item of the report as a compact row: what the heatmaps count and the list shows.

    The pytest session adds each item as it streams the report, so the page counts every item
    while only the non-passing ones are kept whole.
    """

    model_config = ConfigDict(extra="forbid")

    rows: list[ItemRow] = []

    def add(self, item: ReportItem) -> None:
        """Add one item's row.

        Args:
            item: the report item.
        """
        self.rows.append(ItemRow.of(item))

    @classmethod
    def of(cls, items: Iterable[ReportItem]) -> PageIndex:
        """The index of these items.

        Args:
            items: the report items.

        Returns:
            The index.
        """
        return cls(rows=[ItemRow.of(i) for i in items])


def expected_category(item: ReportItem) -> str | None:
    """The category the item's ``expected_category`` check asked for, ``none`` for no category.

    Args:
        item: the report item.

    Returns:
        The expected category, or None when the check did not apply (or is not in the item).
    """
    check = next((c for c in item.checks if c.name == EXPECTED_CATEGORY_CHECK), None)
    if check is None or check.passed is None:
        return None
    if check.passed:
        return item.category or NONE_KEY
    found = _EXPECTED.search(check.reason)
    if found is None:
        return None
    return found.group(1) or NONE_KEY


@dataclass
class HeatCell:
    """The items of one scenario x fault key pair, per verdict."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0))

    @property
    def total(self) -> int:
        """How many items the cell holds."""
        return sum(self.counts.values())

    @property
    def verdict(self) -> str:
        """The cell's colour: fail when any item failed, else error when any erred, else pass."""
        for v in ("fail", "error"):
            if self.counts[v]:
                return v
        return "pass"


def fault_order(keys: Iterable[str]) -> list[str]:
    """Fault keys with ``none`` (the fault-free items) first, then alphabetically."""
    return sorted(set(keys), key=lambda k: (k != NONE_KEY, k))


def heatmap(rows: Iterable[ItemRow]) -> dict[str, dict[str, HeatCell]]:
    """Scenario -> fault key -> the items of that pair per verdict.

    An item that injected several fault keys counts in each of their cells (as the report's
    per-fault figures count it); an item that injected none counts under ``none``.

    Args:
        rows: the items' rows.

    Returns:
        The cells, scenarios sorted; a pair no item exercised has no cell.
    """
    grid: dict[str, dict[str, HeatCell]] = {}
    for row in rows:
        cells = grid.setdefault(row.scenario, {})
        for key in dict.fromkeys(row.faults):
            cells.setdefault(key, HeatCell()).counts[row.verdict] += 1
    return {s: grid[s] for s in sorted(grid)}


def confusion(rows: Iterable[ItemRow]) -> dict[str, dict[str, int]]:
    """Expected category -> reported category -> items (items with no expectation left out).

    Args:
        rows: the items' rows.

    Returns:
        The counts.
    """
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        if row.expected is None:
            continue
        got = row.category or NONE_KEY
        line = out.setdefault(row.expected, {})
        line[got] = line.get(got, 0) + 1
    return out


def ordered(rows: Iterable[ItemRow]) -> list[ItemRow]:
    """Rows failing first, then errors, then passes; by node id within each."""
    return sorted(rows, key=lambda r: (_RANK[r.verdict], r.nodeid))


def embed_json(value: object) -> str:
    """JSON text safe inside a ``<script type="application/json">`` element.

    ``<``, ``>`` and ``&`` are written as ``\\u`` escapes, so no string in the data can close
    the element (``</script>``) or open a comment (``<!--``); U+2028/2029 as well.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


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


def _heatmap_section(report: Report, index: PageIndex) -> str:
    """Scenario x fault key, each cell coloured by the verdicts of its items."""
    grid = heatmap(index.rows)
    if not grid:
        return ""
    keys = fault_order(k for cells in grid.values() for k in cells)
    head = "<th></th>" + "".join(f'<th class="key" scope="col">{_e(k)}</th>' for k in keys)
    body = []
    for scenario, cells in grid.items():
        tds = []
        for key in keys:
            cell = cells.get(key)
            if cell is None:
                tip = f"{scenario} × {key}: not exercised"
                tds.append(f'<td class="hm empty" title="{_e(tip)}"></td>')
                continue
            c = cell.counts
            tip = (
                f"{scenario} × {key}: {cell.total} item(s): {c['pass']} pass, {c['fail']} fail, "
                f"{c['error']} error"
            )
            shown = cell.total if cell.verdict == "pass" else c[cell.verdict]
            tds.append(
                f'<td class="hm {cell.verdict}" title="{_e(tip)}" data-pass="{c["pass"]}" '
                f'data-fail="{c["fail"]}" data-error="{c["error"]}"><a href="#items-title" '
                f'data-filter-scenario="{_e(scenario)}" data-filter-fault="{_e(key)}">'
                f"{shown}</a></td>"
            )
        body.append(f'<tr><th class="row" scope="row">{_e(scenario)}</th>{"".join(tds)}</tr>')
    legend = (
        '<div class="legend"><span><i class="fail"></i>an item failed</span>'
        '<span><i class="error"></i>an item could not be judged (error), none failed</span>'
        '<span><i class="pass"></i>every item passed</span>'
        '<span><i class="empty"></i>not exercised</span></div>'
    )
    return (
        '<h2 id="heatmap-title">Scenario × fault</h2>'
        '<p class="muted">Each cell holds the items of one scenario with one fault injected '
        "(<code>none</code>: fault-free). A red or amber cell shows how many items failed or "
        "erred, a green one how many passed; click a cell to list its items.</p>"
        f"{legend}"
        f'<div class="scroll"><table class="heat" id="heatmap"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _category_order(labels: Iterable[str]) -> list[str]:
    known = {k: n for n, k in enumerate(_CATEGORY_ORDER)}
    return sorted(set(labels), key=lambda k: (known.get(k, len(known)), k))


def _queue_section(report: Report, index: PageIndex) -> str:
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
    return "<h2>Review queue under load</h2>" + _table([*header, "SLA"], rows, "queue")


def _confusion_section(report: Report, index: PageIndex) -> str:
    """Expected category x reported category as a heatmap, the diagonal (agreement) marked."""
    matrix = confusion(index.rows)
    if not matrix:
        return ""
    labels = _category_order([*matrix, *(c for line in matrix.values() for c in line)])
    top = max(n for line in matrix.values() for n in line.values())
    head = "<th>expected \\ reported</th>" + "".join(
        f'<th scope="col">{_e(c)}</th>' for c in labels
    )
    body = []
    for expected in labels:
        line = matrix.get(expected, {})
        tds = []
        for got in labels:
            n = line.get(got, 0)
            cls = "diag" if got == expected else "off"
            # A log scale: 3 items next to 700 on the diagonal still show.
            alpha = f"{0.15 + 0.85 * math.log1p(n) / math.log1p(top):.2f}" if n else "0"
            tip = f"expected {expected}, reported {got}: {n} item(s)"
            tds.append(f'<td class="cm {cls}" style="--a:{alpha}" title="{_e(tip)}">{n or ""}</td>')
        body.append(f'<tr><th scope="row">{_e(expected)}</th>{"".join(tds)}</tr>')
    judged = sum(n for line in matrix.values() for n in line.values())
    agree = sum(matrix.get(c, {}).get(c, 0) for c in labels)
    left = len(index.rows) - judged
    return (
        '<h2 id="confusion-title">Expected × reported category</h2>'
        f'<p class="muted">Of <span id="confusion-judged">{judged}</span> items with an expected '
        f'category, <span id="confusion-agree">{agree}</span> reported it (the outlined '
        f"diagonal); off the diagonal, red, an item reported another category. {left} item(s) "
        "had no category expectation (no terminal state) and are left out.</p>"
        f'<table class="conf" id="confusion"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _tables_section(report: Report, index: PageIndex) -> str:
    """The figures behind the heatmaps as plain tables, folded away."""
    s = report.summary
    parts = [
        "<h3>By fault class</h3>",
        _table(
            ["fault", "items", "pass", "fail", "error"],
            ([k, v.total, v.passed, v.fail, v.error] for k, v in s.by_fault.items()),
        ),
        "<h3>By reported category</h3>",
        _table(["category", "items"], ([k, n] for k, n in s.by_category.items())),
        _confusion(report),
        "<h3>Coverage</h3>",
        _coverage(report),
    ]
    if s.by_check:
        parts += [
            "<h3>Checks</h3>",
            _table(
                ["check", "passed", "failed", "n/a"],
                ([n, k.passed, k.failed, k.not_applicable] for n, k in s.by_check.items()),
            ),
        ]
    return (
        '<details class="more" id="tables"><summary>Figures as tables: per fault class, per '
        "category, fault × category, coverage, per check</summary>"
        f"{''.join(parts)}</details>"
    )


def _figures_section(report: Report, index: PageIndex) -> str:
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
    parts = ["<h2>Recovery</h2>", _table(["figure", "value"], figures)]
    if s.injection:
        parts += [
            "<h2>Injection</h2>",
            _table(
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


def _options(id_: str, label: str, values: Iterable[str]) -> str:
    opts = "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)
    return (
        f'<select id="{id_}" aria-label="{label}"><option value="">all {label}s</option>'
        f"{opts}</select>"
    )


def _items_section(report: Report, index: PageIndex) -> str:
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
        + "".join(f'<p class="muted">{_e(n)}</p>' for n in notes)
        + toolbar
        + (legend if bad else '<p class="muted">No failures.</p>')
        + f'<div id="items">{"".join(html)}</div>'
        + f'<script type="application/json" id="items-data">{embed_json(data)}</script>'
    )


def _tags(row: ItemRow) -> str:
    return "".join(f'<span class="tag">{_e(k)}</span>' for k in row.faults if k != NONE_KEY)


def _pass_row(n: int, row: ItemRow) -> str:
    return (
        f'<div class="item pass" data-i="{n}"><span class="verdict pass">pass</span> '
        f"<code>{_e(row.nodeid)}</code> {_tags(row)}</div>"
    )


def _failure(n: int, row: ItemRow, item: ReportItem | None, *, detailed: bool) -> str:
    parts = [
        f'<details class="item failure {row.verdict}" data-i="{n}" data-verdict="{row.verdict}">',
        f'<summary><span class="verdict {row.verdict}">{row.verdict}</span> '
        f"<code>{_e(row.nodeid)}</code> {_tags(row)} "
        f'<span class="muted">{_e(row.category or "")} {_e(row.state or "")}</span></summary>',
    ]
    if item is None:
        checks = "".join(f"<li><b>{_e(c)}</b></li>" for c in row.failed_checks)
        if checks:
            parts.append(f"<p>Failed checks:</p><ul>{checks}</ul>")
        parts.append("</details>")
        return "".join(parts)
    failed = [c for c in item.checks if c.passed is False]
    checks = "".join(f"<li><b>{_e(c.name)}</b>: {_e(c.reason)}</li>" for c in failed)
    fired = ", ".join(f"{f.key} ({f.where})" if f.where else f.key for f in item.faults_fired)
    if checks:
        parts.append(f"<p>Failed checks:</p><ul>{checks}</ul>")
    if item.error:
        parts.append(f"<p>Error:</p><pre>{_e(item.error)}</pre>")
    parts.append(f"<p>Faults fired: {_e(fired or 'none')}</p>")
    if item.reproduce:
        parts.append(f"<p>Reproduce:</p><pre><code>{_e(item.reproduce)}</code></pre>")
    if detailed and item.events:
        parts.append(
            f"<p>The run, drawn from its event log:</p>{svg_timeline(item.events)}"
            f"<p>Timeline (the run's event log):</p>"
            f'<div class="scroll">{_events(item.events)}</div>'
        )
    elif detailed:
        parts.append(f"<p>Request timeline:</p>{_timeline(item.requests)}")
    parts.append("</details>")
    return "".join(parts)


_LANES = ("agent", "model", "tools", "reviewer")
_LANE_H = 26
_LEFT = 72
_TOP = 20


def _lane_of(e: EventEntry) -> str:
    if e.kind == "request":
        return "model" if e.surface == "model" else "tools"
    if e.kind == "commit":
        return "tools"
    if e.kind == "delivery":
        return "reviewer"
    return "agent"


def _describe(e: EventEntry, t0: float) -> str:
    when = f"#{e.seq} at +{e.t - t0:g} s: "
    if e.kind == "request":
        outcome = e.error or (str(e.status) if e.status is not None else "no answer")
        faults = f"; faults: {', '.join(e.faults)}" if e.faults else ""
        return f"{when}{e.tool or e.surface or ''} {e.method} {e.url} -> {outcome}{faults}"
    if e.kind == "commit":
        return f"{when}effect of {e.tool} committed (key {e.idempotency_key or 'none'})"
    if e.kind == "delivery":
        return f"{when}reviewer: {e.verdict} {e.approval_id} for {e.tool}"
    if e.kind == "crash":
        return f"{when}crash at {e.point} ({e.where or ''})"
    if e.kind == "restart":
        return f"{when}restart" + (" in a fresh adapter" if e.fresh else "")
    return f"{when}guard refused {e.what} {e.target or ''}"


def svg_timeline(events: Sequence[EventEntry]) -> str:
    """The run drawn as lanes (agent, model, tools, reviewer) along its event log, in order.

    Each event is a mark at its position in the log (the fake clock often stands still, so
    order, not time, spaces them; each mark's tooltip gives its time). Faulted requests are
    ringed in red, crashes are red dashed lines across the lanes, refused connections red
    crosses on the agent lane.

    Args:
        events: the item's event log.

    Returns:
        An inline ``<svg>`` element (no scripts, no external references).
    """
    shown = list(events[:TIMELINE_EVENTS_CAP])
    if not shown:
        return ""
    t0 = shown[0].t
    step = max(6.0, min(22.0, 1000.0 / len(shown)))
    # Room on the right for the label of a fault near the end.
    width = int(_LEFT + step * len(shown) + (160 if any(e.faults for e in shown) else 24))
    height = _TOP + _LANE_H * len(_LANES) + 18
    y = {lane: _TOP + _LANE_H * n + _LANE_H // 2 for n, lane in enumerate(_LANES)}
    out = [
        f'<svg class="tl" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="timeline of the run">'
    ]
    for lane in _LANES:
        out.append(
            f'<text x="6" y="{y[lane] + 4}">{lane}</text>'
            f'<line class="lane" x1="{_LEFT - 6}" y1="{y[lane]}" x2="{width - 8}" '
            f'y2="{y[lane]}"/>'
        )
    # The agent is alive from the first event to a crash, and again from a restart.
    x_of = [_LEFT + step * n + step / 2 for n in range(len(shown))]
    start: float | None = x_of[0]
    for n, e in enumerate(shown):
        if e.kind == "crash" and start is not None:
            out.append(_alive(start, x_of[n], y["agent"]))
            start = None
        elif e.kind == "restart" and start is None:
            start = x_of[n]
    if start is not None:
        out.append(_alive(start, x_of[-1], y["agent"]))
    for n, e in enumerate(shown):
        x, yy = x_of[n], y[_lane_of(e)]
        tip = f"<title>{_e(_describe(e, t0))}</title>"
        out.append(_mark(e, x, yy, tip, height))
        if n % 10 == 0:
            out.append(f'<text x="{x - 3:.1f}" y="{height - 4}">{e.seq}</text>')
    out.append("</svg>")
    note = ""
    if len(events) > len(shown):
        note = (
            f'<p class="muted">The first {len(shown)} of {len(events)} events are drawn; the '
            "table below lists them all.</p>"
        )
    return "".join(out) + note


def _alive(x1: float, x2: float, y: int) -> str:
    return (
        f'<rect class="alive" x="{x1 - 4:.1f}" y="{y - 7}" width="{x2 - x1 + 8:.1f}" '
        'height="14" rx="4"/>'
    )


def _mark(e: EventEntry, x: float, y: int, tip: str, height: int) -> str:
    if e.kind == "request":
        bad = bool(e.error) or (e.status is not None and e.status >= 400) or e.status is None
        cls = "bad" if bad else ("m" if e.surface == "model" else "t")
        shape = (
            f'<circle class="{cls}" cx="{x:.1f}" cy="{y}" r="5">{tip}</circle>'
            if e.surface == "model"
            else f'<rect class="{cls}" x="{x - 4.5:.1f}" y="{y - 4.5}" width="9" '
            f'height="9">{tip}</rect>'
        )
        ring = ""
        if e.faults:
            ring = (
                f'<circle class="fault" cx="{x:.1f}" cy="{y}" r="8.5">{tip}</circle>'
                f'<text class="fault-label" x="{x + 10:.1f}" y="{y - 6}">{_e(e.faults[0])}</text>'
            )
        return shape + ring
    if e.kind == "commit":
        pts = f"{x:.1f},{y - 6} {x + 6:.1f},{y} {x:.1f},{y + 6} {x - 6:.1f},{y}"
        return f'<polygon class="commit" points="{pts}">{tip}</polygon>'
    if e.kind == "delivery":
        cls = "deny" if (e.verdict or "").startswith("den") else "rv"
        return f'<circle class="{cls}" cx="{x:.1f}" cy="{y}" r="5.5">{tip}</circle>'
    if e.kind == "crash":
        return (
            f'<line class="crash" x1="{x:.1f}" y1="{_TOP - 6}" x2="{x:.1f}" y2="{height - 16}">'
            f'{tip}</line><text class="crash-label" x="{x + 3:.1f}" y="{_TOP - 8}">crash</text>'
        )
    if e.kind == "restart":
        pts = f"{x - 5:.1f},{y - 6} {x + 6:.1f},{y} {x - 5:.1f},{y + 6}"
        return f'<polygon class="restart" points="{pts}">{tip}</polygon>'
    d = 5
    return (
        f'<g class="blocked"><line x1="{x - d:.1f}" y1="{y - d}" x2="{x + d:.1f}" y2="{y + d}"/>'
        f'<line x1="{x - d:.1f}" y1="{y + d}" x2="{x + d:.1f}" y2="{y - d}"/>{tip}</g>'
    )


Section = Callable[[Report, PageIndex], str]
SECTIONS: tuple[Section, ...] = (
    _heatmap_section,
    _confusion_section,
    _items_section,
    _figures_section,
    _queue_section,
    _tables_section,
)
"""The page's sections, in order; a new section is a function added here."""


def render_html(
    report: Report,
    *,
    title: str = "shakeout fault-injection report",
    index: PageIndex | None = None,
) -> str:
    """Render the report as one HTML document that needs nothing but itself.

    A Content-Security-Policy forbids every fetch; the one inline script is allowed by its hash.
    Without scripts the page still shows every item; the filters need the script.

    Args:
        report: the report; its summary, and its non-passing items drawn in full.
        title: the page title and heading.
        index: a row per item of the whole report; None builds it from ``report.items`` (the
            pytest session passes it, as its ``report`` holds only the non-passing items).

    Returns:
        The HTML text.
    """
    if index is None:
        index = PageIndex.of(report.items)
    digest = base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    head = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">seed <code id="seed">{report.seed}</code> · schema v'
        f"{_e(report.schema_version)}</p>",
        _cards(report),
    ]
    body = head + [section(report, index) for section in SECTIONS]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}<script>{_JS}</script></body></html>\n"
    )


def write_html(
    report: Report,
    path: str | Path,
    redactor: Redactor | None = None,
    index: PageIndex | None = None,
) -> Path:
    """Write the HTML page atomically, never through a symbolic link (see harness.output).

    Args:
        report: the report.
        path: destination; parent directories are created.
        redactor: masks secrets left in the report's text (None: written as it is).
        index: a row per item of the whole report (see :func:`render_html`).

    Returns:
        The path written.

    Raises:
        OutputError: the destination was refused or could not be written.
    """
    if redactor is not None:
        report = redact_model(report, redactor)
        if index is not None:
            index = redact_model(index, redactor)
    return write_text(path, render_html(report, index=index), "HTML report")
