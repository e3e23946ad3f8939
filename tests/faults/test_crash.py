from __future__ import annotations

import pytest

from faults.base import registry
from faults.crash import (
    CrashAfterCheckpoint,
    CrashAfterEffect,
    CrashBeforeStep,
    CrashTerminalWrite,
    CrashWhileParked,
)
from faults.surfaces import CrashFault, CrashMode, CrashPoint

CRASHES = [
    CrashBeforeStep,
    CrashAfterEffect,
    CrashAfterCheckpoint,
    CrashWhileParked,
    CrashTerminalWrite,
]


def test_one_crash_fault_per_point() -> None:
    assert sorted(c.point for c in CRASHES) == sorted(CrashPoint)
    assert all(registry()[c.key] is c for c in CRASHES)


@pytest.mark.parametrize("cls", CRASHES)
def test_crash_faults_must_be_survived(cls: type[CrashFault]) -> None:
    assert cls.category is None
    assert cls.transient
    assert cls().mode is CrashMode.IN_PROCESS


def test_matches_the_point_and_the_targeted_step() -> None:
    anywhere = CrashBeforeStep()
    assert anywhere.matches("before_step", "classify")
    assert not anywhere.matches("after_checkpoint", "classify")
    gather = CrashBeforeStep(target="gather")
    assert gather.matches("before_step", "gather")
    assert not gather.matches("before_step", "classify")


def test_label_shows_a_hard_crash_and_the_step() -> None:
    assert CrashAfterEffect(target="act").label() == "crash_after_effect@act#1"
    hard = CrashAfterEffect(target="act", mode=CrashMode.HARD)
    assert hard.label() == "crash_after_effect-hard@act#1"
