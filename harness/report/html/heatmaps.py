"""The two heatmaps: scenario x fault key (cells coloured by verdict, each a filter of the items
list) and expected x reported category (the confusion matrix).

Imports :mod:`~harness.report.html.index` (the rows it counts) and
:mod:`~harness.report.html.markup`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.report.html.index import ItemRow, PageIndex, fault_order
from harness.report.html.markup import esc
from harness.report.model import NONE_KEY, VERDICTS, Report

_CATEGORY_ORDER = (NONE_KEY, "input", "logic", "model", "tool")


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


def heatmap_section(report: Report, index: PageIndex) -> str:
    """Scenario x fault key, each cell coloured by the verdicts of its items."""
    grid = heatmap(index.rows)
    if not grid:
        return ""
    keys = fault_order(k for cells in grid.values() for k in cells)
    head = "<th></th>" + "".join(f'<th class="key" scope="col">{esc(k)}</th>' for k in keys)
    body = []
    for scenario, cells in grid.items():
        tds = []
        for key in keys:
            cell = cells.get(key)
            if cell is None:
                tip = f"{scenario} × {key}: not exercised"
                tds.append(f'<td class="hm empty" title="{esc(tip)}"></td>')
                continue
            c = cell.counts
            tip = (
                f"{scenario} × {key}: {cell.total} item(s): {c['pass']} pass, {c['fail']} fail, "
                f"{c['error']} error"
            )
            shown = cell.total if cell.verdict == "pass" else c[cell.verdict]
            tds.append(
                f'<td class="hm {cell.verdict}" title="{esc(tip)}" data-pass="{c["pass"]}" '
                f'data-fail="{c["fail"]}" data-error="{c["error"]}"><a href="#items-title" '
                f'data-filter-scenario="{esc(scenario)}" data-filter-fault="{esc(key)}">'
                f"{shown}</a></td>"
            )
        body.append(f'<tr><th class="row" scope="row">{esc(scenario)}</th>{"".join(tds)}</tr>')
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


def confusion_section(report: Report, index: PageIndex) -> str:
    """Expected category x reported category as a heatmap, the diagonal (agreement) marked."""
    matrix = confusion(index.rows)
    if not matrix:
        return ""
    labels = _category_order([*matrix, *(c for line in matrix.values() for c in line)])
    top = max(n for line in matrix.values() for n in line.values())
    head = "<th>expected \\ reported</th>" + "".join(
        f'<th scope="col">{esc(c)}</th>' for c in labels
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
            tds.append(
                f'<td class="cm {cls}" style="--a:{alpha}" title="{esc(tip)}">{n or ""}</td>'
            )
        body.append(f'<tr><th scope="row">{esc(expected)}</th>{"".join(tds)}</tr>')
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
