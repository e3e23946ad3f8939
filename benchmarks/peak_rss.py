"""Run one pytest session in this process, then print its peak RSS (KiB) as the last line."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import pytest


def peak_rss_kib() -> int:
    """This process's peak resident set size in KiB.

    ``VmHWM`` is the high-water mark of this process's own memory. ``ru_maxrss`` is not: Linux
    carries it over fork and exec, so a child of a large benchmark process reports its parent's
    peak. It is only the fallback where ``/proc`` is missing.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main(argv: list[str]) -> int:
    """Run ``pytest PYTEST_ARGS...``, then print ``{"exit": code, "maxrss_kib": peak}``."""
    code = pytest.main(argv)
    print(json.dumps({"exit": int(code), "maxrss_kib": peak_rss_kib()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
