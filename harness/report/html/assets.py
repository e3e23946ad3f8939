"""The page's stylesheet and script, inline: the page loads nothing.

Imports nothing of the package; :mod:`harness.report.html.page` hashes :data:`JS` for the page's
Content-Security-Policy.
"""

from __future__ import annotations

CSS = """
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


JS = """
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
