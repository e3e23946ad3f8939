"""Fixtures for every test: Hypothesis profiles, and child pytest sessions start without
langsmith's pytest plugin.

The Hypothesis profiles: CI is derandomized, local runs explore. They are loaded here, not in the
root conftest, so the scenario suite's processes (which load the root conftest) do not import
Hypothesis at start-up.

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
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=40)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

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
