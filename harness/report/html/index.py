"""The page's index: one compact row per report item (passing ones too), and the orders of rows
and fault keys the sections share.

Imports nothing of the package; the pytest session builds a :class:`PageIndex` while it streams
the report, so that the page counts every item while only the non-passing ones are kept whole.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from harness.report.model import NONE_KEY, ReportItem, Verdict

EXPECTED_CATEGORY_CHECK = "expected_category"


# The expected_category check's failure reason starts "expected category 'tool' (...)" or
# "expected category None (...)"; when it passes, the expected category is the one reported.
_EXPECTED = re.compile(r"expected category (?:None|'([^']*)')")


_RANK = {"fail": 0, "error": 1, "pass": 2}
"""Items order: failing first, then errors, then passes."""


class ItemRow(BaseModel):
    """One item as the page lists and counts it (kept for every item, passing ones too).

    ``expected`` is the category the item's ``expected_category`` check asked for (``none``
    for "no category"), or None when that check did not apply.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    nodeid: str
    scenario: str
    variant: str = "base"
    verdict: Verdict
    faults: list[str]
    failed_checks: list[str]
    category: str | None = None
    expected: str | None = None
    state: str | None = None

    @classmethod
    def of(cls, item: ReportItem) -> ItemRow:
        """The row of one report item.

        Args:
            item: the report item (whole: its checks give the expected category).

        Returns:
            The row.
        """
        # The session keeps a row per item: names shared by many rows are stored once.
        expected = expected_category(item)
        return cls.model_construct(
            nodeid=item.nodeid,
            scenario=sys.intern(item.scenario),
            variant=item.variant,
            verdict=item.verdict,
            faults=[sys.intern(k) for k in item.injected_keys()],
            failed_checks=[sys.intern(c.name) for c in item.checks if c.passed is False],
            category=None if item.category is None else sys.intern(item.category),
            expected=None if expected is None else sys.intern(expected),
            state=None if item.terminal_state is None else sys.intern(item.terminal_state),
        )


class PageIndex(BaseModel):
    """Every item of the report as a compact row: what the heatmaps count and the list shows.

    The pytest session adds each item as it streams the report, so the page counts every item
    while only the non-passing ones are kept whole.
    """

    model_config = ConfigDict(extra="forbid")

    rows: list[ItemRow] = []

    def add(self, item: ReportItem) -> None:
        """Add one item's row.

        Args:
            item: the report item.
        """
        self.rows.append(ItemRow.of(item))

    @classmethod
    def of(cls, items: Iterable[ReportItem]) -> PageIndex:
        """The index of these items.

        Args:
            items: the report items.

        Returns:
            The index.
        """
        return cls(rows=[ItemRow.of(i) for i in items])


def expected_category(item: ReportItem) -> str | None:
    """The category the item's ``expected_category`` check asked for, ``none`` for no category.

    Args:
        item: the report item.

    Returns:
        The expected category, or None when the check did not apply (or is not in the item).
    """
    check = next((c for c in item.checks if c.name == EXPECTED_CATEGORY_CHECK), None)
    if check is None or check.passed is None:
        return None
    if check.passed:
        return item.category or NONE_KEY
    found = _EXPECTED.search(check.reason)
    if found is None:
        return None
    return found.group(1) or NONE_KEY


def fault_order(keys: Iterable[str]) -> list[str]:
    """Fault keys with ``none`` (the fault-free items) first, then alphabetically."""
    return sorted(set(keys), key=lambda k: (k != NONE_KEY, k))


def ordered(rows: Iterable[ItemRow]) -> list[ItemRow]:
    """Rows failing first, then errors, then passes; by node id within each."""
    return sorted(rows, key=lambda r: (_RANK[r.verdict], r.nodeid))
