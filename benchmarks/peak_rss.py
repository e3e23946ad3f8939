"""Run one pytest session in this process, then print its peak RSS (KiB) as the last line."""

from __future__ import annotations

import json
import resource
import sys

import pytest


def main(argv: list[str]) -> int:
    """Run ``pytest PYTEST_ARGS...``, then print ``{"exit": code, "maxrss_kib": peak}``."""
    code = pytest.main(argv)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"exit": int(code), "maxrss_kib": peak}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
