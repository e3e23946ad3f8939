"""The gate policy: what ``[tool.shakeout.gate]`` (or a policy file) may say, read and checked.

This module owns the policy's keys, its defaults, :class:`GatePolicy` and :func:`load_policy`;
applying a policy to a report is :mod:`harness.report.gate`. It imports only ``faults.base`` (the
error categories) and the bounded file reading of :mod:`harness.report.model`; the gate, the
report plugin and the benchmarks import it, never the other way round.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faults.base import Category
from harness.report.model import FileRefused, read_bounded

MAX_POLICY_BYTES = 1024 * 1024
"""The largest policy file (or pyproject.toml) read."""

ALLOWED_KEYS: tuple[str, ...] = (
    "max_failures",
    "max_errors",
    "category",
    "checks",
    "min_transient_recovery",
    "min_coverage",
    "allow_partial",
)
RULE_KEYS = tuple(k for k in ALLOWED_KEYS if k != "allow_partial")
CATEGORIES: tuple[str, ...] = tuple(c.value for c in Category)
DEFAULT_RULES: dict[str, int] = {"max_failures": 0, "max_errors": 0}
"""The rules that apply whenever a policy does not set them: no failures, no errors."""
_DEFAULT_TEXT = "max_failures = 0, max_errors = 0"


class PolicyError(ValueError):
    """The gate policy is malformed (unknown key, wrong type, out of range) or unreadable."""


@dataclass(frozen=True)
class GatePolicy:
    """The rules of the gate; a rule left None is not applied.

    ``max_failures`` and ``max_errors`` always apply: a policy that leaves one out gets 0
    (:data:`DEFAULT_RULES`), and ``notes`` says so.

    Attributes:
        max_failures: most items allowed with verdict ``fail``.
        max_errors: most items allowed with verdict ``error``.
        category: most items allowed to report each error category (e.g. ``{"logic": 0}``).
        checks: most failures allowed per check name (e.g. ``{"duplicate_effects": 0}``).
        min_transient_recovery: least share of transient-only runs that must pass (0..1).
        min_coverage: least exercised scenario x fault pairs: an int is a count, a float a
            fraction of the pairs planned (0..1).
        allow_partial: judge a report that holds fewer items than its session planned.
        source: where the policy was read from, for messages.
        notes: what the gate says about the policy itself (defaults applied), one line each.
    """

    max_failures: int | None = None
    max_errors: int | None = None
    category: Mapping[str, int] = field(default_factory=dict)
    checks: Mapping[str, int] = field(default_factory=dict)
    min_transient_recovery: float | None = None
    min_coverage: int | float | None = None
    allow_partial: bool = False
    source: str = "<policy>"
    notes: tuple[str, ...] = ()

    @classmethod
    def default(cls, why: str) -> GatePolicy:
        """The default policy (:data:`DEFAULT_RULES`), for when none is configured.

        Args:
            why: why no policy was found, said in the note.

        Returns:
            The policy.
        """
        return cls(
            max_failures=DEFAULT_RULES["max_failures"],
            max_errors=DEFAULT_RULES["max_errors"],
            source="the default policy",
            notes=(f"{why}; applying the default rules {_DEFAULT_TEXT}",),
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> GatePolicy:
        """Validate a policy table (the body of ``[tool.shakeout.gate]``).

        Args:
            data: the parsed TOML table.
            source: where it came from, named in error messages.

        Returns:
            The policy.

        Raises:
            PolicyError: an unknown key, a value of the wrong type or out of range.
        """
        allowed = ", ".join(ALLOWED_KEYS)
        for key in data:
            if key not in ALLOWED_KEYS:
                raise PolicyError(
                    f"{source}: unknown gate policy key {key!r}; allowed keys: {allowed}"
                )
        categories = _count_table(data.get("category", {}), "category", source)
        for name in categories:
            if name not in CATEGORIES:
                raise PolicyError(
                    f"{source}: unknown gate policy key 'category.{name}'; allowed categories: "
                    f"{', '.join(CATEGORIES)}"
                )
        recovery = data.get("min_transient_recovery")
        if recovery is not None and not (_is_number(recovery) and 0 <= recovery <= 1):
            raise PolicyError(
                f"{source}: min_transient_recovery must be a number from 0 to 1, "
                f"got {shown(recovery)}; write e.g. min_transient_recovery = 0.99"
            )
        coverage = data.get("min_coverage")
        if coverage is not None and not (
            (_is_int(coverage) and coverage >= 0)
            or (isinstance(coverage, float) and 0 <= coverage <= 1)
        ):
            raise PolicyError(
                f"{source}: min_coverage must be a count (an integer >= 0) or a fraction "
                f"(a float from 0.0 to 1.0), got {shown(coverage)}"
            )
        partial = data.get("allow_partial", False)
        if not isinstance(partial, bool):
            raise PolicyError(
                f"{source}: allow_partial must be true or false, got {shown(partial)}"
            )
        counts = {
            name: _count(data.get(name), name, source) for name in ("max_failures", "max_errors")
        }
        notes: list[str] = []
        if not any(key in data for key in RULE_KEYS):
            notes.append(f"{source} has no rules; applying the default rules {_DEFAULT_TEXT}")
        else:
            unset = [name for name, value in counts.items() if value is None]
            if unset:
                text = ", ".join(f"{name} = {DEFAULT_RULES[name]}" for name in unset)
                notes.append(f"{source} does not set {' or '.join(unset)}; applying {text}")
        for name, value in counts.items():
            if value is None:
                counts[name] = DEFAULT_RULES[name]
        return cls(
            max_failures=counts["max_failures"],
            max_errors=counts["max_errors"],
            category=categories,
            checks=_count_table(data.get("checks", {}), "checks", source),
            min_transient_recovery=float(recovery) if recovery is not None else None,
            min_coverage=coverage,
            allow_partial=partial,
            source=source,
            notes=tuple(notes),
        )


def shown(value: object) -> str:
    """A value from a hostile file (a policy, a report), shown on one short line."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return _is_int(value) or isinstance(value, float)


def _count(value: object, name: str, source: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise PolicyError(f"{source}: {name} must be an integer >= 0, got {shown(value)}")
    return value


def _count_table(value: object, name: str, source: str) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise PolicyError(
            f"{source}: {name} must be a table of name = max count "
            f"(e.g. {name}.logic = 0), got {shown(value)}"
        )
    return {str(k): _count(v, f"{name}.{k}", source) or 0 for k, v in value.items()}


def load_policy(policy_path: str | Path | None, cwd: str | Path | None = None) -> GatePolicy:
    """Read the gate policy from a TOML file or from ``[tool.shakeout.gate]`` in pyproject.toml.

    A policy file may hold the rules at its top level, or be a pyproject.toml-shaped file with
    a ``[tool.shakeout.gate]`` table. Where no policy is configured (no pyproject.toml, no
    table, an empty file or table), the default rules apply and the policy's ``notes`` say so.

    Args:
        policy_path: a TOML file, or None to read ``pyproject.toml`` in ``cwd``.
        cwd: the directory whose pyproject.toml is read when ``policy_path`` is None.

    Returns:
        The policy.

    Raises:
        PolicyError: the policy file is missing, not a regular file, too large, does not parse,
            or a rule is malformed.
    """
    if policy_path is None:
        path = Path(cwd if cwd is not None else Path.cwd()) / "pyproject.toml"
        if not path.exists():
            return GatePolicy.default(f"no gate policy: {path} does not exist")
    else:
        path = Path(policy_path)
    try:
        raw = read_bounded(path, limit=MAX_POLICY_BYTES, what="gate policy")
    except FileRefused as exc:
        raise PolicyError(f"{exc}; check the path") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise PolicyError(f"gate policy {path} is not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"gate policy {path} is not valid TOML: {exc}") from None
    except ValueError as exc:
        # tomllib lets int()'s digit limit through as a bare ValueError.
        raise PolicyError(f"gate policy {path} holds a value TOML cannot read: {exc}") from None
    except RecursionError:
        # tomllib has no depth limit of its own; the file size bounds how deep it can go.
        raise PolicyError(
            f"gate policy {path} nests arrays or tables too deeply to read; a gate policy "
            "needs two levels at most"
        ) from None
    if policy_path is None or "tool" in data:
        table: dict[str, Any] = data
        dotted = []
        for key in ("tool", "shakeout", "gate"):
            dotted.append(key)
            value = table.get(key)
            if value is None:
                return GatePolicy.default(
                    f"no gate policy: {path} has no [tool.shakeout.gate] table"
                )
            if not isinstance(value, dict):
                raise PolicyError(
                    f"{path}: {'.'.join(dotted)} must be a table, got {shown(value)}; the "
                    "gate policy is the [tool.shakeout.gate] table"
                )
            table = value
        return GatePolicy.from_mapping(table, f"{path} [tool.shakeout.gate]")
    return GatePolicy.from_mapping(data, str(path))
