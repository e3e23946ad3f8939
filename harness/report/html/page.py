"""The page: its sections in order under one head (title, seed, count cards), the
Content-Security-Policy that allows only the page's own script, and writing the file.

Imports every other module of the package; none imports it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path

from harness.output import write_text
from harness.redact import Redactor, redact_model
from harness.report.html.assets import CSS, JS
from harness.report.html.figures import cards, figures_section, queue_section, tables_section
from harness.report.html.heatmaps import confusion_section, heatmap_section
from harness.report.html.index import PageIndex
from harness.report.html.items import items_section
from harness.report.html.markup import esc
from harness.report.model import Report

Section = Callable[[Report, PageIndex], str]


SECTIONS: tuple[Section, ...] = (
    heatmap_section,
    confusion_section,
    items_section,
    figures_section,
    queue_section,
    tables_section,
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
    digest = base64.b64encode(hashlib.sha256(JS.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    head = [
        f"<h1>{esc(title)}</h1>",
        f'<p class="muted">seed <code id="seed">{report.seed}</code> · schema v'
        f"{esc(report.schema_version)}</p>",
        cards(report),
    ]
    body = head + [section(report, index) for section in SECTIONS]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}<script>{JS}</script></body></html>\n"
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
