"""Reading a scenario file's YAML, bounded, into data with the line of every field.

YAML is composed into nodes first (``yaml.compose`` keeps each node's position), so each
validation error can point at the line of the offending field. Scenario files are read as YAML
1.2 reads them in editors: dates stay strings and only ``true`` / ``false`` are booleans.
Duplicate keys, which YAML itself allows silently, are rejected.

Scenario files are untrusted input, so reading one is bounded before anything is built from it:
the file's size, the number of nodes after alias expansion, the nesting depth (counting
aliases), the length of an integer's text, and the tags (JSON-like values only). Every problem
is an :class:`Issue` with its line, raised together as a :class:`ScenarioError`.

May import: ``base`` (the scenario's rules), nothing else of the harness.
"""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.scenario.base import Loc, _dotted, _short_repr

# Bounds on reading one file, chosen far above any scenario written by hand or imported from a
# recording (the library's largest is 3 KiB and ~150 values) and low enough that the pure-Python
# YAML reader (needed for line numbers; ~50-150 us per value on a busy CI core) finishes a file
# at the limits in a second or two.
MAX_FILE_BYTES = 512 * 1024
MAX_NODES = 10_000  # after alias expansion: what a consumer that walks the data would see
MAX_DEPTH = 64  # nesting levels, aliases expanded; the schema itself needs 6, JSON bodies more
MAX_INT_DIGITS = 100  # Python refuses int() of over 4,300 digits; no scenario needs 100


@dataclass(frozen=True)
class Issue:
    """One problem in a scenario file: ``path:line: field 'x': message. Fix: hint``."""

    path: str
    line: int | None
    message: str
    hint: str
    field: str | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" field '{self.field}':" if self.field else ""
        return f"{where}:{field} {self.message.rstrip('.')}. Fix: {self.hint}"


class ScenarioError(Exception):
    """A scenario file (or a library of them) is invalid; one :class:`Issue` per problem.

    ``path``, ``line``, ``field`` and ``message`` are those of the first issue; ``str()`` lists
    every issue, one per line.
    """

    def __init__(self, issues: Sequence[Issue]) -> None:
        if not issues:
            raise ValueError("ScenarioError needs at least one issue")
        self.issues = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues))

    @property
    def path(self) -> str:
        """The file of the first issue."""
        return self.issues[0].path

    @property
    def line(self) -> int | None:
        """The line of the first issue (1-based)."""
        return self.issues[0].line

    @property
    def field(self) -> str | None:
        """The dotted field path of the first issue (``None`` for file-level problems)."""
        return self.issues[0].field

    @property
    def message(self) -> str:
        """The message of the first issue."""
        return self.issues[0].message


# --------------------------------------------------------------------------- YAML reading


class _Refused(Exception):
    """A bound or rule of scenario YAML is broken at a position (0-based line and column)."""

    def __init__(self, mark: yaml.Mark | None, message: str, hint: str) -> None:
        super().__init__(message)
        self.line = None if mark is None else mark.line + 1
        self.message = message
        self.hint = hint


_TAG = "tag:yaml.org,2002:"
_BOOL = _TAG + "bool"
_INT = _TAG + "int"
_TIMESTAMP = _TAG + "timestamp"
_VALUE = _TAG + "value"
# JSON-like values only: the constructors PyYAML adds beyond these (binary, set, omap, pairs,
# timestamp) build Python objects no scenario field or JSON body can carry.
_ALLOWED_TAGS = frozenset(
    _TAG + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge")
)


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


class _ScenarioYamlLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans, no timestamp conversion, and bounded composition.

    PyYAML composes nodes recursively (deep nesting ends in RecursionError) and expands nothing
    itself, but hands on a graph whose aliases a consumer expands (billion laughs) or loops on
    (recursive aliases); it offers no limits, so these are counted here.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._composed = 0
        self.anchor_of: dict[int, str] = {}

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # The scanner looks ahead over every open '[' or '{' for a possible simple key (up to
        # 1,024 characters each), so a line of brackets costs seconds before the composer's
        # depth bound is reached: refuse at the bracket that goes too deep.
        if self.flow_level >= MAX_DEPTH:
            raise _Refused(self.get_mark(), *_too_deep())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            return typing.cast(yaml.Node, super().compose_node(parent, index))
        event = self.peek_event()  # type: ignore[no-untyped-call]
        self._composed += 1
        if self._composed > MAX_NODES:
            raise _Refused(event.start_mark, *_too_many_nodes())
        if self._depth >= MAX_DEPTH:
            raise _Refused(event.start_mark, *_too_deep())
        self._depth += 1
        try:
            node = typing.cast(yaml.Node, super().compose_node(parent, index))
        finally:
            self._depth -= 1
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self.anchor_of[id(node)] = anchor
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            data = super().construct_object(node, deep)
        except (yaml.YAMLError, _Refused):
            raise
        except Exception as exc:  # int('12abc'), a bool table's KeyError, ...: word it here
            raise _Refused(node.start_mark, *_unreadable(node, exc)) from None
        if isinstance(data, float) and not math.isfinite(data):
            raise _Refused(
                node.start_mark,
                f"the number '{node.value}' is not finite (it reads as {data}); scenario "
                "values are JSON, which has no infinity or NaN",
                "write a finite number, or quote it to keep it as text",
            )
        return data


def _too_many_nodes() -> tuple[str, str]:
    return (
        f"the document holds more than {MAX_NODES:,} values once its aliases are expanded",
        "write smaller bodies and inputs, or split the scenario; an alias ('*name') counts "
        "as a full copy of what its anchor names",
    )


def _too_deep() -> tuple[str, str]:
    return (
        f"values nest more than {MAX_DEPTH} levels deep (aliases expanded)",
        "flatten the structure; no scenario field needs that depth",
    )


def _unreadable(node: yaml.Node, exc: Exception) -> tuple[str, str]:
    tag = _short_tag(node.tag)
    text = node.value if isinstance(node, yaml.ScalarNode) else type(node).__name__
    readable = {"!!int": "a whole number", "!!float": "a number", "!!bool": "true or false"}
    kind = readable.get(tag, f"a value of tag {tag}")
    return (
        f"{_short_repr(text)} cannot be read as {kind} ({tag}: {type(exc).__name__})",
        f"write {kind}, or remove the '{tag}' tag (quote the value to keep it as text)",
    )


_ScenarioYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _TIMESTAMP, _VALUE)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ScenarioYamlLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass(frozen=True)
class _Parsed:
    data: Any
    lines: dict[Loc, int]  # 1-based line of each key / item, by its location


def _parse(text: str, path: str) -> _Parsed:
    try:
        loader = _ScenarioYamlLoader(text)
    except yaml.reader.ReaderError as exc:  # raised on the whole text before any parsing
        raise ScenarioError([_reader_issue(exc, text, path)]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise ScenarioError(
                [
                    Issue(
                        path,
                        1,
                        "the file is empty (or holds only comments)",
                        "write a scenario: at least 'name', 'description', 'input' and "
                        "'expect' (see scenarios/refund_happy.yaml)",
                    )
                ]
            )
        if not isinstance(node, yaml.MappingNode):
            kind = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
            raise ScenarioError(
                [
                    Issue(
                        path,
                        node.start_mark.line + 1,
                        f"the top level must be a mapping of scenario fields, got {kind}",
                        "write 'name: ...', 'description: ...' and the other fields at the top "
                        "level, without a leading '- '",
                    )
                ]
            )
        _Measure(loader.anchor_of).walk(node, 1)
        lines: dict[Loc, int] = {(): node.start_mark.line + 1}
        issues: list[Issue] = []
        _index(node, (), lines, issues, path, set())
        if issues:
            raise ScenarioError(issues)
        data = loader.construct_document(node)
    except _Refused as exc:
        raise ScenarioError([Issue(path, exc.line, exc.message, exc.hint)]) from None
    except yaml.MarkedYAMLError as exc:
        raise ScenarioError([_yaml_issue(exc, path)]) from None
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML raises no other unmarked error
        raise ScenarioError([Issue(path, 1, f"YAML error: {exc}", "correct the YAML")]) from None
    finally:
        loader.dispose()
    return _Parsed(data, lines)


_CONTROL_NAMES = {0: "NUL", 0x7: "BEL", 0x8: "BS", 0xB: "VT", 0xC: "FF", 0x1B: "ESC", 0x7F: "DEL"}


def _reader_issue(exc: yaml.reader.ReaderError, text: str, path: str) -> Issue:
    position = int(exc.position)
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    code = exc.character if isinstance(exc.character, int) else 0
    name = _CONTROL_NAMES.get(code, "a control character" if code < 0x20 else "a non-printable")
    return Issue(
        path,
        line,
        f"the file holds the character U+{code:04X} ({name}), which YAML does not allow in a file",
        "remove it; to put it in a value, write it as an escape inside double quotes, "
        f'e.g. "\\u{code:04x}"',
        column=column,
    )


class _Measure:
    """Walks the node graph once, before anything is built from it: aliases expanded in the
    counts (so shared nodes are measured once but counted at every use), recursion refused."""

    def __init__(self, anchor_of: Mapping[int, str]) -> None:
        self.anchor_of = anchor_of
        self.measured: dict[int, tuple[int, int]] = {}  # id -> (values, levels) expanded
        self.open: set[int] = set()

    def walk(self, node: yaml.Node, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in self.open:
            anchor = self.anchor_of.get(key, "?")
            raise _Refused(
                node.start_mark,
                f"the anchor '&{anchor}' is used inside itself (a recursive alias), so the "
                "value would be infinite",
                f"replace '*{anchor}' inside it with a copy of the part you need",
            )
        found = self.measured.get(key)
        if found is None:
            found = self._measure(node, depth)
            self.measured[key] = found
        if depth + found[1] - 1 > MAX_DEPTH:
            raise _Refused(node.start_mark, *_too_deep())
        return found

    def _measure(self, node: yaml.Node, depth: int) -> tuple[int, int]:
        if node.tag not in _ALLOWED_TAGS:
            raise _Refused(
                node.start_mark,
                f"the tag '{_short_tag(node.tag)}' is not supported in scenario files",
                "remove the tag; scenario values are JSON-like: text, numbers, true/false, "
                "null, lists and mappings",
            )
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _INT and len(node.value) > MAX_INT_DIGITS:
                raise _Refused(
                    node.start_mark,
                    f"an integer of {len(node.value):,} characters is too long "
                    f"(at most {MAX_INT_DIGITS})",
                    "quote it to keep it as text, or write a smaller number",
                )
            return 1, 1
        children: list[yaml.Node] = (
            [part for pair in node.value for part in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        self.open.add(id(node))
        values, levels = 1, 1
        for child in children:
            if depth >= MAX_DEPTH:
                raise _Refused(child.start_mark, *_too_deep())
            child_values, child_levels = self.walk(child, depth + 1)
            values += child_values
            levels = max(levels, child_levels + 1)
            if values > MAX_NODES:
                raise _Refused(node.start_mark, *_too_many_nodes())
        self.open.discard(id(node))
        return values, levels


def _yaml_issue(exc: yaml.MarkedYAMLError, path: str) -> Issue:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem and exc.context_mark is not None:
        problem = f"{problem} ({exc.context} at line {exc.context_mark.line + 1})"
    hint = "correct the YAML at that position (indentation, quotes, ': ' after each key)"
    if "\\t" in problem or "\t" in problem:
        hint = "indent with spaces, not tabs"
    elif "another document" in problem:
        hint = "keep one scenario per file: move what follows '---' into a file of its own"
    return Issue(
        path,
        None if mark is None else mark.line + 1,
        f"YAML syntax error: {problem}",
        hint,
        column=None if mark is None else mark.column + 1,
    )


def _index(
    node: yaml.Node,
    loc: Loc,
    lines: dict[Loc, int],
    issues: list[Issue],
    path: str,
    seen: set[int],
) -> None:
    """Record the line of every key and item, and flag duplicate keys."""
    if id(node) in seen:  # an alias of a node indexed already
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_line:
                issues.append(
                    Issue(
                        path,
                        line,
                        f"duplicate key '{key}' (first at line {first_line[key]})",
                        "remove or rename one of them; YAML would silently keep only the last",
                        field=_dotted((*loc, key)),
                    )
                )
                continue
            first_line[key] = line
            lines[(*loc, key)] = line
            _index(value_node, (*loc, key), lines, issues, path, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*loc, i)] = item.start_mark.line + 1
            _index(item, (*loc, i), lines, issues, path, seen)


def _read(path: Path, shown: str) -> str:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(
            [Issue(shown, None, f"cannot read the file: {exc.strerror}", "check the path")]
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(
            [
                Issue(
                    shown,
                    raw.count(b"\n", 0, MAX_FILE_BYTES) + 1,
                    f"the file is larger than {MAX_FILE_BYTES // 1024} KiB (the limit is "
                    "reached on this line)",
                    "shorten the bodies and inputs, or split the scenario into several files",
                )
            ]
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        raise ScenarioError(
            [
                Issue(
                    shown,
                    raw.count(b"\n", 0, exc.start) + 1,
                    f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x}: {exc.reason})",
                    "save it as UTF-8 text; a binary file is not a scenario",
                    column=exc.start - line_start + 1,
                )
            ]
        ) from None
