"""The floors of P5b and P7: pytest's own cost per item, with no shakeout plugin loaded.

Loaded with ``-p benchmarks.bare_items -p no:shakeout``: each ``.yaml`` file becomes
``BARE_PER_FILE`` (an environment variable) plain items named like a variant
(``walk_0000[tool_http_503@get_item#1#k]``), carrying the ``chaos`` marker, that do nothing.
What such a session keeps per item (the item, its three ``TestReport``s held by the terminal
reporter to the end) is pytest's, not shakeout's (P5b, over P5b's generated directories).

``BARE_IMPORTS`` (comma-separated module names, optional) is imported at configure time by
every pytest process that runs items (not an xdist controller). P7's floor is a ``-n 2``
session of as many bare items as the scenario suite, whose workers import the agent and its
SDKs as the suite's workers must.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PYTEST_ARGS = ("-p", "no:shakeout", "-p", "benchmarks.bare_items", "-o", "chaos_agent=x")
"""What turns a pytest command into a bare session: this plugin instead of shakeout's."""


class BareItem(pytest.Item):
    def runtest(self) -> None:
        """Nothing: the item exists to be kept."""

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario: {self.name}"


class BareFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        for k in range(int(os.environ["BARE_PER_FILE"])):
            item = BareItem.from_parent(self, name=f"{self.path.stem}[tool_http_503@get_item#{k}]")
            item.add_marker(pytest.mark.chaos)
            yield item


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: the marker scenario items carry")
    # As the suite: the processes that run items import the agent, an xdist controller does not.
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        for name in filter(None, os.environ.get("BARE_IMPORTS", "").split(",")):
            importlib.import_module(name)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    if file_path.suffix == ".yaml":
        return BareFile.from_parent(parent, path=file_path)
    return None
