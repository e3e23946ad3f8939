"""The review queue (reference_agent/queue.py): percentiles and SLA breaches."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reference_agent.queue import ReviewQueue, percentile
from reference_agent.store import ApprovalRow, Store


def row(n: int, requested: float, expires: float) -> ApprovalRow:
    return ApprovalRow(
        f"a{n}", f"r{n}", "issue_refund", {}, "h", "s", requested, expires, False, None, None, None
    )


def test_stats_percentiles_and_breaches() -> None:
    store = Store(None)
    queue = ReviewQueue(store, capacity=3, sla_s=100.0)
    with store.transaction() as db:
        for n in range(5):
            store.insert_approval(db, row(n, 0.0, 1000.0))
        for n, wait in enumerate([10.0, 20.0, 30.0, 150.0]):
            store.claim_approval(db, f"a{n}", "approve", "me", wait)
    assert queue.pending(now=0.0) == 1
    assert not queue.is_full(now=0.0)
    with store.transaction() as db:
        store.claim_approval(db, "a4", "expired", None, 1000.0)
    stats = queue.stats(now=0.0)
    assert (stats.decided, stats.p50, stats.p90, stats.p99) == (4, 20.0, 150.0, 150.0)
    assert stats.sla_breaches == 2  # one late decision, one expiry
    store.close()


def test_expired_requests_do_not_count_as_pending() -> None:
    store = Store(None)
    with store.transaction() as db:
        store.insert_approval(db, row(1, 0.0, 10.0))
    queue = ReviewQueue(store, capacity=1, sla_s=10.0)
    assert queue.is_full(now=5.0)
    assert not queue.is_full(now=10.0)
    store.close()


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=50), st.floats(0, 100))
def test_percentile_is_an_element_and_monotone(values: list[float], q: float) -> None:
    p = percentile(values, q)
    assert p in values
    assert p <= (percentile(values, min(100.0, q + 10)) or 0.0)


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 50) is None
