"""``python -m harness.cli``: the ``shakeout`` command."""

from harness.cli import main

raise SystemExit(main())
