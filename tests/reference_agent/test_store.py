"""The SQLite store (reference_agent/store.py): transactions, crashes, concurrent claims."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_agent.store import ApprovalRow, Store


class Crash(BaseException):
    pass


def test_crash_inside_a_transaction_rolls_back_and_does_not_block(tmp_path: Path) -> None:
    store = Store(tmp_path)

    def crash_mid_write() -> None:
        with store.transaction() as db:
            store.insert_run(db, "r", "T-1", {}, "running", 0.0)
            raise Crash

    with pytest.raises(Crash):
        crash_mid_write()
    fresh = Store(tmp_path)  # would wait on a leftover write lock
    with fresh.transaction() as db:
        fresh.insert_run(db, "r2", "T-2", {}, "running", 0.0)
    assert store.get_run("r") is None
    assert store.get_run("r2") is not None
    store.close()
    fresh.close()


def test_wal_mode_on_disk(tmp_path: Path) -> None:
    store = Store(tmp_path)
    mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    store.close()


def test_a_claim_succeeds_once_across_connections(tmp_path: Path) -> None:
    first, second = Store(tmp_path), Store(tmp_path)
    approval = ApprovalRow(
        "a1", "r", "issue_refund", {"amount": 1}, "h", "s", 0.0, 10.0, False, None, None, None
    )
    with first.transaction() as db:
        first.insert_approval(db, approval)
    with first.transaction() as db:
        won = first.claim_approval(db, "a1", "approve", "x", 1.0)
    with second.transaction() as db:
        lost = second.claim_approval(db, "a1", "approve", "y", 2.0)
    assert (won, lost) == (True, False)
    assert second.approval("a1") is not None
    first.close()
    second.close()


def test_step_lifecycle(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.transaction() as db:
        store.mark_started(db, "r", "act", {"x": 1})
        store.mark_started(db, "r", "act", {"x": 1})
    assert store.steps("r")["act"].status == "started"
    with store.transaction() as db:
        store.complete_step(db, "r", "act", {"refund_id": "re_1"})
        store.mark_started(db, "r", "act", {"x": 2})  # a completed step stays completed
    step = store.steps("r")["act"]
    assert (step.status, step.output) == ("completed", {"refund_id": "re_1"})
    store.close()
