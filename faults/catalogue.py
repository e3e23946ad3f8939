"""The fault catalogue as data: one row per registered fault, printed by ``shakeout faults``."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from typing import Any

# Imported for their side effect: each module's subclasses register themselves by key.
from faults import approval, crash, model, stream, tool  # noqa: F401
from faults.base import Fault, Schedule, registry

COMMON_PARAMETERS = ("target", "at", "times")
"""Parameters every fault takes (``target``, ``at``, ``times``); rows list only a fault's own."""


def _plain(value: Any) -> Any:
    # Rows must be JSON-able: enums become their value, schedules their fields.
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Schedule):
        return dataclasses.asdict(value)
    return value


def _row(cls: type[Fault]) -> dict[str, Any]:
    params = {
        name: _plain(default)
        for name, default in cls.parameters().items()
        if name not in COMMON_PARAMETERS
    }
    return {
        "key": cls.key,
        "surface": cls.surface.value,
        "category": cls.category.value if cls.category is not None else None,
        "transient": cls.transient,
        "expected_state": cls.expected_state,
        "outcomes": [o.value for o in cls.outcomes()],
        "summary": cls.summary(),
        "parameters": params,
    }


def catalogue() -> list[dict[str, Any]]:
    """Every registered fault as a row, ordered by surface then key.

    Each row has ``key``, ``surface``, ``category`` (None: no error expected), ``transient``,
    ``expected_state`` (a terminal state the fault forces, or None), ``outcomes`` (the
    acceptable outcomes it declares, see ``faults.base.FaultOutcome``), ``summary`` (the one-line
    docstring) and ``parameters`` (the fault's own settable fields with their defaults; every
    fault also takes ``target``, ``at`` and ``times``).
    """
    rows = [_row(cls) for cls in registry().values()]
    return sorted(rows, key=lambda r: (r["surface"], r["key"]))


def _table(rows: list[dict[str, Any]]) -> str:
    def params(row: dict[str, Any]) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in row["parameters"].items())

    def outcome(row: dict[str, Any]) -> str:
        named = [f"fail:{row['category']}" if o == "fail" else o for o in row["outcomes"]]
        return " | ".join(named)

    head = ("key", "surface", "accepts", "parameters", "summary")
    body = [(r["key"], r["surface"], outcome(r), params(r), r["summary"]) for r in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head) - 1)]
    lines = []
    for line in [head, *body]:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        lines.append("  ".join([*cells, line[-1]]).rstrip())
    footer = (
        f"{len(rows)} faults; each also takes target (a tool or step), at (a schedule) and "
        "times (attempts in a row it answers).\n"
        "accepts: how a run may end once the fault fires. recover: like the fault-free run "
        "(same state and effects); fail:CATEGORY: failed with that category, no retry of a "
        "permanent fault, no gated effect after it; escalate / complete / reject / expire: "
        "ends escalated / completed without asking again / rejected / expired. Widen or narrow "
        "per fault with a reason: matrix.outcomes in a scenario, [tool.shakeout.outcomes] in "
        "pyproject.toml."
    )
    return "\n".join([*lines, "", footer])


def families() -> list[dict[str, Any]]:
    """The edge-case input families (``input_matrix``) and the injection families
    (``matrix.surfaces: [injection]``) as rows shaped like the catalogue's: surface ``input`` or
    ``injection``, no category, not transient, the family's summary; an injection row's
    parameters count its payloads and name their goals."""
    from faults.injection import FAMILIES, FAMILY_SUMMARIES, templates
    from faults.inputs import INPUT_STRATEGIES

    def row(key: str, surface: str, summary: str, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "key": key,
            "surface": surface,
            "category": None,
            "transient": False,
            "expected_state": None,
            "summary": summary,
            "parameters": params,
        }

    rows = [
        row(name, "input", (make.__doc__ or "").strip().splitlines()[0], {})
        for name, make in sorted(INPUT_STRATEGIES.items())
    ]
    for family in FAMILIES:
        found = templates(family)
        goals = sorted({t.goal for t in found})
        rows.append(
            row(
                family,
                "injection",
                FAMILY_SUMMARIES[family],
                {"payloads": len(found), "goals": goals},
            )
        )
    return rows


def _families_table(rows: list[dict[str, Any]]) -> str:
    out = []
    for surface, title in (
        ("input", "input families (input_matrix.families: each a Hypothesis strategy)"),
        ("injection", "injection families (matrix.surfaces: [injection])"),
    ):
        mine = [r for r in rows if r["surface"] == surface]
        width = max(len(r["key"]) for r in mine)
        out += ["", title]
        for r in mine:
            count = r["parameters"].get("payloads")
            extra = f" ({count} payloads)" if count is not None else ""
            out.append(f"  {r['key'].ljust(width)}  {r['summary']}{extra}")
    return "\n".join(out)


def faults_main(as_json: bool) -> int:
    """Print the catalogue, then the input and injection families, as tables or as one JSON
    list of rows (faults first); return the exit code (0).

    Args:
        as_json: print JSON (for tools) instead of the aligned tables (for people).
    """
    rows = catalogue()
    more = families()
    if as_json:
        sys.stdout.write(json.dumps([*rows, *more], indent=2) + "\n")
    else:
        sys.stdout.write(_table(rows) + "\n" + _families_table(more) + "\n")
    return 0
