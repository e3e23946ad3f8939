"""Fixtures the harness tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import scripted_provider
from canary import Canary, serve
from library import scenario_data, without_matrices
from toy_agents.mini import MiniAgent, build_adapter

from harness.run.runner import endpoints_of


@pytest.fixture(scope="module")
def mini() -> Iterator[MiniAgent]:
    """The faulty-on-request mini agent, one per test module, aimed at the library's endpoints;
    a hung ``never_terminates`` run is released at teardown."""
    agent = build_adapter(endpoints_of(without_matrices(scenario_data("refund_happy"))))
    yield agent
    agent.release.set()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every time.sleep the SDK makes during the test, still slept for real."""
    return scripted_provider.record_sleeps(monkeypatch)


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    """A loopback server counting the requests that reach it (none should, when intercepted)."""
    with serve() as server:
        yield server
