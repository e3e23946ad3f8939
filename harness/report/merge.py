"""Merging shard reports (one per CI job) into one report with a recomputed summary and plan."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Sequence
from typing import TextIO

from harness.report.model import (
    Plan,
    Report,
    ReportError,
    ReportItem,
    SessionInfo,
    load_report,
)
from harness.report.model.collector import collector_paused

EXIT_OK, EXIT_ERROR = 0, 2


def _shard(plan: Plan) -> tuple[int, int]:
    k, _, n = str(plan.shard).partition("/")
    try:
        return int(k), int(n)
    except ValueError:
        raise ReportError(f"a shard's plan names shard {plan.shard!r}, expected K/N") from None


def _merged_plan(reports: Sequence[tuple[str, Report]]) -> Plan:
    # Shards of one session (--chaos-shard K/N) each record the same selection; their plans
    # must be N distinct shards that add up to exactly that selection. Reports without a shard
    # (split some other way) plan the union of what each planned.
    sharded = [(name, r.plan) for name, r in reports if r.plan.shard is not None]
    nodeids = [n for _, r in reports for n in r.plan.nodeids]
    if not sharded:
        return Plan.of(nodeids)
    if len(sharded) != len(reports):
        plain = next(name for name, r in reports if r.plan.shard is None)
        raise ReportError(
            f"cannot merge {plain} (no --chaos-shard) with {sharded[0][0]} (shard "
            f"{sharded[0][1].shard}): merge the shards of one sharded session only"
        )
    first_name, first = sharded[0]
    total = _shard(first)[1]
    seen: dict[int, str] = {}
    for name, plan in sharded:
        k, n = _shard(plan)
        if plan.selection_sha256 is None or plan.selection_items is None:
            raise ReportError(
                f"cannot merge {name}: shard {plan.shard} does not record the selection it was "
                "cut from (its xdist workers died before reporting it); rerun that shard"
            )
        if (plan.selection_items, plan.selection_sha256) != (
            first.selection_items,
            first.selection_sha256,
        ) or n != total:
            raise ReportError(
                f"cannot merge {name} (shard {plan.shard} of {plan.selection_items} selected "
                f"items) with {first_name} (shard {first.shard} of {first.selection_items}): "
                "shards of one session select the same items with the same N; rerun the shards "
                "with the same paths, -k/-m and --chaos-shard=K/N"
            )
        if k in seen:
            raise ReportError(
                f"cannot merge: {seen[k]} and {name} are both shard {plan.shard}; give each "
                "shard once"
            )
        seen[k] = name
    missing = sorted(set(range(1, total + 1)) - set(seen))
    if missing:
        raise ReportError(
            f"cannot merge: shard(s) {', '.join(f'{k}/{total}' for k in missing)} missing; "
            f"merge all {total} shards of the session"
        )
    merged = Plan.of(nodeids)
    if (merged.items, merged.selection_sha256) != (first.selection_items, first.selection_sha256):
        raise ReportError(
            f"cannot merge: the shards plan {merged.items} items together, but their session "
            f"selected {first.selection_items} (or other items); rerun the shards of one "
            "session with the same code and options"
        )
    return merged


def _merged_session(reports: Sequence[tuple[str, Report]]) -> SessionInfo | None:
    sessions = [r.session for _, r in reports]
    known = [s for s in sessions if s is not None]
    if not known:
        return None
    ids = {s.id for s in known}
    # One id across the shards (CI passed the same --chaos-session-id to each) survives the
    # merge, so `shakeout gate --session ID` still recognises the run; otherwise a new one.
    session_id = ids.pop() if len(ids) == 1 and len(known) == len(sessions) else None
    return SessionInfo.new(session_id or uuid.uuid4().hex).model_copy(
        update={"started_at": min(s.started_at for s in known)}
    )


def merge_reports(reports: Sequence[tuple[str, Report]]) -> Report:
    """Merge loaded shard reports into one.

    Args:
        reports: (source name, report) pairs, at least one.

    Returns:
        The merged report, items sorted by nodeid, the summary recomputed, and the plan the
        shards' plans make together.

    Raises:
        ReportError: no reports, shards of different schema versions or seeds, a nodeid
            present in two shards, a shard from an interrupted session, or shards whose plans
            do not make one session's (mismatched selections, a shard given twice or missing).
    """
    if not reports:
        raise ReportError("nothing to merge: give at least one report file")
    first_name, first = reports[0]
    owner: dict[str, str] = {}
    items: list[ReportItem] = []
    for name, report in reports:
        if report.schema_version != first.schema_version:
            raise ReportError(
                f"cannot merge {name} (schema_version {report.schema_version!r}) with "
                f"{first_name} (schema_version {first.schema_version!r}); regenerate the shards "
                "with one shakeout version"
            )
        if report.seed != first.seed:
            raise ReportError(
                f"cannot merge {name} (seed {report.seed}) with {first_name} (seed "
                f"{first.seed}): shards of one run share a seed; rerun the shards with "
                f"--chaos-seed={first.seed}"
            )
        if report.session is not None and report.session.interrupted:
            raise ReportError(
                f"cannot merge {name}: its session did not finish "
                f"({' '.join(report.session.interrupted.split())}); rerun that shard"
            )
        for item in report.items:
            if item.nodeid in owner:
                raise ReportError(
                    f"cannot merge: {item.nodeid} is in both {owner[item.nodeid]} and {name}; "
                    "each item must run in exactly one shard (check the shard selection)"
                )
            owner[item.nodeid] = name
            items.append(item)
    return Report.build(
        items, first.seed, plan=_merged_plan(reports), session=_merged_session(reports)
    )


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# The whole command, with the cyclic collector paused (see collector.py).
@collector_paused()
def merge_main(
    paths: Sequence[str],
    out: str,
    *,
    stream: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Merge shard report files into ``out``; the ``shakeout merge`` command.

    The output is written atomically: a temporary file in the destination's directory renamed
    into place, removed on any failure.

    Args:
        paths: the shard report files.
        out: where to write the merged report.
        stream: where to print the outcome (stdout by default).
        err: where to print an error, one line (stderr by default).

    Returns:
        0 when the merged report was written, 2 when a shard is unusable, the shards do not fit
        together, or ``out`` cannot be written (nothing is written then).
    """
    target = stream if stream is not None else sys.stdout
    errors = err if err is not None else sys.stderr
    try:
        merged = merge_reports([(p, load_report(p)) for p in paths])
    except ReportError as exc:
        print(f"shakeout merge: ERROR {' '.join(str(exc).split())}", file=errors)
        return EXIT_ERROR
    try:
        merged.write(out)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        print(
            f"shakeout merge: ERROR cannot write {out} ({why}); give -o a file path in a "
            "writable directory",
            file=errors,
        )
        return EXIT_ERROR
    print(
        f"shakeout merge: wrote {out} ({_counted(len(merged.items), 'item')} from "
        f"{_counted(len(paths), 'report')})",
        file=target,
    )
    return EXIT_OK
