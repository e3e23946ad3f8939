"""The versioned fault-injection report: its pydantic schema, summary maths and loading."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from faults.base import Surface
from faults.injection import BAIT_KEY

# 2: the report carries the session's plan and identity, and each check its ``harness`` flag.
SCHEMA_VERSION: Literal["2"] = "2"
MAX_REPORT_BYTES = 2 * 1024**3
"""The largest report file read (a 100k-item session writes about a fifth of this)."""
NONE_KEY = "none"
"""Row/column label for "no fault injected" and "no category reported"."""

Verdict = Literal["pass", "fail", "error"]
VERDICTS: tuple[Verdict, ...] = ("pass", "fail", "error")


class ReportError(Exception):
    """A report file cannot be used: missing, truncated, corrupt or of another schema version."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FiredFault(_Strict):
    """A fault that actually fired during the run."""

    key: str
    surface: str
    where: str = ""
    call_index: int | None = None
    label: str = ""


class InjectedFault(_Strict):
    """A fault the variant planned to inject (it may not have fired)."""

    key: str
    surface: str
    category: str | None = None
    transient: bool = False


class CheckOutcome(_Strict):
    """One check's verdict on the run; ``passed`` is None when the check did not apply."""

    name: str
    passed: bool | None
    reason: str = ""
    # A failure of this check is the scenario's or the harness's (ERROR), not the agent's (FAIL).
    harness: bool = False


class EffectEntry(_Strict):
    """A side effect committed by the run, with how many replays the ledger deduplicated."""

    tool: str
    idempotency_key: str | None = None
    replays: int = 0


class ApprovalEntry(_Strict):
    """An approval the run asked for and what the reviewer decided."""

    approval_id: str
    tool: str
    decision: str | None = None


class RequestEntry(_Strict):
    """One intercepted request of the run, in order, with the faults that touched it."""

    seq: int
    surface: str
    tool: str | None = None
    method: str
    url: str
    status: int | None = None
    error: str | None = None
    faults: list[str] = Field(default_factory=list)


class EventEntry(_Strict):
    """One event of the run's log, in order: what the world and the driver saw (evidence).

    ``kind``: ``request`` (surface, tool, method, url, status or error, faults), ``commit``
    (tool, request_seq, idempotency_key, body), ``delivery`` (approval_id, tool, verdict,
    arguments, expires_at), ``crash`` (point, where), ``restart`` (fresh), ``blocked``
    (what, target). ``t`` is the fake clock.
    """

    seq: int
    kind: Literal["request", "commit", "delivery", "crash", "restart", "blocked"]
    t: float = 0.0
    surface: str | None = None
    tool: str | None = None
    method: str | None = None
    url: str | None = None
    status: int | None = None
    error: str | None = None
    faults: list[str] = Field(default_factory=list)
    request_seq: int | None = None
    idempotency_key: str | None = None
    body: str | None = None
    approval_id: str | None = None
    verdict: str | None = None
    arguments: str | None = None
    expires_at: float | None = None
    point: str | None = None
    where: str | None = None
    fresh: bool | None = None
    what: str | None = None
    target: str | None = None


class QueueFigures(_Strict):
    """A load scenario's review queue as the harness measured it (``harness/load/``).

    Latencies are time to decision on the fake clock (delivery minus park), nearest rank;
    ``sla_met`` is None when no approval was decided.
    """

    runs: int
    capacity: int
    reviewers: int
    max_queue_length: int
    queued: int
    throttled: int
    throttle_events: int
    resumed_after_drain: int
    still_throttled: int
    silent_drops: int
    spurious_throttles: int
    decided: int
    expired: int
    latency_s: dict[str, float | None]
    sla_s: dict[str, float]
    sla_met: bool | None = None


class OutcomesEntry(_Strict):
    """A fault cell's acceptable outcomes: the fault's own, or a rule's with its reason."""

    accept: list[str]
    declared: list[str] = Field(default_factory=list)
    # the accepted outcome the run ended in (None unless the item passed)
    held: str | None = None
    # why a scenario's matrix.outcomes or [tool.shakeout.outcomes] changed them (None: unchanged)
    reason: str | None = None
    source: str = "fault"  # fault | scenario | pyproject.toml


class ReportItem(_Strict):
    """One scenario variant's outcome, as the runner produced it (or as the reporter inferred it).

    ``error`` holds the harness's own failure text (a collection error, a crashed worker, a
    runner exception) when there is one; the runner's entries leave it None.
    """

    nodeid: str
    scenario: str
    variant: str = "base"
    faults_fired: list[FiredFault] = Field(default_factory=list)
    faults_injected: list[InjectedFault] = Field(default_factory=list)
    terminal_state: str | None = None
    category: str | None = None
    verdict: Verdict
    checks: list[CheckOutcome] = Field(default_factory=list)
    effects: list[EffectEntry] = Field(default_factory=list)
    approvals: list[ApprovalEntry] = Field(default_factory=list)
    restarts: int = 0
    reexecuted_steps: int = 0
    duplicate_effects: int = 0
    crash: bool = False
    duration_s: float = 0.0
    seed: int = 0
    reproduce: str = ""
    outcomes: OutcomesEntry | None = None
    requests: list[RequestEntry] = Field(default_factory=list)
    events: list[EventEntry] = Field(default_factory=list)
    error: str | None = None
    queue: QueueFigures | None = None
    """A load scenario's queue figures; None for other items."""

    def injected_keys(self) -> list[str]:
        """Distinct injected fault keys in first-seen order, or ``["none"]`` when none were."""
        keys = list(dict.fromkeys(f.key for f in self.faults_injected))
        return keys or [NONE_KEY]

    def fired_keys(self) -> list[str]:
        """Distinct fired fault keys in first-seen order."""
        return list(dict.fromkeys(f.key for f in self.faults_fired))


class VerdictCounts(_Strict):
    """Items per verdict."""

    total: int = 0
    passed: int = Field(0, alias="pass")
    fail: int = 0
    error: int = 0

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CheckCounts(_Strict):
    """How often a check passed, failed or did not apply."""

    passed: int = 0
    failed: int = 0
    not_applicable: int = 0


class CoverageCell(_Strict):
    """How many items of a scenario planned a fault key, and in how many it fired."""

    injected: int = 0
    fired: int = 0


class CrashFigures(_Strict):
    """Crash-and-resume figures over all items."""

    crash_variants: int = 0
    restarts: int = 0
    reexecuted_steps: int = 0
    duplicate_effects: int = 0


class TransientRecovery(_Strict):
    """Items whose fired faults were all transient, and how many of them passed.

    ``rate`` is None when no such item exists (nothing to recover from).
    """

    items: int = 0
    recovered: int = 0
    rate: float | None = None


class InjectionCell(_Strict):
    """Injection items of one family on one surface (``input`` or ``tool``): how many
    contained the payload, how many did not, how many could not be judged, and in how many the
    payload reached the model (the scripted model took the bait)."""

    contained: int = 0
    not_contained: int = 0
    error: int = 0
    reached_model: int = 0


class TunedOutcome(_Strict):
    """Fault cells of one scenario and fault whose accepted outcomes a rule changed, and why."""

    scenario: str
    fault: str
    accept: list[str]
    declared: list[str] = Field(default_factory=list)
    reason: str
    source: str  # scenario | pyproject.toml
    items: int = 0
    passed: int = 0
    held: dict[str, int] = Field(default_factory=dict)
    """Accepted outcome -> passing items that ended in it."""


class Coverage(_Strict):
    """Scenario x fault key grid; a pair is *exercised* when the fault fired at least once."""

    matrix: dict[str, dict[str, CoverageCell]] = Field(default_factory=dict)
    planned_pairs: int = 0
    exercised_pairs: int = 0
    fraction: float | None = None


class Summary(_Strict):
    """Figures computed from the items; always recomputable with ``Report.build``."""

    total: int
    by_verdict: VerdictCounts
    by_fault: dict[str, VerdictCounts]
    by_category: dict[str, int]
    by_check: dict[str, CheckCounts]
    confusion: dict[str, dict[str, int]]
    coverage: Coverage
    crash: CrashFigures
    transient_recovery: TransientRecovery
    injection: dict[str, dict[str, InjectionCell]] = Field(default_factory=dict)
    """Injection family -> surface (``input`` / ``tool``) -> counts; empty without injection
    cells."""
    queue: dict[str, QueueFigures] = Field(default_factory=dict)
    """Load items' queue figures by node id; empty without load scenarios."""
    tuned_outcomes: list[TunedOutcome] = Field(default_factory=list)
    """Every rule that changed a fault's accepted outcomes, with its reason and its items."""


def nodeids_digest(nodeids: Iterable[str]) -> str:
    """The sha256 of the sorted node ids, one per line: the same set gives the same digest."""
    digest = hashlib.sha256()
    for nodeid in sorted(nodeids):
        digest.update(nodeid.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


class Plan(_Strict):
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


class SessionInfo(_Strict):
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


class Report(_Strict):
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
        models = [i if isinstance(i, ReportItem) else ReportItem.model_validate(i) for i in items]
        models.sort(key=lambda i: i.nodeid)
        if plan is None:
            plan = Plan.of(i.nodeid for i in models)
        return cls(seed=seed, session=session, plan=plan, summary=summarize(models), items=models)

    def to_json(self) -> str:
        """The report as indented JSON text ending with a newline."""
        return self.model_dump_json(indent=2, by_alias=True) + "\n"

    def write(self, path: str | Path) -> Path:
        """Write the report atomically (a reader never sees a half-written file).

        Args:
            path: destination; parent directories are created.

        Returns:
            The path written.
        """
        return write_text_atomic(path, self.to_json())


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a sibling temporary file and a rename.

    Args:
        path: destination; parent directories are created.
        text: the content.

    Returns:
        The destination path.

    Raises:
        OSError: the destination is a directory, a parent is a file, or the place is not
            writable; nothing is left behind then.
    """
    with open_atomic(path) as out:
        out.write(text)
    return Path(path)


@contextlib.contextmanager
def open_atomic(path: str | Path) -> Iterator[TextIO]:
    """Open a text file that replaces ``path`` in one rename when the block ends without error.

    The temporary file is unique and sits in the destination's directory (a rename across file
    systems is not atomic); on any error it is removed, so a failed write leaves neither a
    half-written destination nor a stray temporary file.

    Args:
        path: destination; parent directories are created.

    Yields:
        The open text file to write.

    Raises:
        OSError: the destination is a directory (IsADirectoryError), a parent is a file
            (NotADirectoryError / FileExistsError), or the place is not writable.
    """
    dest = Path(path)
    if dest.is_dir():
        raise IsADirectoryError(21, "is a directory", str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yield out
        # mkstemp creates 0600; a report is as readable as any file the user writes.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


_ITEMS_TAIL = '"items": []\n}\n'
# The items list sits at nesting depth 2 of the report's indent-2 JSON.
_ITEM_INDENT = " " * 4


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
        text = item.model_dump_json(indent=2, by_alias=True).replace("\n", "\n" + _ITEM_INDENT)
        self._items.write(("," if self._count else "") + "\n" + _ITEM_INDENT + text)
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
        if not head.endswith(_ITEMS_TAIL):  # pragma: no cover - pydantic changed its layout
            raise RuntimeError(f"unexpected report layout, ends with {head[-40:]!r}")
        try:
            with open_atomic(self.path) as out:
                if self._count:
                    out.write(head[: -len(_ITEMS_TAIL)] + '"items": [')
                    self._items.seek(0)
                    shutil.copyfileobj(self._items, out)
                    out.write("\n  ]\n}\n")
                else:
                    out.write(head)
        finally:
            self.close()
        return summary

    def close(self) -> None:
        """Release the temporary file without writing (idempotent)."""
        self._items.close()


def _verdict_counts(counts: Counter[str]) -> VerdictCounts:
    return VerdictCounts(
        total=sum(counts.values()),
        passed=counts["pass"],
        fail=counts["fail"],
        error=counts["error"],
    )


def _sorted_dict(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in sorted(d)}


def summarize(items: Iterable[ReportItem]) -> Summary:
    """Compute the summary figures of the items (order does not matter).

    Args:
        items: the report items.

    Returns:
        The summary.
    """
    acc = SummaryAccumulator()
    for item in items:
        acc.add(item)
    return acc.summary()


class SummaryAccumulator:
    """Builds the summary one item at a time, holding only counters (never the items).

    ``summarize`` is this over a list; the pytest session feeds it items as it streams the report.
    """

    def __init__(self) -> None:
        self._total = 0
        self._verdicts: Counter[str] = Counter()
        self._by_fault: dict[str, Counter[str]] = {}
        self._by_category: Counter[str] = Counter()
        self._by_check: dict[str, Counter[str]] = {}
        self._confusion: dict[str, Counter[str]] = {}
        self._cells: dict[str, dict[str, list[int]]] = {}
        self._crash = [0, 0, 0, 0]
        self._transient_items = self._transient_recovered = 0
        self._injection: dict[str, dict[str, Counter[str]]] = {}
        self._queue: dict[str, QueueFigures] = {}
        self._tuned: dict[tuple[str, str, str, str], tuple[OutcomesEntry, Counter[str]]] = {}

    def add(self, item: ReportItem) -> None:
        """Count one item.

        Args:
            item: the report item.
        """
        self._total += 1
        self._verdicts[item.verdict] += 1
        category = item.category or NONE_KEY
        self._by_category[category] += 1
        for key in item.injected_keys():
            self._by_fault.setdefault(key, Counter())[item.verdict] += 1
            self._confusion.setdefault(key, Counter())[category] += 1
        for check in item.checks:
            state = {True: "passed", False: "failed", None: "not_applicable"}[check.passed]
            self._by_check.setdefault(check.name, Counter())[state] += 1
        row = self._cells.setdefault(item.scenario, {})
        injected = {f.key for f in item.faults_injected}
        fired = set(item.fired_keys())
        for key in dict.fromkeys([*(f.key for f in item.faults_injected), *fired]):
            cell = row.setdefault(key, [0, 0])
            cell[0] += key in injected
            cell[1] += key in fired
        self._crash[0] += item.crash
        self._crash[1] += item.restarts
        self._crash[2] += item.reexecuted_steps
        self._crash[3] += item.duplicate_effects
        if _is_transient_only(item):
            self._transient_items += 1
            self._transient_recovered += item.verdict == "pass"
        if item.queue is not None:
            self._queue[item.nodeid] = item.queue
        aimed = _injection_of(item)
        if aimed is not None:
            family, surface = aimed
            counts = self._injection.setdefault(family, {}).setdefault(surface, Counter())
            judged = next((c for c in item.checks if c.name == INJECTION_CHECK), None)
            passed = None if item.verdict == "error" or judged is None else judged.passed
            counts[{True: "contained", False: "not_contained", None: "error"}[passed]] += 1
            counts["reached_model"] += any(f.key == BAIT_KEY for f in item.faults_fired)
        tuned = item.outcomes
        if tuned is not None and tuned.reason is not None and item.faults_injected:
            fault = item.faults_injected[-1].key  # a fault cell's own fault comes last
            rule = (item.scenario, fault, tuned.source, tuned.reason)
            counts = self._tuned.setdefault(rule, (tuned, Counter()))[1]
            counts["items"] += 1
            if item.verdict == "pass":
                counts["passed"] += 1
                counts[f"held:{tuned.held}"] += 1

    def summary(self) -> Summary:
        """The summary of the items added so far."""
        matrix = {
            scenario: {
                k: CoverageCell(injected=c[0], fired=c[1]) for k, c in _sorted_dict(row).items()
            }
            for scenario, row in _sorted_dict(self._cells).items()
        }
        planned = sum(len(row) for row in matrix.values())
        exercised = sum(1 for row in matrix.values() for c in row.values() if c.fired)
        items, recovered = self._transient_items, self._transient_recovered
        return Summary(
            total=self._total,
            by_verdict=_verdict_counts(self._verdicts),
            by_fault={k: _verdict_counts(c) for k, c in _sorted_dict(self._by_fault).items()},
            by_category=_sorted_dict(self._by_category),
            by_check={
                name: CheckCounts(
                    passed=c["passed"], failed=c["failed"], not_applicable=c["not_applicable"]
                )
                for name, c in _sorted_dict(self._by_check).items()
            },
            confusion={k: _sorted_dict(v) for k, v in _sorted_dict(self._confusion).items()},
            coverage=Coverage(
                matrix=matrix,
                planned_pairs=planned,
                exercised_pairs=exercised,
                fraction=exercised / planned if planned else None,
            ),
            crash=CrashFigures(
                crash_variants=self._crash[0],
                restarts=self._crash[1],
                reexecuted_steps=self._crash[2],
                duplicate_effects=self._crash[3],
            ),
            transient_recovery=TransientRecovery(
                items=items,
                recovered=recovered,
                rate=recovered / items if items else None,
            ),
            tuned_outcomes=[
                TunedOutcome(
                    scenario=scenario,
                    fault=fault,
                    accept=list(rule.accept),
                    declared=list(rule.declared),
                    reason=reason,
                    source=source,
                    items=c["items"],
                    passed=c["passed"],
                    held={
                        k.split(":", 1)[1]: n
                        for k, n in sorted(c.items())
                        if k.startswith("held:") and k != "held:None"
                    },
                )
                for (scenario, fault, source, reason), (rule, c) in sorted(
                    self._tuned.items(), key=lambda kv: kv[0]
                )
            ],
            injection={
                family: {
                    surface: InjectionCell(
                        contained=c["contained"],
                        not_contained=c["not_contained"],
                        error=c["error"],
                        reached_model=c["reached_model"],
                    )
                    for surface, c in _sorted_dict(row).items()
                }
                for family, row in _sorted_dict(self._injection).items()
            },
            queue=_sorted_dict(self._queue),
        )


INJECTION_CHECK = "injection_contained"
INJECTION_PREFIX = "inject:"


def _injection_of(item: ReportItem) -> tuple[str, str] | None:
    """An injection item's family and surface (``input`` or ``tool``), from its variant label
    ``inject:<family>@<point>``; None for other items."""
    if not item.variant.startswith(INJECTION_PREFIX):
        return None
    family, _, point = item.variant[len(INJECTION_PREFIX) :].partition("@")
    return family, "input" if point.startswith("input.") else "tool"


def _is_transient_only(item: ReportItem) -> bool:
    # A run counts towards transient recovery when at least one fault fired and every fault
    # the variant injected is transient: mixing in a permanent fault makes failure the
    # expected outcome. Harness errors are left out, since the agent never had its chance.
    # An injection cell breaks nothing to recover from: it is judged by injection_contained.
    if item.verdict == "error" or not item.faults_fired or not item.faults_injected:
        return False
    if any(f.surface == Surface.INJECTION.value for f in item.faults_injected):
        return False
    return all(f.transient for f in item.faults_injected)


def report_schema() -> dict[str, Any]:
    """The JSON Schema of the report file (what ``shakeout schema report`` prints)."""
    schema = Report.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://shakeout.dev/schema/report-v{SCHEMA_VERSION}.json"
    return schema


class FileRefused(Exception):
    """An input file was not read: not a regular file, too large, or unreadable (one-line text)."""


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_bounded(path: str | Path, *, limit: int, what: str) -> bytes:
    """Read a whole regular file of at most ``limit`` bytes, refusing anything else first.

    The file is opened with ``O_NONBLOCK`` (so a FIFO with no writer cannot hang the open) and
    its type and size are checked on the open descriptor, before a byte is read; ``/dev/zero``,
    directories, FIFOs and sockets are refused, and so is a file that grows past the limit
    while it is read.

    Args:
        path: the file.
        limit: the largest size accepted, in bytes.
        what: what the file is, for messages (e.g. ``"report"``).

    Returns:
        The file's bytes.

    Raises:
        FileRefused: missing, not a regular file, larger than ``limit``, or unreadable.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileRefused(f"{what} {p} does not exist") from None
    except OSError as exc:
        raise FileRefused(f"{what} {p} cannot be opened ({exc.strerror or exc})") from None
    try:
        # Checked on the descriptor before any read (FileIO itself refuses only directories).
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
            raise FileRefused(f"{what} {p} is {kind}, not a regular file; give the file's path")
        if info.st_size > limit:
            raise FileRefused(
                f"{what} {p} is {info.st_size} bytes, more than the {limit} bytes read"
            )
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise FileRefused(f"{what} {p} cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise FileRefused(f"{what} {p} grew past {limit} bytes while it was read")
    return data


def _one_line(text: str) -> str:
    # Messages end up on one stderr line; a hostile file's text must not add lines.
    return " ".join(text.split())


def load_report(path: str | Path) -> Report:
    """Read and validate a report file.

    Reading is bounded: only a regular file of at most :data:`MAX_REPORT_BYTES` is read, JSON
    nesting deeper than 200 levels and integers of more than about 4300 digits are refused by
    the parser (pydantic-core's), and NaN or infinite numbers are not JSON.

    Args:
        path: the JSON report written by the pytest plugin or by ``shakeout merge``.

    Returns:
        The report.

    Raises:
        ReportError: the file is missing, not a regular file, too large, empty, truncated,
            not JSON, of another ``schema_version``, does not match the schema, or its summary
            disagrees with its items.
    """
    p = Path(path)
    regenerate = "rerun pytest with --chaos-report=PATH to write it again"
    try:
        raw = read_bounded(p, limit=MAX_REPORT_BYTES, what="report")
    except FileRefused as exc:
        raise ReportError(f"{exc}; {regenerate}") from None
    if not raw.strip():
        raise ReportError(f"report {p} is empty; {regenerate}")
    report = None
    # One pass over the bytes (parse and validate together, in pydantic-core) where it reads
    # exactly what the step-by-step path reads: that one-pass parser takes NaN and Infinity,
    # which are not JSON, so a file holding either word anywhere takes the step-by-step path.
    # A report the one pass refuses is read again step by step, for a message that says what
    # is wrong.
    if b"NaN" not in raw and b"Infinity" not in raw:
        try:
            report = Report.model_validate_json(raw)
        except ValidationError:
            report = None
    if report is None:
        report = _diagnosed(p, raw, regenerate)
    if report.summary != summarize(report.items):
        raise ReportError(
            f"report {p} has a summary that does not match its items (edited by hand?); "
            f"{regenerate} or merge it again with `shakeout merge`"
        )
    return report


def _diagnosed(p: Path, raw: bytes, regenerate: str) -> Report:
    """Validate a report the one-pass decoder refused, step by step: the first step that fails
    raises the :class:`ReportError` that names what is wrong."""
    try:
        # pydantic-core's parser (jiter) bounds nesting depth and number size itself, where
        # json.loads raises RecursionError or a bare ValueError deep inside.
        data = pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        message = _one_line(str(exc))
        body = raw.strip()
        cut = "EOF while parsing" in message and body.startswith(b"{")
        what = "truncated" if cut else "not valid JSON"
        raise ReportError(f"report {p} is {what} ({message}); {regenerate}") from None
    if not isinstance(data, dict):
        raise ReportError(
            f"report {p} holds a JSON {type(data).__name__}, expected an object with "
            f"schema_version, seed, plan, summary and items; {regenerate}"
        )
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        shown = _one_line(repr(version))[:40]
        raise ReportError(
            f"report {p} has schema_version {shown}, this shakeout reads "
            f"{SCHEMA_VERSION!r}; regenerate it with this version or use the matching shakeout"
        )
    try:
        report = Report.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ReportError(
            _one_line(
                f"report {p} does not match the report schema ({exc.error_count()} problem(s): "
                f"{problems[:500]}); {regenerate}"
            )
        ) from None
    return report
