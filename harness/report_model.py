"""The versioned fault-injection report: its pydantic schema, summary maths and loading."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION: Literal["1"] = "1"
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
    requests: list[RequestEntry] = Field(default_factory=list)
    events: list[EventEntry] = Field(default_factory=list)
    error: str | None = None

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


class Report(_Strict):
    """The fault-injection report: one file per session, the same content whatever the workers."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    seed: int
    summary: Summary
    items: list[ReportItem]

    @classmethod
    def build(cls, items: Iterable[ReportItem | Mapping[str, Any]], seed: int) -> Report:
        """Validate items, sort them by nodeid and compute the summary.

        Args:
            items: report items, as models or JSON-able dicts in the runner's shape.
            seed: the session seed.

        Returns:
            The report.

        Raises:
            pydantic.ValidationError: an item does not match the item schema.
        """
        models = [i if isinstance(i, ReportItem) else ReportItem.model_validate(i) for i in items]
        models.sort(key=lambda i: i.nodeid)
        return cls(seed=seed, summary=summarize(models), items=models)

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
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(dest)
    return dest


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
    """

    def __init__(self, path: str | Path, seed: int) -> None:
        self.path = Path(path)
        self.seed = seed
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
        head = Report(seed=self.seed, summary=summary, items=[]).to_json()
        if not head.endswith(_ITEMS_TAIL):  # pragma: no cover - pydantic changed its layout
            raise RuntimeError(f"unexpected report layout, ends with {head[-40:]!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as out:
            if self._count:
                out.write(head[: -len(_ITEMS_TAIL)] + '"items": [')
                self._items.seek(0)
                shutil.copyfileobj(self._items, out)
                out.write("\n  ]\n}\n")
            else:
                out.write(head)
        tmp.replace(self.path)
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
        )


def _is_transient_only(item: ReportItem) -> bool:
    # A run counts towards transient recovery when at least one fault fired and every fault
    # the variant injected is transient: mixing in a permanent fault makes failure the
    # expected outcome. Harness errors are left out, since the agent never had its chance.
    if item.verdict == "error" or not item.faults_fired or not item.faults_injected:
        return False
    return all(f.transient for f in item.faults_injected)


def report_schema() -> dict[str, Any]:
    """The JSON Schema of the report file (what ``shakeout schema report`` prints)."""
    schema = Report.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://shakeout.dev/schema/report-v{SCHEMA_VERSION}.json"
    return schema


def load_report(path: str | Path) -> Report:
    """Read and validate a report file.

    Args:
        path: the JSON report written by the pytest plugin or by ``shakeout merge``.

    Returns:
        The report.

    Raises:
        ReportError: the file is missing, empty, truncated, not JSON, of another
            ``schema_version``, does not match the schema, or its summary disagrees with its items.
    """
    p = Path(path)
    regenerate = "rerun pytest with --chaos-report=PATH to write it again"
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"report {p} does not exist; {regenerate}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"report {p} cannot be read ({exc}); {regenerate}") from None
    if not text.strip():
        raise ReportError(f"report {p} is empty; {regenerate}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # The writer always ends the file with the object's closing brace, so an opening brace
        # without one means the file was cut short (a killed process, a partial upload).
        body = text.strip()
        cut = exc.pos >= len(body) or (body.startswith("{") and not body.endswith("}"))
        what = "truncated" if cut else "not valid JSON"
        raise ReportError(
            f"report {p} is {what} ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            f"{regenerate}"
        ) from None
    if not isinstance(data, dict):
        raise ReportError(
            f"report {p} holds a JSON {type(data).__name__}, expected an object with "
            f"schema_version, seed, summary and items; {regenerate}"
        )
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ReportError(
            f"report {p} has schema_version {version!r}, this shakeout reads "
            f"{SCHEMA_VERSION!r}; regenerate it with this version or use the matching shakeout"
        )
    try:
        report = Report.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ReportError(
            f"report {p} does not match the report schema ({exc.error_count()} problem(s): "
            f"{problems}); {regenerate}"
        ) from None
    if report.summary != summarize(report.items):
        raise ReportError(
            f"report {p} has a summary that does not match its items (edited by hand?); "
            f"{regenerate} or merge it again with `shakeout merge`"
        )
    return report
