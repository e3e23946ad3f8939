"""Tests of the HTML report, rendered in headless Chromium: counts in the DOM, no console errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.html import render_html, write_html
from harness.report_model import Report

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
    assert 'data-shown="2">showing 2 of 2</span>' in dom
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


def test_the_summary_and_the_non_passing_items_are_all_it_reads() -> None:
    # The pytest session renders from a report that holds only those (see ReportPlugin).
    view = Report(
        seed=REPORT.seed,
        plan=REPORT.plan,
        summary=REPORT.summary,
        items=[i for i in REPORT.items if i.verdict != "pass"],
    )
    assert render_html(view) == render_html(REPORT)
