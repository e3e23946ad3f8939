"""Fixtures for the refund desk's tests: a fake clock, fakes, and desks bound to a world."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from refund_world import ORDER, Boundary, DeskFactory, FakeClock, World

from reference_agent import RefundDesk, Settings
from reference_agent.fakes import FakeModel, FakeTools


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def model() -> FakeModel:
    return FakeModel()


@pytest.fixture
def tools() -> FakeTools:
    return FakeTools(
        orders={"O-1001": dict(ORDER), "O-2": {**ORDER, "order_id": "O-2", "customer_id": "C-9"}},
        customers={"C-7": {"customer_id": "C-7", "email": "ada@example.test", "name": "Ada"}},
        policy={"window_days": 30, "max_refund": 500.0},
    )


@pytest.fixture
def make_desk(
    model: FakeModel, tools: FakeTools, clock: FakeClock, tmp_path: Path
) -> Iterator[DeskFactory]:
    """Build a desk over the fakes and bind it to a world in ``tmp_path``."""
    built: list[RefundDesk] = []

    def make(
        *, config: dict[str, Any] | None = None, boundary: Any = None, state: Path | None = None
    ) -> RefundDesk:
        desk = RefundDesk(
            Settings(model_base_url="http://model.test/v1", tools_base_url="http://tools.test"),
            model_http_client=model.client(),
            tools_http_client=tools.client(),
        )
        desk.begin(
            World(
                state or tmp_path / "state",
                clock,
                config or {},
                boundary=boundary or Boundary(),
            )
        )
        built.append(desk)
        return desk

    yield make
    for desk in built:
        desk.close()
