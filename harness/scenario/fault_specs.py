"""Faults as a scenario names them: a key with parameters, checked against the fault's class.

Each fault class's parameters become a bounded pydantic model (:func:`build_fault`), so a bad
parameter is a located error like any other; ``schedule`` says when the fault fires.

May import: ``base``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PositiveInt,
    Tag,
    ValidationError,
    WithJsonSchema,
    create_model,
    model_validator,
)

from faults.base import Fault, Schedule, registry
from harness.scenario.base import (
    MAX_CALLS,
    MAX_FAKE_S,
    MAX_NAME,
    MAX_PARAM_BYTES,
    MAX_PARAM_NUMBER,
    Loc,
    RuleProblem,
    _did_you_mean,
    _one_of,
    _short_repr,
    _Spec,
    explain_error,
)

# --------------------------------------------------------------------------- faults


class ScheduleSpec(_Spec):
    """Which calls a fault fires on: at most one of nth, first, every, probability."""

    nth: PositiveInt | None = Field(None, le=MAX_CALLS)
    first: PositiveInt | None = Field(None, le=MAX_CALLS)
    every: bool = False
    probability: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _single_form(self) -> ScheduleSpec:
        _one_of(self, ("nth", "first", "every", "probability"), required=False)
        return self

    def to_schedule(self) -> Schedule:
        """The schedule the fault uses."""
        return Schedule(self.nth, self.first, bool(self.every), self.probability)


def _fault_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "key"
    return "key with parameters" if isinstance(value, Mapping) else None


FaultEntry = Annotated[
    Annotated[str, Tag("key")]
    | Annotated[
        dict[str, Annotated[Any, WithJsonSchema({"type": ["object", "null"]})]],
        Tag("key with parameters"),
        Field(min_length=1, max_length=1),
    ],
    Discriminator(
        _fault_form,
        custom_error_type="fault_form",
        custom_error_message="a fault entry must be a fault key or a one-key mapping",
        custom_error_context={
            "hint": "write e.g. '- model_refusal' or '- tool_http_503: {target: get_order}'"
        },
    ),
]


def import_catalogue() -> None:
    """Import ``faults.catalogue`` so its faults are registered, if that module exists yet."""
    try:
        __import__("faults.catalogue")
    except ModuleNotFoundError as exc:
        if exc.name != "faults.catalogue":
            raise


_PARAM_MODELS: dict[type[Fault], type[BaseModel]] = {}


def _params_model(cls: type[Fault]) -> type[BaseModel]:
    """A pydantic model of the fault's dataclass fields (``at`` as a :class:`ScheduleSpec`)."""
    cached = _PARAM_MODELS.get(cls)
    if cached is not None:
        return cached
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a class defined where its annotations cannot be resolved
        hints = {}
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        annotation: Any = (
            ScheduleSpec if f.name == "at" else _bounded(f.name, hints.get(f.name, Any))
        )
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        # internal names avoid clashes with BaseModel attributes; the alias is what YAML writes
        fields[f"p_{f.name}"] = (annotation, Field(... if required else None, alias=f.name))
    model: type[BaseModel] = create_model(
        f"{cls.__name__}Parameters",
        __config__=ConfigDict(
            extra="forbid", frozen=True, arbitrary_types_allowed=True, allow_inf_nan=False
        ),
        **fields,
    )
    _PARAM_MODELS[cls] = model
    return model


def _is_time(name: str) -> bool:
    return name in ("seconds", "delay_per_event") or name.endswith(("_s", "_seconds"))


def _bounded(name: str, annotation: Any) -> Any:
    """A fault parameter's type with the bounds its name implies (finite numbers always).

    The catalogue's faults are plain dataclasses that know nothing of YAML; their parameters are
    bounded here by unit, read from the name: seconds of fake time (``seconds``, ``*_s``, ...),
    bytes (``*_bytes``), or a plain number; text by length.
    """
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.Union[tuple(_bounded(name, a) for a in typing.get_args(annotation))]  # noqa: UP007
    if annotation is int and name == "times":
        return Annotated[int, Field(ge=1, le=MAX_CALLS)]  # attempts in a row a fault answers
    if annotation in (int, float):
        if _is_time(name):
            low, high = 0, MAX_FAKE_S
        elif name.endswith("_bytes"):
            low, high = 0, MAX_PARAM_BYTES
        else:
            low, high = -MAX_PARAM_NUMBER, MAX_PARAM_NUMBER
        return Annotated[annotation, Field(ge=low, le=high)]
    if annotation is str:
        return Annotated[str, Field(max_length=MAX_NAME)]
    return annotation


def _fault_ref(entry: str | Mapping[str, Any]) -> tuple[str, Any]:
    if isinstance(entry, str):
        return entry, {}
    ((key, params),) = entry.items()
    return key, {} if params is None else params


def _unknown_fault(key: str, at: Loc) -> RuleProblem:
    return RuleProblem(
        at,
        f"unknown fault '{key}'",
        f"{_did_you_mean(key, sorted(registry()))}run `shakeout faults` to list them all",
    )


def build_fault(key: str, params: Any, at: Loc = ()) -> Fault | list[RuleProblem]:
    """Build a registered fault from its key and parameters, or say what is wrong.

    Args:
        key: the fault key.
        params: the parameter mapping (the fault's dataclass fields; ``at`` a schedule).
        at: where the entry sits, for the problems' locations.

    Returns:
        The fault instance, or the problems found (unknown key, unknown or ill-typed parameter).
    """
    import_catalogue()
    cls = registry().get(key)
    if cls is None:
        return [_unknown_fault(key, at)]
    if not isinstance(params, Mapping):
        return [
            RuleProblem(
                (*at, key),
                f"the parameters of fault '{key}' must be a mapping, got {_short_repr(params)}",
                f"write '- {key}: {{param: value}}', or just '- {key}' for the defaults",
            )
        ]
    model = _params_model(cls)
    try:
        validated = model.model_validate(params)
    except ValidationError as exc:
        allowed = ", ".join(f.alias or n for n, f in model.model_fields.items())
        problems = []
        for err in exc.errors():
            loc = (*at, key, *err["loc"])
            if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
                name = str(err["loc"][0])
                problems.append(
                    RuleProblem(
                        loc,
                        f"unknown parameter '{name}' for fault '{key}'",
                        f"{_did_you_mean(name, allowed.split(', '))}"
                        f"remove '{name}' (allowed here: {allowed})",
                    )
                )
            else:
                message, hint = explain_error(err)
                problems.append(RuleProblem(loc, message, hint, err))
        return problems
    kwargs: dict[str, Any] = {}
    for name in validated.model_fields_set:
        value = getattr(validated, name)
        kwargs[name.removeprefix("p_")] = (
            value.to_schedule() if isinstance(value, ScheduleSpec) else value
        )
    return cls(**kwargs)
