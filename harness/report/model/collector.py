"""Pausing Python's cyclic garbage collector while a report's models are built in bulk.

A 100k-item report is tens of millions of small acyclic objects (models, lists, strings):
CPython's cyclic collector runs a collection every few hundred new container objects and,
when the surviving ones pile up, a full one over all of them. Measured on 5,000 items,
``ReportItem.model_validate`` of every item took 8.2 s with the collector on and 1.6 s with it
paused; ``Report.model_validate_json`` 9.0 s and 2.1 s. Nothing built there is cyclic, so
reference counting frees it as before; the collector runs again when the pause ends.

When it runs again, the models built during the pause are all new to it, and it walks them (and,
as they age, everything else) once more. The ``shakeout gate`` and ``shakeout merge`` commands
read whole reports and then exit, so each runs paused from start to end: ``shakeout gate`` on a
100,000-item report took 57 s with the collector back on after each step, 34-44 s paused.

Imports nothing of the package.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block, then restore it as it was.

    Nested pauses are fine: only the outermost one that found the collector on turns it
    back on, also when the block raises.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
