"""Tests of the Markdown summary and its $GITHUB_STEP_SUMMARY append."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.report.markdown import MAX_FAILURES_LISTED, render_markdown, write_markdown
from harness.report.model import Report


def item(nodeid: str, verdict: str = "pass", **kw: Any) -> dict[str, Any]:
    return {"nodeid": nodeid, "scenario": kw.pop("scenario", "refund"), "verdict": verdict, **kw}


REPORT = Report.build(
    [
        item(
            "scenarios/refund.yaml::refund[tool_http_503@get_order#1]",
            "fail",
            category="tool",
            faults_injected=[{"key": "tool_http_503", "surface": "tool", "transient": True}],
            faults_fired=[{"key": "tool_http_503", "surface": "tool"}],
            checks=[{"name": "transient_recovered", "passed": False, "reason": "gave up"}],
            reproduce="pytest 'scenarios/refund.yaml::refund[tool_http_503@get_order#1]'",
        ),
        item(
            "scenarios/refund.yaml::refund[model_invalid_json@classify#1]",
            faults_injected=[{"key": "model_invalid_json", "surface": "model"}],
        ),
        item("scenarios/bad.yaml", "error", scenario="bad", error="collection failed: a|b\nmore"),
        item("scenarios/refund.yaml::refund[base]", crash=True, restarts=1),
    ],
    seed=42,
)


def test_headline_counts_and_seed() -> None:
    md = render_markdown(REPORT)
    assert md.startswith("## ❌ shakeout fault-injection report\n")
    assert "**4** items: **2** pass, **1** fail, **1** error · seed `42` · schema v2" in md


def test_fault_category_and_confusion_tables() -> None:
    lines = render_markdown(REPORT).splitlines()
    assert "| fault | items | pass | fail | error |" in lines
    assert "| tool_http_503 | 1 | 0 | 1 | 0 |" in lines
    assert "| none | 2 | 1 | 0 | 1 |" in lines
    assert "| category | items |" in lines
    assert "| tool | 1 |" in lines
    assert "| fault \\\\ category | tool | none |" in lines
    assert "| tool_http_503 | 1 | 0 |" in lines


def test_coverage_marks_fired_and_unfired_pairs() -> None:
    md = render_markdown(REPORT)
    assert "### Coverage: 1/2 scenario × fault pairs exercised (50.0%)" in md
    assert "| scenario | faults planned | fired | planned but never fired |" in md
    assert "| refund | 2 | 1 | model_invalid_json |" in md.splitlines()
    assert "| bad |" not in md, "a scenario without planned faults has no coverage row"


def test_coverage_lists_a_bounded_number_of_unfired_keys() -> None:
    injected = [{"key": f"k{i:02}", "surface": "tool"} for i in range(10)]
    md = render_markdown(Report.build([item("t::a", faults_injected=injected)], seed=1))
    assert "| refund | 10 | 0 | k00, k01, k02, k03, k04, k05, k06, k07, … (2 more) |" in md


def test_recovery_figures() -> None:
    lines = render_markdown(REPORT).splitlines()
    assert "| transient recovery rate | 0.0% (0/1) |" in lines
    assert "| crash variants | 1 |" in lines
    assert "| restarts | 1 |" in lines


def test_failures_table_escapes_pipes_and_shows_the_reproduce_command() -> None:
    lines = render_markdown(REPORT).splitlines()
    assert "### Failures and errors (2)" in lines
    assert "| ERROR | `scenarios/bad.yaml` |  | collection failed: a\\|b |  |" in lines, (
        "the error's first line, with its pipe escaped"
    )
    assert (
        "| FAIL | `scenarios/refund.yaml::refund[tool_http_503@get_order#1]` | tool "
        "| transient_recovered "
        "| `pytest 'scenarios/refund.yaml::refund[tool_http_503@get_order#1]'` |"
    ) in lines


def test_all_green_report() -> None:
    md = render_markdown(Report.build([item("t::a")], seed=1))
    assert md.startswith("## ✅ ")
    assert md.endswith("No failures.\n")


def test_failures_list_is_bounded() -> None:
    many = Report.build([item(f"t::{i:03}", "fail") for i in range(MAX_FAILURES_LISTED + 5)], 1)
    md = render_markdown(many)
    assert "`t::024`" in md
    assert "`t::025`" not in md
    assert "… and 5 more (see the JSON or HTML report)." in md


def test_write_markdown_writes_the_file_and_appends_to_the_step_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    target = tmp_path / "out" / "chaos.md"
    assert write_markdown(REPORT, target) == [target, summary]
    write_markdown(REPORT, None)
    text = render_markdown(REPORT)
    assert target.read_text() == text
    assert summary.read_text() == "earlier step\n" + (text + "\n") * 2


def test_write_markdown_without_destinations_writes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert write_markdown(REPORT, None) == []


def test_the_summary_and_the_non_passing_items_are_all_it_reads() -> None:
    # The pytest session renders from a report that holds only those (see ReportPlugin).
    view = Report(
        seed=REPORT.seed,
        plan=REPORT.plan,
        summary=REPORT.summary,
        items=[i for i in REPORT.items if i.verdict != "pass"],
    )
    assert render_markdown(view) == render_markdown(REPORT)


# --------------------------------------------------------------------------- hostile text

HOSTILE = [
    "scenarios/x`<img src=x onerror=alert(1)>`.yaml::x",
    "a``b```c<script>alert(1)</script>",
    "`leading and trailing`",
    "pipes|in|the|name",
    "back\\|slash pipe",
    "<img src=x onerror=alert(1)>",
    "**bold** [link](javascript:alert(1)) ![i](x) &lt; &amp; ~~s~~ _e_",
]


def _rendered(md: str) -> str:
    from markdown_it import MarkdownIt

    # GitHub renders step summaries as GFM: CommonMark with tables, raw HTML allowed.
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(md)


def _hostile_report(text: str) -> Report:
    return Report.build(
        [
            item(
                f"scenarios/h.yaml::{text}",
                "fail",
                scenario=text,
                category=text,
                checks=[{"name": text, "passed": False, "reason": text}],
                reproduce=f"pytest '{text}'",
            ),
            item("scenarios/e.yaml::e", "error", error=text),
        ],
        seed=1,
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_renders_as_text_never_as_html_or_markup(text: str) -> None:
    html = _rendered(render_markdown(_hostile_report(text), title=text))
    # (The page's own <strong> counts and <code> spans are expected; none from the text.)
    for tag in ("<img", "<script", "<a ", "<strong>bold", "<em", "<del", "<s>"):
        assert tag not in html, f"{tag} rendered from {text!r}"
    # Each table row keeps its five cells: no pipe in the text split one.
    rows = [r for r in html.split("<tr>")[1:] if "FAIL" in r or "ERROR" in r]
    assert rows
    assert all(r.count("<td") == 5 for r in rows)


@pytest.mark.parametrize("text", HOSTILE)
def test_code_spans_hold_the_text_exactly(text: str) -> None:
    from html import unescape

    html = _rendered(render_markdown(_hostile_report(text)))
    codes = [unescape(c.split("</code>")[0]) for c in html.split("<code>")[1:]]
    assert f"scenarios/h.yaml::{text}" in codes
    assert f"pytest '{text}'" in codes


def test_pipes_are_escaped_exactly_once() -> None:
    md = render_markdown(_hostile_report("a|b"))
    assert "`scenarios/h.yaml::a\\|b`" in md
    assert "a\\\\|b" not in md
    assert "| a\\|b |" in md
