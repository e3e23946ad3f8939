"""Writing a file atomically: a reader never sees it half-written.

Imports nothing of the package.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


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
