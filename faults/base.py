"""The vocabulary every fault shares: categories, surfaces, schedules, and the registry by key.

Hierarchy::

    Fault                      frozen dataclass, addressable by ``key`` once subclassed
    ├── ToolFault              acts on one HTTP call to a tool service      (surface "tool")
    ├── ModelFault             replaces one scripted model answer          (surface "model")
    ├── StreamFault            mutates one streamed model answer          (surface "stream")
    ├── ApprovalFault          changes what the scripted reviewer does    (surface "approval")
    └── CrashFault             tears the run down at a boundary            (surface "crash")

A user adds a fault by subclassing one of these with a ``key`` class attribute; the registry
picks it up and scenario files can name it at once, no other code changes.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar


class Category(StrEnum):
    """The error categories of the discipline; a failed run carries exactly one."""

    MODEL = "model"
    TOOL = "tool"
    LOGIC = "logic"
    INPUT = "input"


class Surface(StrEnum):
    """Where in the world a fault acts."""

    TOOL = "tool"
    MODEL = "model"
    STREAM = "stream"
    APPROVAL = "approval"
    CRASH = "crash"
    INPUT = "input"
    INJECTION = "injection"


class FaultOutcome(StrEnum):
    """How a run may end when a fault fires: the vocabulary of acceptable outcomes.

    Not the agent's ``harness.Outcome`` (where one run stands, as the agent reports it): this is
    the class of ending a fault cell accepts, which the checks compare that report against.

    A fault class declares the outcomes it accepts (``accepts``); a scenario's
    ``matrix.outcomes`` or ``[tool.shakeout.outcomes]`` in pyproject.toml can narrow or widen them
    per fault, with a reason the report shows.
    """

    RECOVER = "recover"
    """End like the fault-free run: same terminal state, same effects by body, the broken call
    answered for real before going on."""
    FAIL = "fail"
    """End ``failed`` with the fault's category; a permanent fault is not retried and no gated
    effect follows it."""
    ESCALATE = "escalate"
    """End ``escalated``: handed to a human, no error category."""
    COMPLETE = "complete"
    """End ``completed`` without asking again: e.g. a free-form loop that takes a text answer as
    its final answer. The broken call need not be answered for real."""
    REJECT = "reject"
    """End ``rejected`` with no gated effect (a reviewer's denial)."""
    EXPIRE = "expire"
    """End ``expired`` with no gated effect (an approval that never came in time)."""


OUTCOME_STATES: Mapping[FaultOutcome, str] = MappingProxyType(
    {
        FaultOutcome.FAIL: "failed",
        FaultOutcome.ESCALATE: "escalated",
        FaultOutcome.COMPLETE: "completed",
        FaultOutcome.REJECT: "rejected",
        FaultOutcome.EXPIRE: "expired",
    }
)
"""The terminal state each outcome ends in (``recover``: the fault-free run's)."""


class FaultDefinitionError(TypeError):
    """A fault class is declared wrongly (missing or duplicate key, bad surface)."""


class FaultNotApplicableError(ValueError):
    """A fault cannot act on the call it was scheduled on (e.g. no tool call to break, a body
    that is not a JSON object): the scenario aims it at the wrong call, the agent is not to blame.
    """


@dataclass(frozen=True)
class Schedule:
    """Which calls of the targeted surface a fault fires on (1-based call indices).

    Exactly one of the forms applies, checked in this order: ``nth`` (only that call),
    ``first`` (calls 1..first), ``every`` (all calls), ``probability`` (each call with that
    chance, drawn from the run's seeded RNG). The default is the first call only.
    """

    nth: int | None = None
    first: int | None = None
    every: bool = False
    probability: float | None = None

    def fires(self, call_index: int, rng: random.Random) -> bool:
        """Whether the fault fires on call ``call_index`` (1-based)."""
        if self.nth is not None:
            return call_index == self.nth
        if self.first is not None:
            return call_index <= self.first
        if self.every:
            return True
        if self.probability is not None:
            return rng.random() < self.probability
        return call_index == 1

    def describe(self) -> str:
        """Short form used in item ids, e.g. ``#2``, ``#1-3``, ``#*``, ``#p0.25``."""
        if self.nth is not None:
            return f"#{self.nth}"
        if self.first is not None:
            return f"#1-{self.first}"
        if self.every:
            return "#*"
        if self.probability is not None:
            return f"#p{self.probability:g}"
        return "#1"


_REGISTRY: dict[str, type[Fault]] = {}


@dataclass(frozen=True)
class Fault:
    """Base of every fault: a key, a surface, the category it should lead to, and a schedule.

    Attributes:
        target: what the fault aims at on its surface (a tool name for tool faults, a
            boundary name for crash faults); ``None`` means any.
        at: which calls it fires on.
    """

    key: ClassVar[str]
    surface: ClassVar[Surface]
    category: ClassVar[Category | None]
    """Category a run must end with when the fault is not recovered (None: no error expected)."""
    transient: ClassVar[bool]
    """A transient fault must be recovered by a well-built agent; a permanent one must not be
    retried and ends the run with ``category`` (or a terminal state the scenario declares)."""
    expected_state: ClassVar[str | None] = None
    """Terminal state a run must reach when the fault fires (e.g. ``rejected``, ``expired``);
    None: the state follows from ``category`` and ``transient`` as usual."""
    accepts: ClassVar[tuple[FaultOutcome, ...] | None] = None
    """The outcomes a run may end with when the fault fires, the first the one messages state;
    None: derived from the class (``expected_state``'s outcome, else ``recover`` for a transient
    fault and ``fail`` for a permanent one). See :meth:`outcomes`."""
    needs_real_answer: ClassVar[bool] = True
    """Whether the agent did not get the real answer where the fault fired, so recovering means
    asking again until it does (False for a late but whole answer, a duplicate delivery)."""

    target: str | None = None
    at: Schedule = field(default_factory=Schedule)
    times: int = 1
    """How many attempts in a row the fault answers once it fired: the scheduled call and then
    each retry of the same request (tools: same route and body, or idempotency key; model: the
    agent's next requests). A permanent fault answers every retry whatever ``times`` says."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        key = cls.__dict__.get("key")
        if key is None:
            return  # an intermediate base class, not addressable
        if not isinstance(key, str) or not key.isidentifier():
            raise FaultDefinitionError(
                f"{cls.__qualname__}.key must be a lowercase identifier, got {key!r}"
            )
        for attr in ("surface", "category", "transient"):
            if not hasattr(cls, attr):
                raise FaultDefinitionError(
                    f"{cls.__qualname__} (key {key!r}) must set the class attribute {attr!r}"
                )
        existing = _REGISTRY.get(key)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise FaultDefinitionError(
                f"fault key {key!r} of {cls.__qualname__} is already used by "
                f"{existing.__module__}.{existing.__qualname__}; choose another key"
            )
        _REGISTRY[key] = cls

    @classmethod
    def summary(cls) -> str:
        """The one-line docstring naming what the fault breaks."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    @classmethod
    def outcomes(cls) -> tuple[FaultOutcome, ...]:
        """The acceptable outcomes the class declares (``accepts``), else derives."""
        if cls.accepts:
            return tuple(cls.accepts)
        if cls.expected_state is not None:
            by_state = {state: outcome for outcome, state in OUTCOME_STATES.items()}
            return (by_state[cls.expected_state],)
        return (FaultOutcome.RECOVER,) if cls.transient else (FaultOutcome.FAIL,)

    @classmethod
    def parameters(cls) -> dict[str, Any]:
        """The dataclass fields a scenario may set, with their defaults."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
            else:
                out[f.name] = None
        return out

    def eligible(self, call_index: int) -> bool:
        """Whether the fault can act on call ``call_index`` (1-based) at all.

        Checked before the schedule: an ineligible call neither fires nor draws from the RNG.
        Most faults can act on any call; a fault that needs history (a repeated answer) cannot
        act on the first.
        """
        return call_index >= 1

    def label(self) -> str:
        """Readable id fragment, e.g. ``tool_status-503@get_order#1``."""
        extra = self.label_detail()
        head = f"{self.key}-{extra}" if extra else self.key
        where = f"@{self.target}" if self.target else ""
        times = f"x{self.times}" if self.times > 1 else ""
        return f"{head}{where}{self.at.describe()}{times}"

    def label_detail(self) -> str:
        """A subclass's distinguishing parameter for ids (e.g. the status code); empty if none."""
        return ""


def registry() -> Mapping[str, type[Fault]]:
    """Every registered fault class by key (read-only view)."""
    return MappingProxyType(_REGISTRY)
