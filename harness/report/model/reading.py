"""Reading a report file: bounded, refusing what is not a regular file, and saying what is
wrong with one that does not load (and how to regenerate it).

Imports :mod:`~harness.report.model.entries`, :mod:`~harness.report.model.summary`,
:mod:`~harness.report.model.collector` and :mod:`~harness.report.model.document`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pydantic_core
from pydantic import ValidationError

from harness.report.model.collector import (
    collector_paused,
)
from harness.report.model.document import (
    Report,
)
from harness.report.model.entries import (
    SCHEMA_VERSION,
    ReportError,
)
from harness.report.model.summary import (
    summarize,
)

MAX_REPORT_BYTES = 2 * 1024**3
"""The largest report file read (100,000 refund_happy-shaped items make about 0.8 GB)."""


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
    with collector_paused():
        return _validated(p, raw, regenerate)


def _validated(p: Path, raw: bytes, regenerate: str) -> Report:
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
