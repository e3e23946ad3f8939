"""Fixtures of the adapter tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from example_session import Session, example_runner


@pytest.fixture
def run_example(pytester: pytest.Pytester) -> Callable[..., Session]:
    """Runs an example's scenarios and planted-bug variants in a pytester subprocess."""
    return example_runner(pytester)
