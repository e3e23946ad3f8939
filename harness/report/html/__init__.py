"""The report as one self-contained HTML page: inline CSS and JS, no network, no external fonts.

The page is a list of sections, each built by its own function from the report and the
:class:`PageIndex` (one compact row per item, passing ones too): the scenario x fault heatmap,
the category confusion heatmap, the items (failing first, with filters and a search box, and
each failing item's run drawn as a timeline from its event log), then the figures.

One module per part, each importing only the ones above it in this list:

- ``assets``: the inline stylesheet and script;
- ``markup``: escaping, plain tables, JSON safe inside a script element;
- ``index``: :class:`PageIndex`, a row per item, and the orders the sections share;
- ``heatmaps``: scenario x fault and expected x reported category;
- ``figures``: the count cards, recovery, injection, the review queue, the tables;
- ``timeline``: one run drawn from its event log (SVG lanes, event and request tables);
- ``items``: the items list, failing first, filters and search;
- ``page``: the sections in order, the head and its Content-Security-Policy, the file.

The caps (:data:`DETAIL_CAP`, :data:`PASS_ROWS_CAP`, :data:`TIMELINE_EVENTS_CAP`) are read
from the module that uses them (``items``, ``timeline``); the names here are their values.
"""

from __future__ import annotations

from harness.report.html.heatmaps import HeatCell, confusion, heatmap
from harness.report.html.index import (
    EXPECTED_CATEGORY_CHECK,
    ItemRow,
    PageIndex,
    expected_category,
    fault_order,
    ordered,
)
from harness.report.html.items import DETAIL_CAP, PASS_ROWS_CAP
from harness.report.html.markup import embed_json
from harness.report.html.page import SECTIONS, Section, render_html, write_html
from harness.report.html.timeline import TIMELINE_EVENTS_CAP, svg_timeline

__all__ = [
    "DETAIL_CAP",
    "EXPECTED_CATEGORY_CHECK",
    "PASS_ROWS_CAP",
    "SECTIONS",
    "TIMELINE_EVENTS_CAP",
    "HeatCell",
    "ItemRow",
    "PageIndex",
    "Section",
    "confusion",
    "embed_json",
    "expected_category",
    "fault_order",
    "heatmap",
    "ordered",
    "render_html",
    "svg_timeline",
    "write_html",
]
