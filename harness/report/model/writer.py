"""Writing a report file one item at a time (:class:`ReportWriter`), byte-identical to
``Report.build(items, seed).to_json()`` without holding the items.

Imports :mod:`~harness.report.model.entries`, :mod:`~harness.report.model.summary`,
:mod:`~harness.report.model.atomic` and :mod:`~harness.report.model.document`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from harness.report.model.atomic import (
    open_atomic,
)
from harness.report.model.document import (
    ITEM_INDENT,
    ITEMS_CLOSING,
    Plan,
    Report,
    SessionInfo,
    item_line,
    items_opening,
)
from harness.report.model.entries import (
    ReportItem,
)
from harness.report.model.summary import (
    Summary,
    SummaryAccumulator,
)


class ReportWriter:
    """Writes a report file one item at a time, holding neither the items nor their JSON.

    The file is byte-identical to ``Report.build(items, seed).to_json()``: each item's JSON is
    appended to a temporary file while the summary accumulates, and :meth:`finish` writes the
    header and summary, copies the items after them, and renames the result into place.

    Args:
        path: destination; parent directories are created.
        seed: the session seed.
        plan: what the session planned; None plans exactly the items added.
        session: the session's identity, or None.
    """

    def __init__(
        self,
        path: str | Path,
        seed: int,
        *,
        plan: Plan | None = None,
        session: SessionInfo | None = None,
    ) -> None:
        self.path = Path(path)
        self.seed = seed
        self.plan = plan
        self.session = session
        self._nodeids: list[str] | None = [] if plan is None else None
        self._summary = SummaryAccumulator()
        # Lives until finish() or close(), across many add() calls: no with-block fits.
        self._items = tempfile.TemporaryFile(  # noqa: SIM115
            "w+", encoding="utf-8", prefix="shakeout-items-"
        )
        self._count = 0
        self._last: str | None = None

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, item: ReportItem) -> None:
        """Append one item; items must come in nodeid order (the order ``Report.build`` sorts to).

        Args:
            item: the report item.

        Raises:
            ValueError: the item's nodeid sorts before the previous one's.
        """
        if self._last is not None and item.nodeid < self._last:
            raise ValueError(
                f"report items must be added in nodeid order: got {item.nodeid!r} after "
                f"{self._last!r}; sort the items by nodeid first"
            )
        self._last = item.nodeid
        if self._nodeids is not None:
            self._nodeids.append(item.nodeid)
        self._summary.add(item)
        self._items.write(("," if self._count else "") + "\n" + ITEM_INDENT + item_line(item))
        self._count += 1

    def finish(self) -> Summary:
        """Write the file atomically and release the temporary one.

        Returns:
            The summary written.
        """
        summary = self._summary.summary()
        plan = self.plan if self._nodeids is None else Plan.of(self._nodeids)
        head = Report(
            seed=self.seed, session=self.session, plan=plan, summary=summary, items=[]
        ).to_json()
        try:
            with open_atomic(self.path) as out:
                if self._count:
                    out.write(items_opening(head))
                    self._items.seek(0)
                    shutil.copyfileobj(self._items, out)
                    out.write(ITEMS_CLOSING)
                else:
                    out.write(head)
        finally:
            self.close()
        return summary

    def close(self) -> None:
        """Release the temporary file without writing (idempotent)."""
        self._items.close()
