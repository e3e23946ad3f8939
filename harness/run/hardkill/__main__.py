"""``python -m harness.run.hardkill [--zygote FD] FACTORY ENDPOINTS_JSON``: an agent process.

Started by :mod:`harness.run.hardkill.processes`, never by hand; runs
:mod:`harness.run.hardkill.child`.
"""

from __future__ import annotations

import sys

from harness.run.hardkill.child import spawned_main, zygote_main

if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--zygote":
        zygote_main(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 3:
        spawned_main(sys.argv[1], sys.argv[2])
    else:
        sys.exit(
            "usage: python -m harness.run.hardkill [--zygote FD] FACTORY ENDPOINTS_JSON "
            "(started by shakeout's hard-kill crash mode)"
        )
