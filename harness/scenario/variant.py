"""A scenario's runnable cells and what a fault-free run touched: ``Variant`` and ``Probe``.

A :class:`Variant` is one cell of a scenario's matrix (the base run, a fault cell, a crash cell,
an input or injection cell); the matrix (:mod:`harness.scenario.matrix`) builds them and the
runner (:mod:`harness.run.runner`) runs them. A :class:`Probe` is what the fault-free run of a
scenario touched, so the matrix knows where faults can fire. Both are data: they live with the
scenario so that expanding a matrix never imports the runner.

May import: ``faults``, the run record (``harness.record``) and the scenario's own modules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from faults.base import Fault
from faults.injection import Payload
from harness.record import RunRecord
from harness.scenario.base import OnToolError
from harness.scenario.expect import Acceptance, Expectation
from harness.scenario.spec import Scenario

SCENARIO_INPUT: Any = type("ScenarioInput", (), {"__repr__": lambda self: "SCENARIO_INPUT"})()
"""Sentinel: the variant runs with its scenario's own input."""


@dataclass(frozen=True)
class Variant:
    """One runnable cell of a scenario: the base run, a fault cell, a crash cell, ...

    Attributes:
        scenario: the scenario.
        label: ``base`` or the cell label (``tool_http_503@get_order#1``).
        faults: the faults of this run (the scenario's own plus the cell's).
        expect: what must hold.
        kind: base | fault | crash | input | injection.
        payload: the input given to ``start`` (``SCENARIO_INPUT``: the scenario's own); any
            value, so an edge-case search can send a payload that is not even a mapping.
    """

    scenario: Scenario
    label: str
    faults: tuple[Fault, ...]
    expect: Expectation
    kind: str = "base"
    payload: Any = SCENARIO_INPUT
    baseline_requests: Mapping[str, int] | None = None
    allowed_extra: Mapping[str, int] = field(default_factory=dict)
    input_family: str | None = None
    must_reject: bool = False
    examples: int = 0
    error: str | None = None  # the cell cannot be run as asked: an ERROR item with this reason
    injection: Payload | None = None  # an injection cell's payload (the model takes its bait)
    injection_point: str | None = None  # where it was injected: input.<field> or <tool>#<n>
    on_tool_error: OnToolError | None = None  # the cell's reaction (None: the scenario's)
    acceptance: Acceptance | None = None  # a fault cell's accepted outcomes (expect: the first)


@dataclass
class Probe:
    """What a fault-free run touched, to know where faults can fire."""

    tool_calls: Counter[str]
    model_requests: int
    approval_rounds: int
    boundaries: list[tuple[str, str]]
    ledger_calls: Counter[str]
    record: RunRecord
    failure: str | None = None  # why the fault-free run did not pass, if it did not
