"""What every check is: a named rule over one run's record that returns a :class:`Verdict`.

A check answers ``passed`` True (holds), False (the agent broke a rule: FAIL), or None (does not
apply to this run). A check that reports a harness problem (:meth:`Check.error`) is an ERROR,
not a FAIL: the scenario is invalid or the harness could not exercise what it promised, and a
report must never blame the agent for that. Also the small readings of the record that several
families share (which faults answered a request, what a request was, whether it failed).

May import: the run record and the scenario's expectation; no other module of the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from faults.base import Fault, Surface
from harness.record import Exchange, RunRecord
from harness.scenario.expect import Expectation


@dataclass(frozen=True)
class Verdict:
    """The result of one check on one run."""

    name: str
    passed: bool | None
    reason: str
    harness: bool = False  # a failure here is an ERROR (scenario or harness), not the agent's FAIL
    around: int | None = None  # exchange seq the failure is about, for the excerpt


class Check:
    """Base: a named check; subclasses implement ``evaluate``."""

    name: ClassVar[str]

    def evaluate(self, record: RunRecord, expect: Expectation) -> Verdict:
        raise NotImplementedError

    def ok(self, reason: str = "") -> Verdict:
        return Verdict(self.name, True, reason)

    def fail(self, reason: str, around: int | None = None) -> Verdict:
        return Verdict(self.name, False, reason, around=around)

    def error(self, reason: str) -> Verdict:
        return Verdict(self.name, False, reason, harness=True)

    def skip(self, reason: str) -> Verdict:
        return Verdict(self.name, None, reason)


def _fault_by_label(record: RunRecord) -> dict[str, Fault]:
    return {f.label(): f for f in record.faults}


def _request_faults(record: RunRecord, ex: Exchange) -> list[Fault]:
    by_label = _fault_by_label(record)
    return [
        by_label[label]
        for label in ex.faults
        if label in by_label and by_label[label].surface in _REQUEST_SURFACES
    ]


_REQUEST_SURFACES = frozenset({Surface.TOOL, Surface.MODEL, Surface.STREAM})


def _what(ex: Exchange) -> str:
    """A request and the fault answer it got, in words: ``get_customer failed with 500``."""
    who = ex.tool or "the model request"
    if ex.error is not None:
        return f"{who} (request #{ex.seq}) failed with {ex.error.split(':', 1)[0]}"
    return f"{who} (request #{ex.seq}) was answered by {', '.join(ex.faults)} ({ex.status})"


def _failed(ex: Exchange) -> bool:
    if ex.crashed:
        return False  # the harness tore the agent down here: its next try is a resume
    return ex.error is not None or (
        ex.status is not None and (ex.status >= 500 or ex.status == 429)
    )
