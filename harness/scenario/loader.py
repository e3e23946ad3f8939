"""Load scenario files from YAML into Scenarios, turning every problem into a file:line message.

YAML is composed into nodes first (``yaml.compose`` keeps each node's position), so each
validation error points at the line of the offending field, or of its parent mapping when the
field is missing. Scenario files are read as YAML 1.2 reads them in editors: dates stay strings
and only ``true`` / ``false`` are booleans (so ``placed_at: 2025-12-20`` and ``answer: no`` mean
what they say). Duplicate keys, which YAML itself allows silently, are rejected.

Scenario files are untrusted input (they come from pull requests, recordings and searches), so
reading one is bounded before anything is built from it (``reading``: the file's size, the number
of nodes after alias expansion, the nesting depth, the length of an integer's text, the tags). A
recursive alias, a non-finite number, a control character or a value its tag cannot read is a
located error like any other: the loader raises :class:`ScenarioError` and nothing else. Also
the library (every scenario file of a tree), ``shakeout validate`` and the JSON schema.

May import: ``base``, ``reading``, ``spec``.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TextIO

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from harness.scenario import reading
from harness.scenario.base import (
    Loc,
    RuleProblem,
    _did_you_mean,
    _dotted,
    _short_repr,
    explain_error,
)
from harness.scenario.reading import Issue, ScenarioError, _parse, _Parsed, _read
from harness.scenario.spec import Scenario

SCHEMA_LINE = "# yaml-language-server: $schema=schema.json"
REGENERATE = "shakeout schema scenario > scenarios/schema.json"
SCENARIO_SUFFIXES = (".yaml", ".yml")


# --------------------------------------------------------------------------- error mapping


def _clean(loc: Sequence[str | int], data: Any, *, keep_last: bool) -> Loc:
    """The error location as the author wrote it: union tags and wrapper names dropped."""
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if _has(node, part):
            node = node[part]
        elif not (keep_last and i == len(loc) - 1):
            continue  # a tag pydantic adds for a union member; the author never wrote it
        out.append(part)
    return tuple(out)


def _line(lines: Mapping[Loc, int], loc: Loc) -> int:
    for end in range(len(loc), -1, -1):
        found = lines.get(loc[:end])
        if found is not None:
            return found
    return 1


def _issues(exc: ValidationError, parsed: _Parsed, path: str) -> list[Issue]:
    out: list[Issue] = []
    seen: set[tuple[Loc, str]] = set()
    for err in exc.errors():
        for loc, message, hint in _explain(err, parsed.data):
            if (loc, message) in seen:
                continue
            seen.add((loc, message))
            out.append(Issue(path, _line(parsed.lines, loc), message, hint, _dotted(loc) or None))
    return sorted(out, key=lambda issue: issue.line or 0)


def _explain(err: ErrorDetails, data: Any) -> Iterator[tuple[Loc, str, str]]:
    kind = err["type"]
    if kind == "scenario_rule":
        base = _clean(err["loc"], data, keep_last=False)
        problems: Sequence[RuleProblem] = (err.get("ctx") or {}).get("problems") or ()
        for p in problems:
            loc = _clean((*base, *p.at), data, keep_last=True)
            yield loc, p.message, p.hint
        return
    if kind == "missing":
        loc = _clean(err["loc"], data, keep_last=True)
        name, parent = loc[-1], _dotted(loc[:-1])
        where = f"under '{parent}'" if parent else "at the top level"
        yield loc, "required field is missing", f"add '{name}' {where}"
        return
    if kind == "extra_forbidden":
        loc = _clean(err["loc"], data, keep_last=True)
        name = str(loc[-1])
        allowed = _allowed_fields(loc[:-1], data)
        listing = f" (allowed here: {', '.join(allowed)})" if allowed else ""
        close = _did_you_mean(name, allowed)
        yield loc, f"unknown field '{name}'", f"{close}remove '{name}'{listing}"
        return
    loc = _clean(err["loc"], data, keep_last=False)
    message, hint = explain_error(err)
    yield loc, message, hint


def _allowed_fields(loc: Loc, data: Any) -> list[str]:
    """The field names the model at ``loc`` accepts (empty if it cannot be told)."""
    tp: Any = Scenario
    node = data
    for part in loc:
        model = _model_of(tp, node)
        if model is not None:
            field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
            if field is None:
                return []
            tp = field.annotation
        else:
            tp = _unwrap(tp)
            args = typing.get_args(tp)
            if typing.get_origin(tp) in (tuple, list) and args:
                tp = args[0]
            elif typing.get_origin(tp) is dict and len(args) == 2:
                tp = args[1]
            else:
                return []
        node = node[part] if _has(node, part) else None
    model = _model_of(tp, node)
    if model is None:
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _has(node: Any, part: str | int) -> bool:
    if isinstance(node, Mapping):
        return part in node
    return (
        isinstance(node, list)
        and isinstance(part, int)
        and not isinstance(part, bool)
        and 0 <= part < len(node)
    )


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _model_of(tp: Any, node: Any) -> type[BaseModel] | None:
    tp = _unwrap(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [_unwrap(m) for m in typing.get_args(tp)]
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        if not models:
            return None
        keys = set(node) if isinstance(node, Mapping) else set()

        def overlap(m: type[BaseModel]) -> int:
            return len(keys & {f.alias or n for n, f in m.model_fields.items()})

        return max(models, key=overlap)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    return None


# --------------------------------------------------------------------------- public API


BUG_HINT = "this is a bug in shakeout, not in your file: please report it with the file attached"


def _load(path: Path) -> tuple[Scenario, _Parsed]:
    try:
        return _load_checked(path)
    except ScenarioError:
        raise
    except Exception as exc:
        # The loader's promise is a located ScenarioError for any file, whatever it holds: an
        # exception that escapes the bounds above is shakeout's bug, and must still never stop
        # `shakeout validate` or a pytest session at this file.
        raise ScenarioError(
            [
                Issue(
                    str(path),
                    1,
                    f"shakeout could not read this file ({type(exc).__name__}: "
                    f"{_short_repr(str(exc))})",
                    BUG_HINT,
                )
            ]
        ) from exc


def _load_checked(path: Path) -> tuple[Scenario, _Parsed]:
    shown = str(path)
    text = _read(path, shown)
    try:
        parsed = _parse(text, shown)
        try:
            scenario = Scenario.model_validate(parsed.data)
        except ValidationError as exc:
            raise ScenarioError(_issues(exc, parsed, shown)) from None
    except RecursionError:
        # A backstop: the bounds above keep every value far shallower than the interpreter's
        # limit, so this means a bound was raised or a validator recursed unexpectedly.
        raise ScenarioError(
            [
                Issue(
                    shown,
                    1,
                    "the file nests too deeply for shakeout to read",
                    f"keep values under {reading.MAX_DEPTH} levels of nesting",
                )
            ]
        ) from None
    return scenario.with_source(path), parsed


def load_scenario(path: Path) -> Scenario:
    """Load and validate one scenario file.

    Args:
        path: the YAML file; messages show it as given.

    Returns:
        The scenario, with ``source`` set to ``path``.

    Raises:
        ScenarioError: the file cannot be read, is not valid YAML, breaks a bound (size,
            values after alias expansion, nesting), or is not a valid scenario; one issue per
            problem, each with its line. Nothing else is raised, whatever the file holds.
    """
    return _load(path)[0]


def scenario_files(paths: Iterable[Path]) -> list[Path]:
    """The scenario files named by ``paths``: files as given, directories walked for
    ``*.yaml`` / ``*.yml`` (sorted)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix in SCENARIO_SUFFIXES and f.is_file())
        else:
            out.append(p)
    return out


def load_library(paths: Iterable[Path]) -> tuple[Scenario, ...]:
    """Load every scenario under ``paths`` (files or directories) and check names are unique.

    Raises:
        ScenarioError: every issue of every invalid file, and every duplicate name.
    """
    scenarios: list[Scenario] = []
    issues: list[Issue] = []
    first: dict[str, str] = {}
    for path in scenario_files(paths):
        try:
            scenario, parsed = _load(path)
        except ScenarioError as exc:
            issues += exc.issues
            continue
        issue = _duplicate(scenario, parsed, str(path), first)
        if issue is not None:
            issues.append(issue)
        scenarios.append(scenario)
    if issues:
        raise ScenarioError(issues)
    return tuple(scenarios)


def _duplicate(
    scenario: Scenario, parsed: _Parsed, shown: str, first: dict[str, str]
) -> Issue | None:
    other = first.setdefault(scenario.name, shown)
    if other == shown:
        return None
    return Issue(
        shown,
        _line(parsed.lines, ("name",)),
        f"scenario name '{scenario.name}' is already used by {other}",
        "rename one of them; names are unique in a library",
        "name",
    )


def validate_main(paths: Sequence[str], out: TextIO | None = None) -> int:
    """``shakeout validate PATH...``: check scenario files and print one line per file or issue.

    Args:
        paths: files or directories (walked for ``*.yaml`` / ``*.yml``).
        out: where to print (default stdout).

    Returns:
        0 if every file is valid, 1 if any is invalid (or a directory holds none),
        2 if a path does not exist.
    """
    stream = out if out is not None else sys.stdout
    missing = [p for p in paths if not Path(p).exists()]
    for p in missing:
        print(f"{p}: no such file or directory. Fix: check the path", file=stream)
    status = 2 if missing else 0
    first: dict[str, str] = {}
    for p in paths:
        if p in missing:
            continue
        files = scenario_files([Path(p)])
        if not files:
            print(f"{p}: no *.yaml or *.yml files here. Fix: point at scenario files", file=stream)
            status = max(status, 1)
        for path in files:
            try:
                scenario, parsed = _load(path)
            except ScenarioError as exc:
                print(str(exc), file=stream)
                status = max(status, 1)
                continue
            issue = _duplicate(scenario, parsed, str(path), first)
            if issue is not None:
                print(str(issue), file=stream)
                status = max(status, 1)
                continue
            print(f"ok  {path} ({scenario.name})", file=stream)
    return status


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema of scenario files (what ``scenarios/schema.json`` holds)."""
    schema = Scenario.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "shakeout scenario",
        "description": (
            "One shakeout scenario file. Generated by `" + REGENERATE + "`; do not edit."
        ),
    }


def schema_text() -> str:
    """The schema as written to ``scenarios/schema.json`` (the same bytes the CLI prints)."""
    return json.dumps(scenario_schema(), indent=2) + "\n"


def write_schema(path: Path) -> None:
    """Write the scenario JSON Schema to ``path``."""
    path.write_text(schema_text(), encoding="utf-8")
