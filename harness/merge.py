"""Merging shard reports (one per CI job) into one report with a recomputed summary."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from harness.report_model import Report, ReportError, ReportItem, load_report

EXIT_OK, EXIT_ERROR = 0, 2


def merge_reports(reports: Sequence[tuple[str, Report]]) -> Report:
    """Merge loaded shard reports into one.

    Args:
        reports: (source name, report) pairs, at least one.

    Returns:
        The merged report, items sorted by nodeid and the summary recomputed.

    Raises:
        ReportError: no reports, shards of different schema versions or seeds, or a nodeid
            present in two shards.
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
        for item in report.items:
            if item.nodeid in owner:
                raise ReportError(
                    f"cannot merge: {item.nodeid} is in both {owner[item.nodeid]} and {name}; "
                    "each item must run in exactly one shard (check the shard selection)"
                )
            owner[item.nodeid] = name
            items.append(item)
    return Report.build(items, first.seed)


def merge_main(paths: Sequence[str], out: str, *, stream: TextIO | None = None) -> int:
    """Merge shard report files into ``out``; the ``shakeout merge`` command.

    Args:
        paths: the shard report files.
        out: where to write the merged report.
        stream: where to print (stdout by default).

    Returns:
        0 when the merged report was written, 2 when a shard is unusable or the shards do not fit
        together (nothing is written then).
    """
    target = stream if stream is not None else sys.stdout
    try:
        merged = merge_reports([(p, load_report(p)) for p in paths])
    except ReportError as exc:
        print(f"shakeout merge: ERROR {exc}", file=target)
        return EXIT_ERROR
    merged.write(out)
    print(
        f"shakeout merge: wrote {out} ({len(merged.items)} items from {len(paths)} reports)",
        file=target,
    )
    return EXIT_OK
