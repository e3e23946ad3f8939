"""The scenario file as one frozen pydantic model: :class:`Scenario`, its matrices and load.

A scenario scripts one agent run: the input, the model's turns, the tool services, the reviewer,
the faults to inject and what must hold at the end. Every model forbids unknown fields, so a typo
is an error instead of a silently ignored key; ``harness.scenario.loader`` maps each error to its
YAML line.

Rules that span fields (a fault key must be registered, a fault target must be a service, a failed
run must name its category, ...) raise one ``scenario_rule`` error whose context lists every
problem as a :class:`RuleProblem` with its location, so the loader can point at each line.

The parts it is built from live beside it: the bounds and rule errors (``base``), the world's
script (``script``), fault references (``fault_specs``) and expectations (``expect``).

May import: ``base``, ``script``, ``fault_specs``, ``expect``.
"""

from __future__ import annotations

import dataclasses
import json
from itertools import count
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    PositiveInt,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from faults.base import Fault, Surface, registry
from faults.surfaces import CrashMode, CrashPoint, ModelAnswer, ReviewAction
from faults.surfaces import ToolFault as _ToolFault
from harness.scenario.base import (
    MAX_CALLS,
    MAX_ENTRIES,
    MAX_FAKE_S,
    MAX_NAME,
    MAX_SEED,
    MAX_STEPS,
    MAX_TEXT,
    NAME_PATTERN,
    Loc,
    OnToolError,
    RuleProblem,
    _did_you_mean,
    _fail,
    _Spec,
)
from harness.scenario.expect import Expect, ExpectOverride, OutcomeRule, _category_problem
from harness.scenario.fault_specs import (
    FaultEntry,
    _fault_ref,
    _unknown_fault,
    build_fault,
    import_catalogue,
)
from harness.scenario.script import ModelConfig, ReviewEntry, ToolsConfig, ToolServiceSpec


class Matrix(_Spec):
    """Expands a scenario into one variant per (fault x eligible call).

    ``faults`` names fault keys, ``surfaces`` takes every registered fault of those surfaces (at
    least one of the two). Tool faults are aimed at each of ``targets`` (default: every service).
    ``overrides`` replace expectations per cell label (``key@target``) or per fault key.
    """

    faults: tuple[str, ...] = ()
    surfaces: tuple[Surface, ...] = ()
    targets: tuple[str, ...] | None = None
    calls: tuple[Annotated[PositiveInt, Field(le=MAX_CALLS)], ...] = Field(
        (1,), min_length=1, max_length=MAX_ENTRIES
    )
    overrides: dict[str, ExpectOverride] = Field(default_factory=dict)
    outcomes: dict[str, OutcomeRule] = Field(default_factory=dict)
    """Per fault key or cell label (``key@target``), the outcomes its cells accept, with a
    reason (wins over ``[tool.shakeout.outcomes]``; ``overrides`` wins over both)."""
    allow_after_failure: tuple[str, ...] = Field((), max_length=MAX_ENTRIES)
    """Gated tools whose effects a run may still commit after a permanent failure."""
    exhaust: bool = True
    """With ``expect.budget.attempts`` set, add a cell per transient tool fault that fails as
    many attempts in a row, so the agent's retry budget runs out (it must end failed)."""
    on_tool_error: tuple[OnToolError, ...] = Field((), max_length=3)
    """Play every tool fault cell once more per reaction listed, the model reacting so to a
    failed tool call handed to it (cell ``<label>+<reaction>``)."""

    @field_validator("on_tool_error")
    @classmethod
    def _once_each(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        twice = sorted({v for v in value if value.count(v) > 1})
        if twice:
            raise PydanticCustomError(
                "reaction_twice",
                "reaction {twice} is listed more than once",
                {"twice": ", ".join(twice), "hint": "list each of retry, proceed, give_up once"},
            )
        return value

    @model_validator(mode="after")
    def _something_to_expand(self) -> Matrix:
        if not self.faults and not self.surfaces:
            raise _fail(
                RuleProblem(
                    (),
                    "the matrix names no faults and no surfaces",
                    "add 'faults: [key, ...]' or 'surfaces: [tool, model]'",
                )
            )
        return self

    def fault_keys(self) -> tuple[str, ...]:
        """The fault keys to expand: those named, then those of the surfaces, without repeats."""
        import_catalogue()
        keys = list(self.faults)
        for key, cls in sorted(registry().items()):
            if cls.surface in self.surfaces and key not in keys:
                keys.append(key)
        return tuple(keys)


class CrashMatrix(_Spec):
    """Expands a scenario into one variant per crash point (and boundary the agent reports)."""

    points: tuple[CrashPoint, ...] = Field(min_length=1)
    mode: CrashMode = CrashMode.IN_PROCESS


def _input_family(name: str) -> str:
    from faults.inputs import INPUT_STRATEGIES

    if name not in INPUT_STRATEGIES:
        raise PydanticCustomError(
            "input_family",
            "unknown input family {name!r}",
            {
                "name": name,
                "hint": f"{_did_you_mean(name, sorted(INPUT_STRATEGIES))}use one of: "
                + ", ".join(sorted(INPUT_STRATEGIES)),
            },
        )
    return name


InputFamily = Annotated[str, AfterValidator(_input_family)]


class InputMatrix(_Spec):
    """Runs Hypothesis edge-case input families through the agent's intake, one item per family.

    Every generated payload must end in a terminal state without crashing the agent, and keep
    the safety invariants; a payload of a ``must_reject`` family must be rejected at intake
    (failed, category input, no request made). ``families`` defaults to every family.
    """

    families: tuple[InputFamily, ...] = ()
    must_reject: tuple[InputFamily, ...] = ()
    examples: PositiveInt = Field(20, le=500)


# --------------------------------------------------------------------------- load


RUN_NUMBER = "{n}"
"""Written in a string of ``input``, replaced by each load run's number (1, 2, ...)."""
MAX_LOAD_RUNS = 1_000


class LoadReview(_Spec):
    """What a reviewer does with one approval it takes from the queue (cycled over approvals)."""

    verdict: Literal["approve", "deny"]
    delay_s: float = Field(60.0, ge=0, le=MAX_FAKE_S)


class LoadSla(_Spec):
    """The declared time-to-decision target, per percentile, in fake-clock seconds."""

    p50: float | None = Field(None, gt=0, le=MAX_FAKE_S)
    p90: float | None = Field(None, gt=0, le=MAX_FAKE_S)
    p99: float | None = Field(None, gt=0, le=MAX_FAKE_S)

    @model_validator(mode="after")
    def _one_target(self) -> LoadSla:
        if self.p50 is None and self.p90 is None and self.p99 is None:
            raise _fail(
                RuleProblem((), "the SLA names no percentile", "write e.g. '{p90: 600, p99: 900}'")
            )
        return self

    def targets(self) -> dict[str, float]:
        """The declared percentiles, ``{"p50": s, ...}``."""
        return {k: v for k, v in (("p50", self.p50), ("p90", self.p90), ("p99", self.p99)) if v}


def _fill_run_number(value: Any, number: int) -> Any:
    if isinstance(value, str):
        return value.replace(RUN_NUMBER, str(number))
    if isinstance(value, list | tuple):
        return [_fill_run_number(v, number) for v in value]
    if isinstance(value, dict):
        return {k: _fill_run_number(v, number) for k, v in value.items()}
    return value


class Load(_Spec):
    """The review queue under load: many runs against one agent state (see ``harness/load/``).

    Attributes:
        runs: how many runs to start; ``{n}`` in any string of the scenario (input, paths,
            answers) becomes each run's number.
        arrival_s: fake-clock seconds between two starts.
        capacity: the review queue's capacity the harness judges against.
        capacity_key: the ``agent_config`` key through which the harness tells the agent its
            capacity (None: configure the agent in ``agent_config`` yourself).
        reviewers: reviewers working the queue at once, oldest approval first.
        review: what a reviewer does with each approval, cycled.
        sla: the time-to-decision target per percentile.
        resubmit: a throttled run is started again once the harness sees a free slot.
    """

    runs: PositiveInt = Field(le=MAX_LOAD_RUNS)
    arrival_s: float = Field(1.0, ge=0, le=MAX_FAKE_S)
    capacity: PositiveInt = Field(le=MAX_CALLS)
    capacity_key: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    reviewers: PositiveInt = Field(1, le=MAX_ENTRIES)
    review: tuple[LoadReview, ...] = Field(min_length=1, max_length=MAX_STEPS)
    sla: LoadSla
    resubmit: bool = True


# --------------------------------------------------------------------------- the scenario


SUMMARY_MAX_CHARS = 500
"""Default bound on an approval summary's length, in characters."""
SUMMARY_RAW_RUN = 40
"""Default length of a verbatim run of ticket or tool text that counts as raw in a summary."""


class ApprovalSummary(_Spec):
    """How the ``approval_summary`` check reads the summaries the agent shows its reviewer.

    Attributes:
        max_chars: the longest summary allowed, fenced quotes included.
        raw_run: a run of this many characters copied verbatim from the ticket's text fields or
            a tool's response body, outside a fenced quote, is raw text the reviewer could take
            for the agent's own words.
    """

    max_chars: int = Field(SUMMARY_MAX_CHARS, ge=1, le=MAX_TEXT)
    raw_run: int = Field(SUMMARY_RAW_RUN, ge=8, le=MAX_NAME * 5)


class Scenario(_Spec):
    """One scenario file.

    Attributes:
        name: unique in a library, ``^[a-z][a-z0-9_]*$``.
        description: one line saying what the scenario shows.
        tags: free labels for selection.
        agent: the adapter factory ``module:callable``; None uses the ``chaos_agent`` ini key.
        agent_config: passed to the adapter as ``world.config``.
        seed: the run's seed; None uses the session seed.
        input: the payload given to ``adapter.start``.
        model: the scripted model.
        tools: the fake tool services.
        reviewer: one entry per approval request, in order; missing entries never decide.
        faults: faults injected in every run of this scenario.
        matrix: expands the scenario over faults and calls.
        crash_matrix: expands the scenario over crash points.
        input_matrix: runs edge-case input families through the agent's intake.
        expect: what must hold at the end.
        approval_summary: bounds of the reviewer's summary (length, raw text).
        load: run many copies of the input against one agent state through a bounded review
            queue (no matrices, faults or ``reviewer`` beside it).
    """

    name: str = Field(pattern=NAME_PATTERN, max_length=MAX_NAME)
    description: str = Field(min_length=1, max_length=MAX_NAME * 5)
    tags: tuple[Annotated[str, Field(max_length=MAX_NAME)], ...] = Field((), max_length=MAX_ENTRIES)
    agent: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
    agent_config: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    input: dict[str, Any]
    model: ModelConfig = Field(default_factory=ModelConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    reviewer: tuple[ReviewEntry, ...] = Field((), max_length=MAX_STEPS)
    faults: tuple[FaultEntry, ...] = Field((), max_length=MAX_ENTRIES)
    matrix: Matrix | None = None
    crash_matrix: CrashMatrix | None = None
    input_matrix: InputMatrix | None = None
    expect: Expect
    allow_subprocess: bool = False
    approval_summary: ApprovalSummary = Field(default_factory=ApprovalSummary)
    load: Load | None = None
    """The agent may start subprocesses during a run (otherwise one fails network_contained)."""

    _source: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        problems = [
            *self._fault_problems(),
            *self._matrix_problems(),
            *self._expect_problems(),
            *self._load_problems(),
        ]
        routes: dict[tuple[str, str], str] = {}
        for name, svc in self.tools.services.items():
            if svc.path is None:
                continue
            other = routes.setdefault((svc.method, svc.path), name)
            if other != name:
                problems.append(
                    RuleProblem(
                        ("tools", "services", name, "path"),
                        f"'{svc.method} {svc.path}' is already answered by service '{other}'",
                        "give each service its own method and path",
                    )
                )
        if problems:
            raise _fail(*problems)
        return self

    def _service_problem(self, tool: str, at: Loc, what: str) -> list[RuleProblem]:
        services = self.tools.services
        if tool in services:
            return []
        return [
            RuleProblem(
                at,
                f"{what} '{tool}' is not a service of this scenario",
                f"{_did_you_mean(tool, sorted(services))}add it under 'tools.services' or use "
                f"one of: {', '.join(sorted(services)) or '(no services yet)'}",
            )
        ]

    def _fault_problems(self) -> list[RuleProblem]:
        problems: list[RuleProblem] = []
        for i, entry in enumerate(self.faults):
            key, params = _fault_ref(entry)
            built = build_fault(key, params, ("faults", i))
            if isinstance(built, list):
                problems.extend(built)
            elif isinstance(built, _ToolFault) and built.target is not None:
                at: Loc = ("faults", i, key, "target")
                problems += self._service_problem(built.target, at, "fault target")
        return problems

    def _matrix_problems(self) -> list[RuleProblem]:
        if self.matrix is None:
            return []
        import_catalogue()
        problems: list[RuleProblem] = []
        known = registry()
        for i, key in enumerate(self.matrix.faults):
            if key not in known:
                problems.append(_unknown_fault(key, ("matrix", "faults", i)))
        for i, tool in enumerate(self.matrix.targets or ()):
            problems += self._service_problem(tool, ("matrix", "targets", i), "matrix target")
        if self.matrix.on_tool_error and not any(
            known[k].surface is Surface.TOOL for k in self.matrix.fault_keys() if k in known
        ):
            problems.append(
                RuleProblem(
                    ("matrix", "on_tool_error"),
                    "the reactions play against tool fault cells, but the matrix has no tool fault",
                    "add a tool fault (e.g. 'faults: [tool_http_404]' or 'surfaces: [tool]') or "
                    "remove 'on_tool_error'",
                )
            )
        for i, tool in enumerate(self.matrix.allow_after_failure):
            at_tool: Loc = ("matrix", "allow_after_failure", i)
            problems += self._service_problem(tool, at_tool, "allowed tool")
        for label in self.matrix.outcomes:
            at_rule: Loc = ("matrix", "outcomes", label)
            key, _, target = label.partition("@")
            if key not in known:
                problems.append(_unknown_fault(key, at_rule))
            elif target:
                problems += self._service_problem(target, at_rule, "outcome target")
        for label, override in self.matrix.overrides.items():
            at: Loc = ("matrix", "overrides", label)
            key, _, target = label.partition("@")
            if key not in known:
                problems.append(_unknown_fault(key, at))
            elif target:
                problems += self._service_problem(target, at, "override target")
            merged = self.expect.merged(override)
            problem = _category_problem(merged.state, merged.category)
            if problem is not None:
                problems.append(dataclasses.replace(problem, at=(*at, *problem.at)))
        return problems

    def _expect_problems(self) -> list[RuleProblem]:
        problems: list[RuleProblem] = []
        expect = self.expect
        services = self.tools.services
        for tool in expect.effects or {}:
            at: Loc = ("expect", "effects", tool)
            found = self._service_problem(tool, at, "effect tool")
            if not found and services[tool].ledger is None:
                found = [
                    RuleProblem(
                        at,
                        f"effects are counted on ledger services only, and '{tool}' is a "
                        f"'{services[tool].kind}' service",
                        f"answer '{tool}' with 'ledger: {{status: ..., json: ...}}' or drop it "
                        "from 'expect.effects'",
                    )
                ]
            problems += found
        for field in ("calls_made", "calls_not_made"):
            for i, tool in enumerate(getattr(expect, field)):
                problems += self._service_problem(tool, ("expect", field, i), "tool")
        for i, tool in enumerate(expect.calls_not_made):
            if tool in expect.calls_made:
                problems.append(
                    RuleProblem(
                        ("expect", "calls_not_made", i),
                        f"'{tool}' is in both calls_made and calls_not_made",
                        "keep it in one of the two lists",
                    )
                )
        return problems

    def _load_problems(self) -> list[RuleProblem]:
        load = self.load
        if load is None:
            return []
        problems = [
            RuleProblem(
                (name,),
                f"'{name}' cannot be combined with 'load'",
                f"remove '{name}': a load scenario runs its input {load.runs} times with the "
                "reviewers under 'load.review', and nothing else",
            )
            for name in ("faults", "matrix", "crash_matrix", "input_matrix", "reviewer")
            if getattr(self, name)
        ]
        if load.runs > 1 and RUN_NUMBER not in json.dumps(self.input):
            problems.append(
                RuleProblem(
                    ("input",),
                    f"every load run would send the same input, so {load.runs} runs would be "
                    "one ticket",
                    f"write '{RUN_NUMBER}' in an id of the input, e.g. 'ticket_id: T-70{{n}}'",
                )
            )
        key = load.capacity_key
        if key is not None and key in self.agent_config and self.agent_config[key] != load.capacity:
            problems.append(
                RuleProblem(
                    ("agent_config", key),
                    f"'{key}' is {self.agent_config[key]!r} but load.capacity is {load.capacity}",
                    f"drop '{key}' from agent_config: the harness sets it from load.capacity",
                )
            )
        return problems

    # ----------------------------------------------------------------------- accessors

    @property
    def source(self) -> Path | None:
        """The file this scenario was loaded from, if any."""
        return self._source

    def with_source(self, path: Path) -> Scenario:
        """This scenario, remembering the file it came from."""
        self._source = path
        return self

    def effective_seed(self, session_seed: int) -> int:
        """The scenario's own seed, or the session seed when it has none."""
        return session_seed if self.seed is None else self.seed

    def model_answers(self) -> tuple[ModelAnswer, ...]:
        """The scripted model answers in order, tool-call ids filled in."""
        ids = count(1)
        return tuple(turn.to_answer(ids) for turn in self.model.turns)

    def review_actions(self) -> tuple[ReviewAction, ...]:
        """The scripted reviewer's action per approval request, in order."""
        return tuple(
            ReviewAction(entry) if isinstance(entry, str) else entry.to_action()
            for entry in self.reviewer
        )

    def review_action(self, index: int) -> ReviewAction:
        """The action for approval request ``index`` (0-based); ``never`` past the script."""
        actions = self.review_actions()
        return actions[index] if index < len(actions) else ReviewAction("never")

    def load_input(self, number: int) -> dict[str, Any]:
        """The input of load run ``number`` (1-based): ``{n}`` in its strings becomes the number."""
        filled: dict[str, Any] = _fill_run_number(self.input, number)
        return filled

    def for_load_run(self, number: int) -> Scenario:
        """This scenario as load run ``number`` sees it: ``{n}`` in every string (input, paths,
        answers) becomes the number, and the ``load`` section is dropped."""
        data = self.model_dump(
            mode="json", by_alias=True, exclude={"load"}, exclude_unset=True, warnings=False
        )
        return Scenario.model_validate(_fill_run_number(data, number))

    def fault_keys(self) -> tuple[str, ...]:
        """The keys of the scenario's faults, in order."""
        return tuple(_fault_ref(entry)[0] for entry in self.faults)

    def build_faults(self) -> tuple[Fault, ...]:
        """Fresh instances of the scenario's faults, in order."""
        out: list[Fault] = []
        for i, entry in enumerate(self.faults):
            key, params = _fault_ref(entry)
            built = build_fault(key, params, ("faults", i))
            if isinstance(built, list):  # the registry changed since validation
                raise ValueError(_fail(*built).message())
            out.append(built)
        return tuple(out)

    def service(self, tool: str) -> ToolServiceSpec:
        """The fake service of ``tool`` (``KeyError`` naming the known ones if absent)."""
        try:
            return self.tools.services[tool]
        except KeyError:
            known = ", ".join(sorted(self.tools.services)) or "(none)"
            raise KeyError(
                f"scenario {self.name!r} has no service {tool!r}; known: {known}"
            ) from None

    def ledger_tools(self) -> tuple[str, ...]:
        """Tools answered by a ledger (the side effects the scenario counts)."""
        return tuple(n for n, s in self.tools.services.items() if s.ledger is not None)
