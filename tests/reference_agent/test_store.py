"""The SQLite store (reference_agent/store.py): transactions, crashes, concurrent claims."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reference_agent.store import DB_NAME, PAGE_SIZE, ApprovalRow, Store


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


def test_a_committed_step_survives_a_sigkill_of_its_process(tmp_path: Path) -> None:
    # synchronous=NORMAL in WAL mode: the commit is not fsynced, yet a killed process loses
    # nothing it committed (what resume and the crash matrices rely on)
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from reference_agent.store import Store\n"
        "store = Store(Path(sys.argv[1]))\n"
        "with store.transaction() as db:\n"
        "    store.complete_step(db, 'r', 'act', {'refund_id': 're_1'})\n"
        "    store.mark_started(db, 'r', 'reply', {'n': 1})\n"
        "with store.transaction() as db:\n"
        "    store.mark_started(db, 'r', 'never', {})\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    store = Store(tmp_path)
    steps = store.steps("r")
    assert sorted(steps) == ["act", "reply"]  # the open transaction died with its process
    assert (steps["act"].status, steps["act"].output) == ("completed", {"refund_id": "re_1"})
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    store.close()


def test_a_state_dir_from_before_the_without_rowid_steps_table_still_resumes(
    tmp_path: Path,
) -> None:
    old = sqlite3.connect(tmp_path / DB_NAME)
    old.execute(
        "CREATE TABLE steps (run_id TEXT NOT NULL, step TEXT NOT NULL, status TEXT NOT NULL "
        "CHECK (status IN ('pending', 'started', 'completed', 'failed')), input TEXT, "
        "output TEXT, attempts INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run_id, step))"
    )
    old.execute(
        "INSERT INTO steps (run_id, step, status, output, attempts) "
        "VALUES ('r', 'intake', 'completed', '{}', 1)"
    )
    old.commit()
    old.close()
    store = Store(tmp_path)
    with store.transaction() as db:
        store.complete_step(db, "r", "act", {"refund_id": "re_1"})
        store.mark_started(db, "r", "intake", {})  # completed stays completed
    assert store.completed_steps("r") == {"intake", "act"}
    store.close()


def test_a_new_state_dir_gets_small_pages_and_an_old_database_keeps_its_own(
    tmp_path: Path,
) -> None:
    fresh = Store(tmp_path / "new")
    assert fresh._db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    fresh.close()
    old_dir = tmp_path / "old"
    old_dir.mkdir()
    old = sqlite3.connect(old_dir / DB_NAME)  # created before PAGE_SIZE: SQLite's 4 KiB
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY)")
    old.commit()
    old.close()
    store = Store(old_dir)
    assert store._db.execute("PRAGMA page_size").fetchone()[0] == 4096
    with store.transaction() as db:
        store.complete_step(db, "r", "act", {"refund_id": "re_1"})
    store.close()
    again = Store(old_dir)
    assert again.completed_steps("r") == {"act"}
    again.close()


def test_opening_a_complete_database_takes_no_write_lock(tmp_path: Path) -> None:
    # another instance in the middle of a write must not hold up an open (only a read of the
    # schema when it is all there)
    writer = Store(tmp_path)
    opened: list[Store] = []
    with writer.transaction() as db:
        writer.mark_started(db, "r", "act", {})
        thread = threading.Thread(target=lambda: opened.append(Store(tmp_path)), daemon=True)
        thread.start()
        thread.join(timeout=20)
        assert opened, "opening the store waited on another instance's write transaction"
    assert opened[0].steps("r")["act"].status == "started"
    opened[0].close()
    writer.close()
