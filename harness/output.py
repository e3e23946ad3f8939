"""Writing output files safely: atomically, never through a symbolic link, failing in one line.

Every file shakeout writes (the JSON report, Markdown, HTML, an explored scenario, an imported
cassette, a merged report) goes through here. A file is written to a temporary file in the
destination's own directory and renamed over the destination (``os.replace``), so a reader never
sees half a report and a crash leaves the old file intact. A symbolic link at the destination is
refused, never followed: a link planted in a shared CI workspace must not make shakeout overwrite
its target. The rename itself would replace the link rather than write through it; the explicit
check turns that into a refusal the user sees.

Errors::

    OutputError     a file or directory cannot be written; its message is one line saying
                    what was refused or failed, where, and what to do
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_OPEN_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)


class OutputError(Exception):
    """A file cannot be written; the message is one line naming the path and the fix."""


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")  # pragma: no cover - "/" always exists


def _check_parent(dest: Path, what: str) -> None:
    parent = dest.parent
    existing = _nearest_existing(parent)
    if not existing.is_dir():
        raise OutputError(
            f"cannot write the {what} {dest}: {existing} is a file, not a directory; "
            "choose a path in a directory"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(
            f"cannot write the {what} {dest}: directory {existing} is not writable; "
            "choose a writable directory or fix its permissions"
        )


def check_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """Check, without writing, that ``path`` can receive an output file.

    Args:
        path: the destination file.
        what: what the file is, for the message (``"JSON report"``, ``"Markdown summary"``).

    Returns:
        The path.

    Raises:
        OutputError: the path is a symbolic link or a directory, lies under a file, or its
            directory (or the nearest one that exists) is not writable.
    """
    dest = Path(path)
    if dest.is_symlink():
        raise OutputError(
            f"refusing to write the {what} {dest}: it is a symbolic link (to "
            f"{os.readlink(dest)}); remove the link or choose another path"
        )
    if dest.is_dir():
        raise OutputError(
            f"cannot write the {what} {dest}: it is a directory; give a file path, "
            f"e.g. {dest / 'shakeout.out'}"
        )
    _check_parent(dest, what)
    return dest


def check_directory(path: str | os.PathLike[str], what: str = "output directory") -> Path:
    """Check, without writing, that ``path`` is (or can become) a writable directory.

    Args:
        path: the directory.
        what: what it is for, for the message.

    Returns:
        The path.

    Raises:
        OutputError: the path is a symbolic link or a file, or cannot be created or written.
    """
    dest = Path(path)
    if dest.is_symlink():
        raise OutputError(
            f"refusing to use {dest} as the {what}: it is a symbolic link (to "
            f"{os.readlink(dest)}); remove the link or choose another directory"
        )
    if os.path.lexists(dest) and not dest.is_dir():
        raise OutputError(
            f"cannot use {dest} as the {what}: it is a file; give a directory "
            f"(e.g. {dest.parent / 'explored'})"
        )
    existing = _nearest_existing(dest)
    if not existing.is_dir():
        raise OutputError(
            f"cannot use {dest} as the {what}: {existing} is a file, not a directory; "
            "choose a path in a directory"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(
            f"cannot use {dest} as the {what}: directory {existing} is not writable; "
            "choose a writable directory or fix its permissions"
        )
    return dest


def _make_parent(dest: Path, what: str) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot write the {what} {dest}: cannot create directory {dest.parent} "
            f"({_reason(exc)}); choose a path in a writable directory"
        ) from None


def _publish(tmp: Path, dest: Path, what: str) -> None:
    # Checked again right before the rename: the link may have been planted during the run.
    check_file(dest, what)
    try:
        os.replace(tmp, dest)
    except OSError as exc:
        raise OutputError(
            f"cannot write the {what} {dest}: {_reason(exc)}; choose another path"
        ) from None


def write_text(
    path: str | os.PathLike[str], text: str, what: str = "file", *, parents: bool = True
) -> Path:
    """Write ``text`` to ``path`` atomically, refusing a symbolic link at ``path``.

    The file gets the usual permissions (0666 less the umask).

    Args:
        path: the destination file.
        text: the content (written as UTF-8).
        what: what the file is, for messages.
        parents: create missing parent directories (else a missing one is an error).

    Returns:
        The destination path.

    Raises:
        OutputError: the destination is refused or the write failed (one-line message).
    """
    dest = check_file(path, what)
    if parents:
        _make_parent(dest, what)
    elif not dest.parent.is_dir():
        raise OutputError(
            f"cannot write the {what} {dest}: directory {dest.parent} does not exist; "
            "create it first"
        )
    data = text.encode("utf-8")
    for _ in range(100):
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, _OPEN_NEW, 0o666)
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
        except OSError as exc:
            raise OutputError(
                f"cannot write the {what} {dest}: {_reason(exc)} in {dest.parent}; "
                "choose a writable directory"
            ) from None
        break
    else:  # pragma: no cover - see above
        raise OutputError(f"cannot write the {what} {dest}: no free temporary file name")
    try:
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            raise OutputError(
                f"cannot write the {what} {dest}: {_reason(exc)}; free space or choose another path"
            ) from None
        _publish(tmp, dest, what)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return dest


@contextlib.contextmanager
def staged(path: str | os.PathLike[str], what: str = "file") -> Iterator[Path]:
    """A path to write ``path``'s content to; renamed over ``path`` when the block succeeds.

    For writers that open their own file (a streaming report writer): the staged path is in a
    private directory next to the destination, so the rename stays on one file system. When
    the block raises, nothing is published and the staging directory is removed.

    Args:
        path: the destination file.
        what: what the file is, for messages.

    Yields:
        The path to write.

    Raises:
        OutputError: the destination is refused, or staging or publishing failed.
    """
    dest = check_file(path, what)
    _make_parent(dest, what)
    try:
        tmpdir = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    except OSError as exc:
        raise OutputError(
            f"cannot write the {what} {dest}: {_reason(exc)} in {dest.parent}; "
            "choose a writable directory"
        ) from None
    try:
        tmp = tmpdir / dest.name
        yield tmp
        if not tmp.exists():
            raise OutputError(f"the {what} {dest} was not written (nothing was staged)")
        _publish(tmp, dest, what)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def append_text(path: str | os.PathLike[str], text: str, what: str = "file") -> Path:
    """Append ``text`` to ``path`` (created if missing), never through a symbolic link.

    For files another tool owns and collects from, like ``$GITHUB_STEP_SUMMARY``.

    Args:
        path: the file.
        text: the content (UTF-8).
        what: what the file is, for messages.

    Returns:
        The path.

    Raises:
        OutputError: the path is a link or a directory, or the append failed.
    """
    dest = Path(path)
    try:
        fd = os.open(dest, _OPEN_APPEND, 0o666)
    except OSError as exc:
        link = " (a symbolic link: refused)" if dest.is_symlink() else ""
        raise OutputError(
            f"cannot append to the {what} {dest}{link}: {_reason(exc)}; check the path"
        ) from None
    try:
        with os.fdopen(fd, "ab") as fh:
            fh.write(text.encode("utf-8"))
    except OSError as exc:
        raise OutputError(f"cannot append to the {what} {dest}: {_reason(exc)}") from None
    return dest
