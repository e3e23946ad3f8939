from __future__ import annotations

import faults
from faults.base import registry


def test_every_registered_fault_is_exported_under_its_class_name() -> None:
    for cls in registry().values():
        if cls.__module__.startswith("faults."):
            assert getattr(faults, cls.__name__) is cls
            assert cls.__name__ in faults.__all__


def test_all_names_exist_and_are_unique() -> None:
    assert all(hasattr(faults, name) for name in faults.__all__)
    assert len(set(faults.__all__)) == len(faults.__all__)


def test_public_entry_points_are_exported() -> None:
    for name in ("registry", "catalogue", "faults_main", "INPUT_STRATEGIES", "edge_case_inputs"):
        assert name in faults.__all__
