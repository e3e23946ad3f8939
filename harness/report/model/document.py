"""The report file as a whole: the session's plan and identity, :class:`Report` (items and
summary) and its JSON Schema.

Imports :mod:`~harness.report.model.entries`, :mod:`~harness.report.model.summary`,
:mod:`~harness.report.model.atomic` and :mod:`~harness.report.model.collector`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from harness.report.model.atomic import (
    write_text_atomic,
)
from harness.report.model.collector import (
    collector_paused,
)
from harness.report.model.entries import (
    SCHEMA_VERSION,
    ReportItem,
    Strict,
)
from harness.report.model.summary import (
    Summary,
    summarize,
)


def nodeids_digest(nodeids: Iterable[str]) -> str:
    """The sha256 of the sorted node ids, one per line: the same set gives the same digest."""
    digest = hashlib.sha256()
    for nodeid in sorted(nodeids):
        digest.update(nodeid.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


class Plan(Strict):
    """The items the session planned to run, fixed at collection, before any of them ran.

    A report whose items do not cover its plan is partial (an interrupted or crashed run, a dead
    xdist worker): the gate refuses it unless the policy allows partial reports.

    Attributes:
        items: how many items this report planned (after ``-k``/``-m`` and ``--chaos-shard``).
        nodeids: their node ids, sorted; names what is missing from a partial report.
        shard: ``K/N`` when ``--chaos-shard`` picked this report's items, else None.
        selection_items: how many items the session selected before sharding (all the shards'
            plans together); equals ``items`` without a shard; None when unknown.
        selection_sha256: :func:`nodeids_digest` of that selection, so ``shakeout merge`` can
            tell the shards of one session from shards of different selections; None when
            unknown (every xdist worker died before reporting it).
    """

    items: int = Field(ge=0)
    nodeids: list[str]
    shard: str | None = Field(default=None, pattern=r"^[1-9][0-9]{0,8}/[1-9][0-9]{0,8}$")
    selection_items: int | None = Field(default=None, ge=0)
    selection_sha256: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        if self.items != len(self.nodeids):
            raise ValueError(
                f"plan.items is {self.items} but plan.nodeids holds {len(self.nodeids)} node ids"
            )
        return self

    @classmethod
    def of(
        cls,
        nodeids: Iterable[str],
        *,
        shard: str | None = None,
        selection: tuple[int, str] | None = None,
    ) -> Plan:
        """The plan of these node ids.

        Args:
            nodeids: the planned items' node ids (any order; duplicates count once).
            shard: ``K/N`` when they are one shard of a larger selection.
            selection: (count, digest) of the whole selection when sharded; None means the
                plan is the whole selection without a shard, and unknown with one.

        Returns:
            The plan.
        """
        ids = sorted(set(nodeids))
        if selection is None and shard is None:
            selection = (len(ids), nodeids_digest(ids))
        return cls(
            items=len(ids),
            nodeids=ids,
            shard=shard,
            selection_items=None if selection is None else selection[0],
            selection_sha256=None if selection is None else selection[1],
        )


class SessionInfo(Strict):
    """Which pytest session wrote the report, so a caller can tell it from a stale file.

    Attributes:
        id: the session id (``--chaos-session-id``, else a random UUID).
        started_at: when the session started, ISO 8601 in UTC.
        interrupted: why the session did not run its plan to the end (interrupted, stopped
            early, an internal error, xdist workers that collected different items), else None.
    """

    id: str = Field(min_length=1, max_length=200)
    started_at: str
    interrupted: str | None = None

    @classmethod
    def new(cls, session_id: str | None = None) -> SessionInfo:
        """A session starting now.

        Args:
            session_id: the id to stamp, or None for a random one.

        Returns:
            The session identity.
        """
        return cls(
            id=session_id or uuid.uuid4().hex,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )


ITEM_INDENT = " " * 4
"""What each item's line starts with: the items list sits at nesting depth 2 of the file."""

ITEMS_CLOSING = "\n  ]\n}\n"
"""What follows the last item's line."""

_EMPTY_ITEMS_TAIL = '"items": []\n}\n'


def item_line(item: ReportItem) -> str:
    """One item as the report file holds it: compact JSON, on one line of its own.

    Indented items made a file about 40% whitespace (13.7 MB against 8.1 MB for 1,000
    refund_happy items), which every write, upload and read of the report paid for; a line
    per item also keeps the file greppable and line-diffable by item. JSON escapes every
    newline inside a string, so the text never spans lines.
    """
    return item.model_dump_json(by_alias=True)


def items_opening(head: str) -> str:
    """A report with no items, as ``to_json`` writes it, cut where its first item goes.

    Raises:
        RuntimeError: the text does not end with an empty items list (pydantic changed its
            layout).
    """
    if not head.endswith(_EMPTY_ITEMS_TAIL):  # pragma: no cover - pydantic changed its layout
        raise RuntimeError(f"unexpected report layout, ends with {head[-40:]!r}")
    return head[: -len(_EMPTY_ITEMS_TAIL)] + '"items": ['


class Report(Strict):
    """The fault-injection report: one file per session, the same content whatever the workers."""

    schema_version: Literal["2"] = SCHEMA_VERSION
    seed: int
    session: SessionInfo | None = None
    plan: Plan
    summary: Summary
    items: list[ReportItem]

    @classmethod
    def build(
        cls,
        items: Iterable[ReportItem | Mapping[str, Any]],
        seed: int,
        *,
        plan: Plan | None = None,
        session: SessionInfo | None = None,
    ) -> Report:
        """Validate items, sort them by nodeid and compute the summary.

        Args:
            items: report items, as models or JSON-able dicts in the runner's shape.
            seed: the session seed.
            plan: what the session planned to run; None plans exactly these items.
            session: the session's identity, or None when there is none (a hand-built report).

        Returns:
            The report.

        Raises:
            pydantic.ValidationError: an item does not match the item schema.
        """
        with collector_paused():
            models = [
                i if isinstance(i, ReportItem) else ReportItem.model_validate(i) for i in items
            ]
            models.sort(key=lambda i: i.nodeid)
            if plan is None:
                plan = Plan.of(i.nodeid for i in models)
            summary = summarize(models)
            return cls(seed=seed, session=session, plan=plan, summary=summary, items=models)

    def to_json(self) -> str:
        """The report as JSON text ending with a newline, one item per line.

        The header (schema version, seed, session, plan, summary) is indented; each item is
        compact JSON on a line of its own (see :func:`item_line`).
        """
        with collector_paused():
            head = self.model_copy(update={"items": []}).model_dump_json(indent=2, by_alias=True)
            if not self.items:
                return head + "\n"
            lines = (",\n" + ITEM_INDENT).join(item_line(item) for item in self.items)
            return items_opening(head + "\n") + "\n" + ITEM_INDENT + lines + ITEMS_CLOSING

    def write(self, path: str | Path) -> Path:
        """Write the report atomically (a reader never sees a half-written file).

        Args:
            path: destination; parent directories are created.

        Returns:
            The path written.
        """
        return write_text_atomic(path, self.to_json())


def report_schema() -> dict[str, Any]:
    """The JSON Schema of the report file (what ``shakeout schema report`` prints)."""
    schema = Report.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://shakeout.dev/schema/report-v{SCHEMA_VERSION}.json"
    return schema
