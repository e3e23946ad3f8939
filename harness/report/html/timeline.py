"""One run drawn from its evidence: the SVG timeline (lanes along the event log), the event
table, and the request table of a run without an event log.

Imports :mod:`~harness.report.html.markup`.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.report.html.markup import esc
from harness.report.model import EventEntry, RequestEntry

TIMELINE_EVENTS_CAP = 400
"""Events drawn in one timeline; a longer run is cut with a note (the table below holds all)."""


_LANES = ("agent", "model", "tools", "reviewer")


_LANE_H = 26


_LEFT = 72


_TOP = 20


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
        tip = f"<title>{esc(_describe(e, t0))}</title>"
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
                f'<text class="fault-label" x="{x + 10:.1f}" y="{y - 6}">{esc(e.faults[0])}</text>'
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


def event_table(events: Sequence[EventEntry]) -> str:
    """The run's event log (the evidence the checks read) as a timeline table."""
    names = ("#", "t (s)", "event", "who", "what", "outcome", "detail")
    head = "".join(f"<th>{h}</th>" for h in names)
    t0 = events[0].t if events else 0.0
    rows = "".join(_event_row(e, t0) for e in events)
    return f'<table class="timeline"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


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
        f"<td>{esc(e.kind)}</td>"
        f"<td>{esc(who)}</td><td><code>{esc(what)}</code></td><td>{esc(outcome)}</td>"
        f"<td><code>{esc(detail)}</code></td></tr>"
    )


def request_table(requests: Sequence[RequestEntry]) -> str:
    if not requests:
        return '<p class="muted">No requests were recorded.</p>'
    rows = []
    for r in requests:
        outcome = r.error if r.error else (r.status if r.status is not None else "")
        cls = ' class="faulted"' if r.faults else ""
        rows.append(
            f'<tr{cls}><td class="num">{r.seq}</td><td>{esc(r.surface)}</td><td>{esc(r.tool)}</td>'
            f"<td>{esc(r.method)}</td><td><code>{esc(r.url)}</code></td><td>{esc(outcome)}</td>"
            f"<td>{esc(', '.join(r.faults))}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("#", "surface", "tool", "method", "url", "status / error", "faults")
    )
    return (
        f'<table class="timeline"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
