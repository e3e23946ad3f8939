"""Tests of the HTML report: its section builders, and the page in headless Chromium (counts in
the DOM, filters and search, the heatmap in a screenshot, no console errors)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from browser import Browser
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import harness.report.html as html_module
import harness.report.html.items as items_module
import harness.report.html.timeline as timeline_module
from harness.adapter import Outcome, RunState
from harness.record import RunRecord
from harness.report.html import (
    HeatCell,
    PageIndex,
    confusion,
    embed_json,
    expected_category,
    heatmap,
    ordered,
    render_html,
    svg_timeline,
    write_html,
)
from harness.report.model import CheckOutcome, EventEntry, Report, ReportItem
from harness.scenario.expect import Expectation
from harness.verdict.terminal import ExpectedCategory

REPO = Path(__file__).resolve().parents[3]
CHROMIUM_TIMEOUT_S = 60
CONSOLE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)\] (.*)")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
)


def item(nodeid: str, verdict: str = "pass", **kw: Any) -> dict[str, Any]:
    return {"nodeid": nodeid, "scenario": kw.pop("scenario", "refund"), "verdict": verdict, **kw}


REPORT = Report.build(
    [
        item(
            "scenarios/refund.yaml::refund[tool_http_503@get_order#1]",
            "fail",
            category="tool",
            faults_injected=[{"key": "tool_http_503", "surface": "tool", "transient": True}],
            faults_fired=[{"key": "tool_http_503", "surface": "tool", "where": "get_order"}],
            checks=[{"name": "transient_recovered", "passed": False, "reason": "gave up <early>"}],
            reproduce="pytest 'scenarios/refund.yaml::refund[tool_http_503@get_order#1]'",
            requests=[
                {"seq": 1, "surface": "model", "method": "POST", "url": "http://model/v1/chat"},
                {
                    "seq": 2,
                    "surface": "tool",
                    "tool": "get_order",
                    "method": "GET",
                    "url": "http://tools/orders/7",
                    "status": 503,
                    "faults": ["tool_http_503"],
                },
            ],
        ),
        item("scenarios/refund.yaml::refund[base]"),
        item(
            "scenarios/refund.yaml::refund[model_invalid_json@classify#1]",
            faults_injected=[{"key": "model_invalid_json", "surface": "model"}],
        ),
        item(
            "scenarios/<bad>.yaml", "error", scenario="<bad>", error="collection failed: <script>"
        ),
    ],
    seed=1234,
)


CHROMIUM_PATH = Path("/usr/bin/chromium")


def chromium() -> str:
    found = shutil.which("chromium") or (str(CHROMIUM_PATH) if CHROMIUM_PATH.exists() else None)
    if found:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            "chromium is not installed and CI=true: the HTML report must be checked in a browser "
            "on CI; run scripts/install-chromium.sh in the CI image"
        )
    pytest.skip("chromium is not installed; run scripts/install-chromium.sh to test the HTML page")


def render_in_browser(page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """The DOM after scripts ran, and the console messages Chromium logged."""
    proc = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc.stdout, CONSOLE.findall(proc.stderr)


def test_page_renders_with_counts_and_no_console_errors(tmp_path: Path) -> None:
    page = write_html(REPORT, tmp_path / "report.html")
    dom, console = render_in_browser(page, tmp_path)
    assert console == [], f"the page logged to the console: {console}"
    for key, n in [("total", 4), ("pass", 2), ("fail", 1), ("error", 1)]:
        assert f'id="count-{key}" data-count="{n}">{n}</span>' in dom
    assert 'id="failure-count">2<' in dom
    assert 'data-ready="1"' in dom, "the inline script did not run (blocked by the CSP?)"
    assert 'data-shown="4">showing 4 of 4</span>' in dom, "every item is listed, passing too"
    assert '<span id="coverage-exercised">1</span> of <span id="coverage-planned">2</span>' in dom
    assert "http://tools/orders/7" in dom
    assert "&lt;script&gt;" in dom


def test_console_errors_are_caught(tmp_path: Path) -> None:
    # The control for the test above: a page that throws must show up in what we read.
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>notDefined();</script></body></html>")
    _, console = render_in_browser(page, tmp_path)
    assert any("notDefined is not defined" in line for line in console), console


def test_page_is_self_contained() -> None:
    html = render_html(REPORT)
    assert "Content-Security-Policy" in html
    assert "default-src 'none'" in html
    external = re.findall(r"""(?:src|href)\s*=\s*["']?[a-z]+:""", html, flags=re.I)
    assert external == []
    assert "@import" not in html
    assert "url(" not in html
    assert html.count("<script>") == 1


def test_page_escapes_everything_from_the_report() -> None:
    html = render_html(REPORT)
    assert "<bad>" not in html
    assert "&lt;bad&gt;" in html
    assert "gave up &lt;early&gt;" in html


def test_failure_shows_its_request_timeline_with_the_faulted_request_marked() -> None:
    html = render_html(REPORT)
    assert (
        '<tr class="faulted"><td class="num">2</td><td>tool</td><td>get_order</td><td>GET</td>'
        "<td><code>http://tools/orders/7</code></td><td>503</td><td>tool_http_503</td></tr>"
    ) in html


def test_failure_shows_the_event_log_as_its_timeline() -> None:
    events = [
        {
            "seq": 1,
            "kind": "request",
            "surface": "tool",
            "tool": "issue_refund",
            "method": "POST",
            "url": "http://tools/refunds",
            "status": 201,
        },
        {
            "seq": 2,
            "kind": "commit",
            "tool": "issue_refund",
            "request_seq": 1,
            "idempotency_key": "k1",
            "body": '{"amount":4999}',
        },
        {
            "seq": 3,
            "kind": "delivery",
            "tool": "issue_refund",
            "approval_id": "apr-1",
            "verdict": "approve",
            "arguments": '{"amount":4999}',
            "expires_at": 3600.0,
        },
        {"seq": 4, "kind": "crash", "point": "after_checkpoint", "where": "act"},
        {"seq": 5, "kind": "restart", "fresh": True},
        {"seq": 6, "kind": "blocked", "what": "connect", "target": "203.0.113.1:443"},
    ]
    failing = item("t::early", verdict="fail", events=events)
    html = render_html(Report.build([failing], seed=1))
    assert "s event log)" in html
    assert "effect committed by request #1" in html
    assert "approve apr-1 for issue_refund" in html
    assert "crash at after_checkpoint" in html
    assert "restart in a fresh adapter" in html
    assert "expires at +3600 s" in html  # fake-clock times relative to the run's first event
    assert "refused connect" in html


def test_no_failures() -> None:
    html = render_html(Report.build([item("t::a")], seed=1))
    assert "No failures." in html
    assert 'id="count-fail" data-count="0"' in html


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_missing_chromium_fails_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM_PATH", Path("/nonexistent/chromium"))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="chromium is not installed and CI=true"):
        chromium()


def test_missing_chromium_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM_PATH", Path("/nonexistent/chromium"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"run scripts/install-chromium\.sh"):
        chromium()


def test_the_session_view_renders_like_the_whole_report() -> None:
    # The pytest session keeps only the non-passing items whole (see ReportPlugin), and an
    # index row for every item: the page is the same as from the whole report.
    view = Report(
        seed=REPORT.seed,
        plan=REPORT.plan,
        summary=REPORT.summary,
        items=[i for i in REPORT.items if i.verdict != "pass"],
    )
    assert render_html(view, index=PageIndex.of(REPORT.items)) == render_html(REPORT)


# --------------------------------------------------------------------------- section builders

VERDICT = st.sampled_from(["pass", "fail", "error"])
KEYS = st.sampled_from(["tool_http_503", "model_invalid_json", "crash_after_effect", "stream_cut"])


@st.composite
def report_items(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 25))
    out = []
    for k in range(n):
        keys = draw(st.lists(KEYS, max_size=2))
        out.append(
            item(
                f"s.yaml::x[{k}]",
                draw(VERDICT),
                scenario=draw(st.sampled_from(["refund", "lookup", "<b>email</b>"])),
                faults_injected=[{"key": key, "surface": "tool"} for key in keys],
            )
        )
    return out


@given(report_items())
@settings(max_examples=60, deadline=None)
def test_heatmap_counts_every_item_once_per_fault_it_injected(items: list[dict[str, Any]]) -> None:
    report = Report.build(items, seed=1)
    grid = heatmap(PageIndex.of(report.items).rows)
    for scenario, cells in grid.items():
        for key, cell in cells.items():
            mine = [i for i in report.items if i.scenario == scenario and key in i.injected_keys()]
            assert cell.total == len(mine) > 0
            for v in ("pass", "fail", "error"):
                assert cell.counts[v] == sum(i.verdict == v for i in mine)
    # Column totals are the report's own per-fault figures.
    for key, counts in report.summary.by_fault.items():
        column = [cells[key] for cells in grid.values() if key in cells]
        assert sum(c.counts["pass"] for c in column) == counts.passed
        assert sum(c.counts["fail"] for c in column) == counts.fail
        assert sum(c.counts["error"] for c in column) == counts.error
    # And the page carries the same counts, cell by cell.
    page = render_html(report)
    cells_in_page = re.findall(r'data-pass="(\d+)" data-fail="(\d+)" data-error="(\d+)"', page)
    assert len(cells_in_page) == sum(len(cells) for cells in grid.values())
    assert sum(int(p) + int(f) + int(e) for p, f, e in cells_in_page) == sum(
        c.total for cells in grid.values() for c in cells.values()
    )


@pytest.mark.parametrize(
    ("counts", "colour"),
    [
        ({"pass": 3}, "pass"),
        ({"pass": 3, "error": 1}, "error"),
        ({"pass": 3, "error": 1, "fail": 1}, "fail"),
        ({"fail": 2}, "fail"),
    ],
)
def test_a_cell_is_coloured_by_its_worst_verdict(counts: dict[str, int], colour: str) -> None:
    cell = HeatCell()
    cell.counts.update(counts)
    assert cell.verdict == colour


def test_heatmap_cells_link_to_their_items_and_show_the_failing_count() -> None:
    html = render_html(REPORT)
    assert (
        '<td class="hm fail" title="refund × tool_http_503: 1 item(s): 0 pass, 1 fail, 0 error" '
        'data-pass="0" data-fail="1" data-error="0"><a href="#items-title" '
        'data-filter-scenario="refund" data-filter-fault="tool_http_503">1</a></td>'
    ) in html
    assert '<td class="hm empty" title="&lt;bad&gt; × tool_http_503: not exercised">' in html


def _category_item(nodeid: str, got: str | None, want: str | None) -> ReportItem:
    """An item whose expected_category outcome comes from the real check."""
    state = RunState.FAILED if got else RunState.COMPLETED
    record = RunRecord(
        scenario="s",
        variant="base",
        seed=1,
        faults=(),
        exchanges=(),
        firings=(),
        effects=(),
        outcomes=(Outcome("run-1", state, got, "boom" if got else None, None),),
    )
    v = ExpectedCategory().evaluate(record, Expectation(category=want, check_category=True))
    return ReportItem(
        nodeid=nodeid,
        scenario="s",
        verdict="pass" if v.passed else "fail",
        category=got,
        checks=[CheckOutcome(name=v.name, passed=v.passed, reason=v.reason)],
    )


@pytest.mark.parametrize(
    ("got", "want", "expected"),
    [
        ("tool", "tool", "tool"),
        ("model", "tool", "tool"),
        ("tool", None, "none"),
        (None, None, "none"),
        (None, "model", "model"),
    ],
)
def test_expected_category_reads_the_real_checks_verdict(
    got: str | None, want: str | None, expected: str
) -> None:
    assert expected_category(_category_item("t::a", got, want)) == expected


def test_expected_category_is_none_when_the_check_did_not_apply() -> None:
    bare = ReportItem(nodeid="t::a", scenario="s", verdict="error")
    assert expected_category(bare) is None
    skipped = bare.model_copy(
        update={"checks": [CheckOutcome(name="expected_category", passed=None, reason="n/a")]}
    )
    assert expected_category(skipped) is None


def test_confusion_heatmap_marks_the_diagonal() -> None:
    items = [
        _category_item("t::1", "tool", "tool"),
        _category_item("t::2", "tool", "tool"),
        _category_item("t::3", "model", "tool"),
        _category_item("t::4", None, None),
        ReportItem(nodeid="t::5", scenario="s", verdict="error"),
    ]
    rows = PageIndex.of(items).rows
    assert confusion(rows) == {"tool": {"tool": 2, "model": 1}, "none": {"none": 1}}
    html = render_html(Report.build(items, seed=1))
    assert '<span id="confusion-judged">4</span>' in html
    assert '<span id="confusion-agree">3</span>' in html
    assert (
        'class="cm diag" style="--a:1.00" title="expected tool, reported tool: 2 item(s)">2<'
        in (html)
    )
    assert (
        'class="cm off" style="--a:0.69" title="expected tool, reported model: 1 item(s)">1<'
        in (html)
    )
    assert "1 item(s) had no category expectation" in html


def test_items_are_listed_failing_first() -> None:
    rows = ordered(PageIndex.of(REPORT.items).rows)
    assert [r.verdict for r in rows] == ["fail", "error", "pass", "pass"]
    html = render_html(REPORT)
    positions = [html.index(r.nodeid.replace("<", "&lt;").replace(">", "&gt;")) for r in rows]
    assert positions == sorted(positions)


HOSTILE = '</script><script>alert(1)</script><!-- \u2028 & "quoted"'


def test_embedded_json_cannot_close_its_script_element() -> None:
    text = embed_json({"q": HOSTILE})
    assert "<" not in text
    assert ">" not in text
    assert "&" not in text
    assert "\u2028" not in text
    assert json.loads(text) == {"q": HOSTILE}


def test_filter_data_of_hostile_items_stays_data() -> None:
    hostile = item(f"s.yaml::x[{HOSTILE}]", "fail", scenario=HOSTILE, category=HOSTILE)
    html = render_html(Report.build([hostile], seed=1))
    assert html.count("</script>") == 2, "only the page's own two script elements close"
    assert "<script>alert" not in html
    assert html.count("<!--") == 0
    data = html.split('<script type="application/json" id="items-data">', 1)[1]
    data = data.split("</script>", 1)[0]
    (row,) = json.loads(data)
    assert row["s"] == HOSTILE
    assert HOSTILE.lower() in row["q"]


def test_svg_timeline_puts_each_event_on_its_lane() -> None:
    events = [
        EventEntry(seq=1, kind="request", surface="model", method="POST", url="m", status=200),
        EventEntry(
            seq=2,
            kind="request",
            surface="tool",
            tool="get_order",
            method="GET",
            url="t",
            status=503,
            faults=["tool_http_503"],
        ),
        EventEntry(seq=3, kind="commit", tool="issue_refund", request_seq=2),
        EventEntry(seq=4, kind="delivery", tool="issue_refund", verdict="deny", approval_id="a"),
        EventEntry(seq=5, kind="crash", point="after_effect", where="act"),
        EventEntry(seq=6, kind="restart", fresh=True),
        EventEntry(seq=7, kind="blocked", what="connect", target="<203.0.113.1>"),
    ]
    svg = svg_timeline(events)
    lanes = {m[2]: float(m[1]) for m in re.finditer(r'<text x="6" y="([\d.]+)">(\w+)</text>', svg)}
    assert list(lanes) == ["agent", "model", "tools", "reviewer"]

    def y_of(pattern: str) -> float:
        found = re.search(pattern, svg)
        assert found, pattern
        return float(found.group(1)) + 4  # lane labels sit 4 px below the lane's line

    assert y_of(r'<circle class="m" cx="[\d.]+" cy="([\d.]+)"') == lanes["model"]
    assert y_of(r'<rect class="bad" x="[\d.]+" y="([\d.]+)"') == lanes["tools"] - 4.5
    assert y_of(r'<circle class="deny" cx="[\d.]+" cy="([\d.]+)"') == lanes["reviewer"]
    assert svg.count('class="fault"') == 1, "the faulted request is ringed"
    assert ">tool_http_503</text>" in svg
    assert svg.count('class="crash"') == 1
    assert svg.count('class="restart"') == 1
    assert svg.count('class="blocked"') == 1
    assert svg.count('class="alive"') == 2, "alive before the crash and after the restart"
    assert "&lt;203.0.113.1&gt;" in svg
    assert "<203" not in svg


def test_long_runs_and_many_failures_are_capped_with_a_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The caps are read where they are used: the items list and the timeline.
    monkeypatch.setattr(items_module, "DETAIL_CAP", 2)
    monkeypatch.setattr(items_module, "PASS_ROWS_CAP", 3)
    monkeypatch.setattr(timeline_module, "TIMELINE_EVENTS_CAP", 5)
    events = [
        {"seq": n, "kind": "request", "surface": "model", "method": "POST", "url": "m"}
        for n in range(1, 9)
    ]
    items = [item(f"t::f{k}", "fail", events=events) for k in range(4)]
    items += [item(f"t::p{k}") for k in range(5)]
    html = render_html(Report.build(items, seed=1))
    assert html.count('<svg class="tl"') == 2
    assert html.count("The first 5 of 8 events are drawn") == 2
    assert "The first 2 of 4 failing items are drawn in full" in html
    assert "2 passing item(s) are not listed (the first 3 are)" in html
    assert html.count('class="item pass"') == 3
    assert html.count('class="item failure fail"') == 4, "every failing item is listed"


def test_a_large_report_stays_a_page() -> None:
    # 10k items, 2k failing with a 30-event run each: timelines for the first DETAIL_CAP only.
    events = [
        {"seq": n, "kind": "request", "surface": "tool", "method": "GET", "url": "http://t/o"}
        for n in range(1, 31)
    ]
    items = [
        item(
            f"s{k % 20}.yaml::s[{k}]",
            "fail" if k % 5 == 0 else "pass",
            scenario=f"s{k % 20}",
            faults_injected=[{"key": f"fault_{k % 40}", "surface": "tool"}],
            events=events if k % 5 == 0 else [],
        )
        for k in range(10_000)
    ]
    html = render_html(Report.build(items, seed=1))
    assert html.count('<svg class="tl"') == html_module.DETAIL_CAP
    assert html.count('class="hm ') == 20 * 40  # every pair, exercised or not
    assert len(html) < 12_000_000, f"{len(html)} characters"


# --------------------------------------------------------------------------- in Chromium


def chromium_report() -> Report:
    """Three scenarios x four faults with every verdict, a failed check to filter by."""
    items = []
    for scenario in ("refund", "lookup", "email"):
        items.append(item(f"{scenario}.yaml::{scenario}", scenario=scenario))
        for n, key in enumerate(("tool_http_503", "model_invalid_json", "crash_after_effect")):
            verdict = ["fail", "pass", "error"][(n + len(scenario)) % 3]
            failed = [{"name": "recovered", "passed": False, "reason": "gave up"}]
            items.append(
                item(
                    f"{scenario}.yaml::{scenario}[{key}]",
                    verdict,
                    scenario=scenario,
                    category="tool" if verdict == "fail" else None,
                    faults_injected=[{"key": key, "surface": "tool"}],
                    checks=failed if verdict == "fail" else [],
                    events=[
                        {
                            "seq": 1,
                            "kind": "request",
                            "surface": "model",
                            "method": "POST",
                            "url": "http://model/v1",
                            "status": 200,
                        },
                        {
                            "seq": 2,
                            "kind": "request",
                            "surface": "tool",
                            "tool": "get_order",
                            "method": "GET",
                            "url": "http://tools/o",
                            "status": 503,
                            "faults": [key],
                        },
                        {"seq": 3, "kind": "crash", "point": "after_effect", "where": "act"},
                        {"seq": 4, "kind": "restart", "fresh": True},
                    ],
                )
            )
    return Report.build(items, seed=5)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    b = Browser(chromium(), tmp_path / "chromium-profile", CHROMIUM_TIMEOUT_S)
    b.send(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "light"}]},
    )
    yield b
    b.close()


VISIBLE_ROWS = (
    "Array.from(document.querySelectorAll('#items .item'))"
    ".filter(e => e.offsetParent !== null).length"
)


def choose(b: Browser, select: str, value: str) -> None:
    """Pick an option of a select element as a user does (the value, then a change event)."""
    b.eval(
        f"(() => {{ const s = document.getElementById({json.dumps(select)});"
        f"s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change')); }})()"
    )
    assert b.eval(f"document.getElementById({json.dumps(select)}).value") == value


def test_filters_and_search_narrow_the_items(browser: Browser, tmp_path: Path) -> None:
    report = chromium_report()
    browser.open(write_html(report, tmp_path / "r.html"))
    assert browser.eval("document.documentElement.getAttribute('data-ready')") == "1"
    total = len(report.items)
    assert browser.eval(VISIBLE_ROWS) == total
    choose(browser, "f-verdict", "fail")
    fails = [i for i in report.items if i.verdict == "fail"]
    assert browser.eval(VISIBLE_ROWS) == len(fails) > 0
    assert browser.eval("document.getElementById('items-shown').textContent") == (
        f"showing {len(fails)} of {total}"
    )
    choose(browser, "f-scenario", "refund")
    assert browser.eval(VISIBLE_ROWS) == sum(i.scenario == "refund" for i in fails)
    browser.click("#f-clear")
    assert browser.eval(VISIBLE_ROWS) == total
    choose(browser, "f-check", "recovered")
    assert browser.eval(VISIBLE_ROWS) == len(fails), "every failing item failed 'recovered'"
    choose(browser, "f-check", "")
    choose(browser, "f-fault", "crash_after_effect")
    assert browser.eval(VISIBLE_ROWS) == 3
    browser.click("#f-clear")
    browser.type("#f-search", "LOOKUP.yaml::lookup[model")
    assert browser.eval(VISIBLE_ROWS) == 1, "the search is case-insensitive, on the node id"
    assert browser.console_errors() == []


def test_a_heatmap_cell_lists_its_items(browser: Browser, tmp_path: Path) -> None:
    report = chromium_report()
    browser.open(write_html(report, tmp_path / "r.html"))
    browser.click('#heatmap a[data-filter-scenario="email"][data-filter-fault="tool_http_503"]')
    assert browser.eval("document.getElementById('f-scenario').value") == "email"
    assert browser.eval("document.getElementById('f-fault').value") == "tool_http_503"
    assert browser.eval(VISIBLE_ROWS) == 1
    assert (
        browser.eval("document.querySelector('#items .item:not([hidden]) code').textContent")
        == "email.yaml::email[tool_http_503]"
    )
    assert browser.console_errors() == []


def test_without_scripts_the_page_shows_every_item(browser: Browser, tmp_path: Path) -> None:
    browser.send("Emulation.setScriptExecutionDisabled", {"value": True})
    report = chromium_report()
    browser.open(write_html(report, tmp_path / "r.html"))
    assert browser.eval("document.documentElement.getAttribute('data-ready')") is None
    assert browser.eval(VISIBLE_ROWS) == len(report.items)
    assert browser.eval("document.getElementById('item-filters').offsetParent") is None, (
        "controls that cannot work without the script are not shown"
    )


def test_the_page_breaks_no_rule_of_its_policy(browser: Browser, tmp_path: Path) -> None:
    # The control: a page whose script is not the hashed one is blocked, and that is seen.
    page = write_html(chromium_report(), tmp_path / "r.html")
    text = page.read_text().replace('"use strict";', '"use strict"; var tampered = 1;', 1)
    tampered = tmp_path / "tampered.html"
    tampered.write_text(text)
    browser.open(tampered)
    assert browser.eval("document.documentElement.getAttribute('data-ready')") is None
    assert any("Content Security Policy" in e for e in browser.console_errors())


COLOURS = {"fail": (207, 34, 46), "pass": (45, 164, 78), "error": (212, 167, 44)}


def colour_pixels(png: bytes) -> dict[str, int]:
    """How many pixels of the image are (nearly) each verdict colour of the heatmap."""
    raw = Image.open(io.BytesIO(png)).convert("RGB").tobytes()
    counts = dict.fromkeys(COLOURS, 0)
    for n in range(0, len(raw), 3):
        pixel = raw[n : n + 3]
        for name, rgb in COLOURS.items():
            if all(abs(a - b) <= 6 for a, b in zip(pixel, rgb, strict=True)):
                counts[name] += 1
    return counts


def heatmap_clip(b: Browser) -> dict[str, float]:
    box: dict[str, float] = b.eval(
        "(() => { const r = document.getElementById('heatmap').getBoundingClientRect();"
        "return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}; })()"
    )
    return box


def test_screenshot_shows_the_heatmap_in_its_colours(browser: Browser, tmp_path: Path) -> None:
    report = chromium_report()
    browser.open(write_html(report, tmp_path / "r.html"))
    clip = heatmap_clip(browser)
    assert clip["width"] > 100
    assert clip["height"] > 50
    png = browser.screenshot(clip)
    (tmp_path / "heatmap.png").write_bytes(png)
    found = colour_pixels(png)
    cells = {
        v: sum(
            1
            for c in heatmap(PageIndex.of(report.items).rows).values()
            for x in c.values()
            if x.verdict == v
        )
        for v in COLOURS
    }
    assert all(n > 0 for n in cells.values())
    for verdict, n in cells.items():
        # a 26 px cell with rounded corners and its count printed on it: at least half of it
        assert found[verdict] >= n * 26 * 26 // 2, (verdict, found, cells)
    # The control: the same place with the heatmap hidden shows none of its colours.
    browser.eval("document.getElementById('heatmap').style.visibility = 'hidden'")
    assert colour_pixels(browser.screenshot(clip)) == dict.fromkeys(COLOURS, 0)


def test_a_broken_agent_turns_its_cells_red_and_the_correct_one_stays_green(
    pytester: pytest.Pytester,
) -> None:
    # End to end through the plugin: the mini agent retries permanent 4xx answers when told to
    # (its retry_permanent defect); the page of the session marks exactly those cells failed.
    happy = yaml.safe_load((REPO / "scenarios" / "refund_happy.yaml").read_text())
    for k in ("matrix", "input_matrix", "crash_matrix"):
        happy.pop(k, None)
    matrix = {"faults": ["tool_http_404", "tool_http_503"], "targets": ["get_order"], "calls": [1]}
    scenarios = pytester.path / "scenarios"
    scenarios.mkdir()
    for name, defects in (("ok", []), ("broken", ["retry_permanent"])):
        data = {
            **happy,
            "name": name,
            "agent": "toy_agents.mini:build_adapter",
            "agent_config": {"defects": defects},
            "matrix": matrix,
        }
        (scenarios / f"{name}.yaml").write_text(yaml.safe_dump(data))
    pytester.makeini(f"[pytest]\npythonpath = {REPO / 'tests' / 'lib'}\n")
    page = pytester.path / "r.html"
    result = pytester.runpytest("scenarios", "-p", "no:cacheprovider", f"--chaos-html={page}")
    # 503 cells: one 503 then an answer, and 503 on all three attempts (a permanent failure).
    result.assert_outcomes(passed=6, failed=2)
    html = page.read_text()
    colour = {
        title: verdict
        for verdict, title in re.findall(r'<td class="hm (\w+)" title="(\w+ × \w+):', html)
    }
    assert colour == {
        "broken × none": "pass",
        "broken × tool_http_404": "fail",
        "broken × tool_http_503": "fail",
        "ok × none": "pass",
        "ok × tool_http_404": "pass",
        "ok × tool_http_503": "pass",
    }
    assert html.count('<svg class="tl"') == 2, "each failing item's run is drawn"
    assert '<td class="hm fail" title="broken × tool_http_503: 2 item(s): 1 pass, 1 fail' in html
