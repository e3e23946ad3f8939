"""Fixtures for every test: child pytest sessions start without langsmith's pytest plugin.

langsmith (pulled in by the langgraph extra) registers a pytest plugin that imports its whole
client at start-up: ~2.5 s per interpreter here. The project's own configuration turns it off
(pyproject's addopts), but the sessions the tests start (pytester projects, the adapter
examples, the starters of ``shakeout init``, the benchmark smoke run) have configurations of
their own. ``PYTEST_ADDOPTS`` reaches all of them; pytester deletes it from its environment,
so the ``pytester`` fixture sets it again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

NO_LANGSMITH = "-p no:langsmith_plugin"


def _addopts() -> str:
    current = os.environ.get("PYTEST_ADDOPTS", "")
    return current if NO_LANGSMITH in current else f"{current} {NO_LANGSMITH}".strip()


@pytest.fixture(autouse=True, scope="session")
def _child_sessions_skip_langsmith() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTEST_ADDOPTS", _addopts())
        yield


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTEST_ADDOPTS", NO_LANGSMITH)
    return pytester
