"""SQLite persistence (WAL): runs, steps, approvals and trace records, written transactionally.

Infrastructure: imports nothing from the package; a step's checkpoint and the next step's
start record are written by the engine inside one ``transaction()``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DB_NAME = "refund_desk.sqlite3"
PAGE_SIZE = 1024

# ``steps`` is a WITHOUT ROWID table: the primary key is the table itself, so a step's checkpoint
# writes one b-tree page to the WAL instead of two (the rows and the key's separate index); rows
# are read by name, never in insertion order.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    ticket_id TEXT,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    category TEXT,
    error TEXT,
    decision TEXT,
    refund_id TEXT,
    started_at REAL NOT NULL,
    parked_at REAL,
    parked_total REAL NOT NULL DEFAULT 0,
    finished_at REAL,
    kept_in_full INTEGER
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'started', 'completed', 'failed')),
    input TEXT,
    output TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS approvals (
    approval_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,
    action_hash TEXT NOT NULL,
    summary TEXT NOT NULL,
    requested_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    consumed INTEGER NOT NULL DEFAULT 0,
    decision TEXT,
    reviewer TEXT,
    decided_at REAL
);
CREATE INDEX IF NOT EXISTS approvals_pending ON approvals (consumed, expires_at);
CREATE TABLE IF NOT EXISTS trace (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS trace_run ON trace (run_id, seq);
"""
# What _SCHEMA creates: a database holding all of them needs no schema statement on open.
_OBJECTS = ("runs", "steps", "approvals", "approvals_pending", "trace", "trace_run")


@dataclass(frozen=True)
class RunRow:
    """One persisted run."""

    run_id: str
    ticket_id: str | None
    payload: dict[str, Any]
    state: str
    category: str | None
    error: str | None
    decision: str | None
    refund_id: str | None
    started_at: float
    parked_at: float | None
    parked_total: float
    finished_at: float | None
    kept_in_full: bool | None


@dataclass(frozen=True)
class StepRow:
    """One persisted step of a run."""

    step: str
    status: str
    input: Any
    output: Any


@dataclass(frozen=True)
class ApprovalRow:
    """One persisted approval request and its decision."""

    approval_id: str
    run_id: str
    tool: str
    arguments: dict[str, Any]
    action_hash: str
    summary: str
    requested_at: float
    expires_at: float
    consumed: bool
    decision: str | None
    reviewer: str | None
    decided_at: float | None


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class Store:
    """The desk's SQLite database; ``state_dir`` None keeps it in memory (persistence off).

    Every multi-row change runs in one ``BEGIN IMMEDIATE`` transaction, so separate processes
    (or separate instances in threads) over the same file serialise their writes.
    """

    def __init__(self, state_dir: Path | None) -> None:
        target = ":memory:" if state_dir is None else str(Path(state_dir) / DB_NAME)
        if state_dir is not None:
            Path(state_dir).mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is explicit.
        self._db = sqlite3.connect(
            target, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        if state_dir is not None:
            # Only takes effect while the file is still empty (a new state dir): an existing
            # database keeps the page size it was created with. 1 KiB instead of the default
            # 4 KiB: a step's commit appends one WAL frame per page it touches, and appending
            # a quarter of the bytes allocates a quarter of the page-cache pages for the growing
            # WAL, which is most of a frame's write cost (about a third of what persistence
            # adds to a step, measured in benchmarks/resume.py's walk); rows past ~230 bytes in
            # ``steps`` (a few of the reference agent's outputs) spill into an overflow page.
            self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            self._db.execute("PRAGMA journal_mode=WAL")
        # synchronous=NORMAL, not FULL: in WAL mode a commit is then appended to the WAL without
        # an fsync (the WAL is synced at each checkpoint). A committed step survives the death of
        # the process (SIGKILL included: the bytes are in the OS's page cache), which is the
        # failure resume relies on and shakeout's crash matrices (in-process and `mode: hard`)
        # test; only a power loss or an OS crash can drop the last commits, never corrupt the
        # database. FULL would also survive that, for an fsync per step: ~4 ms a step on this
        # project's machines against ~0.1 ms, i.e. the checkpoint would cost 10x the step.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        marks = ",".join("?" * len(_OBJECTS))
        found = self._db.execute(
            f"SELECT COUNT(*) FROM sqlite_master WHERE name IN ({marks})", _OBJECTS
        ).fetchone()[0]
        if found < len(_OBJECTS):
            # One transaction for the whole schema: each statement alone would be a commit
            # of its own. A database that has it all is only read (no write lock on open).
            self._db.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")

    def close(self) -> None:
        """Close the connection (rolling back anything left open)."""
        if self._db.in_transaction:
            self._db.rollback()
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back on any exception, crash signals included."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            # A simulated crash must not leave a write lock that blocks the next instance.
            self._db.rollback()
            raise
        self._db.commit()

    # ------------------------------------------------------------------ runs

    def get_run(self, run_id: str) -> RunRow | None:
        """The run, or None."""
        row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        return RunRow(
            run_id=row["run_id"],
            ticket_id=row["ticket_id"],
            payload=json.loads(row["payload"]),
            state=row["state"],
            category=row["category"],
            error=row["error"],
            decision=row["decision"],
            refund_id=row["refund_id"],
            started_at=row["started_at"],
            parked_at=row["parked_at"],
            parked_total=row["parked_total"],
            finished_at=row["finished_at"],
            kept_in_full=None if row["kept_in_full"] is None else bool(row["kept_in_full"]),
        )

    def insert_run(
        self,
        db: sqlite3.Connection,
        run_id: str,
        ticket_id: str | None,
        payload: Any,
        state: str,
        now: float,
    ) -> None:
        """Create a run row, replacing an earlier throttled attempt of the same ticket."""
        db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        db.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
        db.execute(
            "INSERT INTO runs (run_id, ticket_id, payload, state, started_at) VALUES (?,?,?,?,?)",
            (run_id, ticket_id, _dump(payload), state, now),
        )

    def update_run(self, db: sqlite3.Connection, run_id: str, **fields: Any) -> None:
        """Set columns of a run row."""
        cols = ", ".join(f"{name} = ?" for name in fields)
        db.execute(f"UPDATE runs SET {cols} WHERE run_id = ?", (*fields.values(), run_id))

    # ------------------------------------------------------------------ steps

    def steps(self, run_id: str) -> dict[str, StepRow]:
        """The run's steps by name."""
        rows = self._db.execute(
            "SELECT step, status, input, output FROM steps WHERE run_id = ?", (run_id,)
        ).fetchall()
        return {
            r["step"]: StepRow(
                step=r["step"],
                status=r["status"],
                input=None if r["input"] is None else json.loads(r["input"]),
                output=None if r["output"] is None else json.loads(r["output"]),
            )
            for r in rows
        }

    def completed_steps(self, run_id: str) -> set[str]:
        """The names of the run's completed steps (a resume needs no outputs to find its place)."""
        rows = self._db.execute(
            "SELECT step FROM steps WHERE run_id = ? AND status = 'completed'", (run_id,)
        ).fetchall()
        return {r[0] for r in rows}

    def mark_started(self, db: sqlite3.Connection, run_id: str, step: str, step_input: Any) -> None:
        """Record that a step began, inside the caller's transaction (a re-execution keeps the
        row and counts the attempt)."""
        db.execute(
            "INSERT INTO steps (run_id, step, status, input, attempts) "
            "VALUES (?, ?, 'started', ?, 1) ON CONFLICT (run_id, step) DO UPDATE SET "
            "attempts = attempts + 1 WHERE status != 'completed'",
            (run_id, step, _dump(step_input)),
        )

    def complete_step(self, db: sqlite3.Connection, run_id: str, step: str, output: Any) -> None:
        """Persist a step's output and mark it completed (inside the caller's transaction)."""
        db.execute(
            "INSERT INTO steps (run_id, step, status, output, attempts) "
            "VALUES (?, ?, 'completed', ?, 1) ON CONFLICT (run_id, step) DO UPDATE SET "
            "status = 'completed', output = excluded.output",
            (run_id, step, _dump(output)),
        )

    def fail_step(self, db: sqlite3.Connection, run_id: str, step: str, failure: Any) -> None:
        """Mark a step failed with its error (inside the caller's transaction): a resume after a
        crash during the terminal write ends the run with this error instead of re-running it."""
        db.execute(
            "INSERT INTO steps (run_id, step, status, output, attempts) "
            "VALUES (?, ?, 'failed', ?, 1) ON CONFLICT (run_id, step) DO UPDATE SET "
            "status = 'failed', output = excluded.output",
            (run_id, step, _dump(failure)),
        )

    # ------------------------------------------------------------------ approvals

    def insert_approval(self, db: sqlite3.Connection, row: ApprovalRow) -> None:
        """Persist an approval request (a second insert of the same id is ignored)."""
        db.execute(
            "INSERT OR IGNORE INTO approvals (approval_id, run_id, tool, arguments, action_hash, "
            "summary, requested_at, expires_at) VALUES (?,?,?,?,?,?,?,?)",
            (
                row.approval_id,
                row.run_id,
                row.tool,
                _dump(row.arguments),
                row.action_hash,
                row.summary,
                row.requested_at,
                row.expires_at,
            ),
        )

    def approvals(self, run_id: str) -> list[ApprovalRow]:
        """Every approval request of the run, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM approvals WHERE run_id = ? ORDER BY requested_at, approval_id",
            (run_id,),
        ).fetchall()
        return [self._approval(r) for r in rows]

    def approval(self, approval_id: str) -> ApprovalRow | None:
        """One approval request, or None."""
        row = self._db.execute(
            "SELECT * FROM approvals WHERE approval_id = ?", (approval_id,)
        ).fetchone()
        return None if row is None else self._approval(row)

    @staticmethod
    def _approval(r: sqlite3.Row) -> ApprovalRow:
        return ApprovalRow(
            approval_id=r["approval_id"],
            run_id=r["run_id"],
            tool=r["tool"],
            arguments=json.loads(r["arguments"]),
            action_hash=r["action_hash"],
            summary=r["summary"],
            requested_at=r["requested_at"],
            expires_at=r["expires_at"],
            consumed=bool(r["consumed"]),
            decision=r["decision"],
            reviewer=r["reviewer"],
            decided_at=r["decided_at"],
        )

    def claim_approval(
        self,
        db: sqlite3.Connection,
        approval_id: str,
        decision: str,
        reviewer: str | None,
        now: float,
    ) -> bool:
        """Consume an approval atomically; False when someone else consumed it first."""
        cur = db.execute(
            "UPDATE approvals SET consumed = 1, decision = ?, reviewer = ?, decided_at = ? "
            "WHERE approval_id = ? AND consumed = 0",
            (decision, reviewer, now, approval_id),
        )
        return cur.rowcount == 1

    def pending_count(self, now: float) -> int:
        """Approvals waiting for a decision and not yet expired, across every run."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM approvals WHERE consumed = 0 AND expires_at > ?", (now,)
        ).fetchone()
        return int(row[0])

    def decided(self) -> list[ApprovalRow]:
        """Every consumed approval (decided, or closed as expired)."""
        rows = self._db.execute("SELECT * FROM approvals WHERE consumed = 1").fetchall()
        return [self._approval(r) for r in rows]

    # ------------------------------------------------------------------ trace

    def add_trace(self, run_id: str, record: dict[str, Any], now: float) -> None:
        """Append one trace record (its own small transaction)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO trace (run_id, kind, at, record) VALUES (?, ?, ?, ?)",
                (run_id, record["kind"], now, _dump(record)),
            )

    def trace_records(self, run_id: str) -> list[dict[str, Any]]:
        """The run's trace records in order."""
        rows = self._db.execute(
            "SELECT record FROM trace WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
        return [json.loads(r["record"]) for r in rows]

    def count_calls(self, run_id: str) -> tuple[int, int]:
        """(model requests, tool requests) the run has made so far."""
        rows = self._db.execute(
            "SELECT kind, COUNT(*) FROM trace WHERE run_id = ? AND kind IN "
            "('model_call', 'tool_call') GROUP BY kind",
            (run_id,),
        ).fetchall()
        counts = {r[0]: int(r[1]) for r in rows}
        return counts.get("model_call", 0), counts.get("tool_call", 0)

    def has_trace_risk(self, run_id: str, risk: str) -> bool:
        """Whether any of the run's trace records carries ``risk`` (read in SQLite, one row)."""
        row = self._db.execute(
            "SELECT 1 FROM trace WHERE run_id = ? AND json_extract(record, '$.risk') = ? LIMIT 1",
            (run_id, risk),
        ).fetchone()
        return row is not None

    def keep_summary_only(self, db: sqlite3.Connection, run_id: str) -> None:
        """Drop a sampled-out run's detailed records (inside the terminal transaction)."""
        db.execute("DELETE FROM trace WHERE run_id = ? AND kind != 'summary'", (run_id,))

    def insert_trace(self, db: sqlite3.Connection, run_id: str, record: Any, now: float) -> None:
        """Append one trace record inside the caller's transaction."""
        db.execute(
            "INSERT INTO trace (run_id, kind, at, record) VALUES (?, ?, ?, ?)",
            (run_id, record["kind"], now, _dump(record)),
        )

    def prune_trace(self, cutoff: float) -> int:
        """Delete trace records of runs finished before ``cutoff``; returns how many went."""
        with self.transaction() as db:
            cur = db.execute(
                "DELETE FROM trace WHERE run_id IN (SELECT run_id FROM runs WHERE "
                "finished_at IS NOT NULL AND finished_at < ?)",
                (cutoff,),
            )
            return cur.rowcount
