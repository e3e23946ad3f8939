"""Hypothesis strategies for scenario files: valid ones over the schema's shape, and hostile ones.

A hostile file is a valid scenario with one attack in it (a huge integer, deep nesting, a bad
tag, a control character, billion laughs, a recursive alias, a non-finite number, an
out-of-range time or count, a wrong type, an unknown field), or a truncated file, or binary
garbage. Each strategy draws a :class:`Case`: the file's bytes and whether the loader must
refuse it (a truncated file may still be a valid scenario).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from hypothesis import strategies as st

HOLE = "__HOSTILE__"
HEADER = "# yaml-language-server: $schema=schema.json\n"


@dataclass(frozen=True)
class Case:
    """One generated scenario file."""

    kind: str
    data: bytes
    must_fail: bool


# --------------------------------------------------------------------------- valid scenarios

# Cheap building blocks (from_regex and full-Unicode text cost ~10x more to draw): YAML's
# indicator characters and a few non-ASCII scripts are where quoting goes wrong.
_names = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from("abcdefghijklmnopqrstuvwxyz"),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789_", max_size=12),
)
_text = st.text(
    "abc XYZ 0189 :-#'\"{}[],&*!|>%@`?=~\\\t\u00e9\u00fc\u4e2d\u0627\U0001f642\u200b",
    min_size=1,
    max_size=30,
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**18), 10**18),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_names, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def valid_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A valid scenario as a dict, over the shape of the schema (services, turns, faults...)."""
    services = draw(st.lists(_names, min_size=1, max_size=3, unique=True))
    tools = {
        name: {
            "path": f"/t{i}",
            "respond": {"status": draw(st.integers(100, 599)), "json": draw(_json)},
        }
        for i, name in enumerate(services)
    }
    turns = draw(
        st.lists(
            st.one_of(
                st.builds(lambda t: {"text": t}, _text),
                st.builds(
                    lambda n, a: {"tool_call": {"name": n, "arguments": a}},
                    st.sampled_from(services),
                    st.dictionaries(_names, _scalars, max_size=3),
                ),
            ),
            max_size=3,
        )
    )
    reviewer = draw(
        st.lists(
            st.one_of(
                st.sampled_from(["approve", "deny", "never"]),
                st.fixed_dictionaries(
                    {
                        "verdict": st.sampled_from(["approve", "deny", "never"]),
                        "delay_s": st.floats(0, 86_400),
                        "times": st.integers(1, 100),
                    }
                ),
            ),
            max_size=2,
        )
    )
    target = st.sampled_from(services)
    faults = draw(
        st.lists(
            st.one_of(
                st.just("model_refusal"),
                st.builds(
                    lambda t, n: {"tool_http_503": {"target": t, "at": {"nth": n}}},
                    target,
                    st.integers(1, 10_000),
                ),
                st.builds(
                    lambda t, s, p: {"tool_latency": {"target": t, "seconds": s, "at": p}},
                    target,
                    st.floats(0, 86_400),
                    st.builds(lambda p: {"probability": p}, st.floats(0, 1)),
                ),
            ),
            max_size=2,
        )
    )
    state = draw(st.sampled_from(["completed", "failed", "escalated"]))
    expect: dict[str, Any] = {"state": state}
    if state == "failed":
        expect["category"] = draw(st.sampled_from(["model", "tool", "logic", "input"]))
    expect["budget"] = {
        "wall_s": draw(st.floats(0.001, 3600)),
        "model_calls": draw(st.integers(0, 10_000)),
    }
    return {
        "name": draw(_names),
        "description": draw(_text),
        "input": draw(st.dictionaries(_names, _json, min_size=1, max_size=4)),
        "agent_config": draw(st.dictionaries(_names, _json, max_size=2)),
        "model": {"turns": turns},
        "tools": {"services": tools},
        "reviewer": reviewer,
        "faults": faults,
        "expect": expect,
    }


def dump(data: Any) -> str:
    """The scenario file text of ``data``, with the editor's schema line."""
    return HEADER + yaml.dump(
        data, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True, width=200
    )


# --------------------------------------------------------------------------- where to attack

# Places a value can go in any scenario drawn above: a hostile value there is read by the
# loader whatever the field's type (the attacks that need a particular field have their own).
_SLOTS: tuple[tuple[str | int, ...], ...] = (
    ("name",),
    ("description",),
    ("input", "hostile"),
    ("agent_config", "hostile"),
    ("expect", "budget", "wall_s"),
    ("expect", "state"),
    ("model", "turns"),
    ("reviewer",),
)


def _put(data: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    node: Any = data
    for part in path[:-1]:
        if isinstance(node, dict) and part not in node:
            node[part] = {}
        node = node[part]
    node[path[-1]] = value
    return data


@st.composite
def _with_hole(draw: st.DrawFn) -> str:
    """A valid scenario's text with ``HOLE`` as one value, to be replaced by raw YAML."""
    data = draw(valid_scenarios())
    return dump(_put(data, draw(st.sampled_from(_SLOTS)), HOLE))


def _fill(fragments: st.SearchStrategy[str], kind: str) -> st.SearchStrategy[Case]:
    return st.builds(
        lambda text, fragment: Case(kind, text.replace(HOLE, fragment, 1).encode(), True),
        _with_hole(),
        fragments,
    )


# --------------------------------------------------------------------------- the attacks

_huge_ints = st.one_of(
    st.builds(lambda n, s: s + "9" * n, st.integers(101, 6000), st.sampled_from(["", "-", "+"])),
    st.builds(lambda n: "0x" + "f" * n, st.integers(100, 5000)),
    st.builds(lambda n: "0b" + "1" * n, st.integers(100, 20_000)),
    st.builds(lambda n: "1" + ":59" * n, st.integers(40, 3000)),
)

_deep = st.one_of(
    st.builds(lambda n: "[" * n + "]" * n, st.integers(65, 3000)),
    st.builds(lambda n: "{a: " * n + "1" + "}" * n, st.integers(65, 1500)),
    st.builds(lambda n: "[{k: " * n + "x" + "}]" * n, st.integers(33, 800)),
)

_letters = st.text("ghijklmnopqrstuvwxyz", min_size=1, max_size=10).filter(
    lambda t: t not in ("no", "on")  # PyYAML's !!bool reads these
)
_bad_tags = st.one_of(
    st.builds(lambda tag, text: f"{tag} {text}", st.sampled_from(["!!int", "!!float"]), _letters),
    st.builds(lambda text: f"!!bool {text}", _letters),
    st.builds(
        lambda tag, text: f"{tag} {text}",
        st.sampled_from(
            [
                "!!binary",
                "!!timestamp",
                "!!python/name:os.system",
                "!!python/object/apply:os.system",
                "!custom",
                "!<tag:example.com,2000:app/foo>",
            ]
        ),
        _letters,
    ),
    st.builds(lambda tag: f"{tag} {{a: 1}}", st.sampled_from(["!!set", "!!omap", "!!pairs"])),
)


def _laughs(levels: int, width: int) -> str:
    parts = ["&l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        parts.append(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "[" + ", ".join(parts) + "]"


_billion_laughs = (
    st.tuples(st.integers(3, 10), st.integers(3, 12))
    .filter(lambda lw: lw[1] ** lw[0] > 12_000)
    .map(lambda lw: _laughs(*lw))
)

_recursive = st.sampled_from(
    [
        "&r [*r]",
        "&r {a: *r}",
        "&r [1, [2, {b: *r}]]",
        "&r {<<: *r}",
        "&r {a: [*r, *r]}",
        "[&s {x: 1}, &r {y: [*s, *r]}]",
    ]
)

_non_finite = st.sampled_from(
    [".inf", "-.inf", "+.inf", ".Inf", ".INF", ".nan", ".NaN", ".NAN", "1.0e+999", "-2.5e+400"]
)

_CONTROL = [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"] + [
    chr(c) for c in range(0x7F, 0xA0) if c != 0x85
]


@st.composite
def _control_characters(draw: st.DrawFn) -> Case:
    text = dump(draw(valid_scenarios()))
    at = draw(st.integers(0, len(text)))
    char = draw(st.sampled_from([*_CONTROL, "\ufffe", "\uffff"]))
    return Case("control_characters", (text[:at] + char + text[at:]).encode(), True)


# Field path, then values outside its bound (times, counts, sizes, ranges).
_OUT_OF_RANGE: tuple[tuple[tuple[str | int, ...], tuple[Any, ...]], ...] = (
    (("expect", "budget", "wall_s"), (0, -1, 3600.5, 10**9)),
    (("expect", "budget", "model_calls"), (-1, 10_001, 10**30)),
    (("expect", "budget", "tool_calls"), (-5, 10**6)),
    (
        ("reviewer",),
        ([{"verdict": "approve", "delay_s": 86_401}], [{"verdict": "deny", "times": 0}]),
    ),
    (("reviewer",), ([{"verdict": "approve", "times": 10**9}], ["approve"] * 1001)),
    (
        ("faults",),
        ([{"tool_http_503": {"at": {"nth": 0}}}], [{"model_refusal": {"at": {"first": 10**6}}}]),
    ),
    (
        ("faults",),
        ([{"tool_latency": {"seconds": -1}}], [{"stream_trickle": {"delay_per_event": 10**7}}]),
    ),
    (
        ("faults",),
        (
            [{"tool_oversize_body": {"size_bytes": 2**40}}],
            [{"tool_rate_limit": {"seconds": 10**12}}],
        ),
    ),
    (("faults",), ([{"model_refusal": {"at": {"probability": 1.5}}}],)),
    (("input_matrix",), ({"examples": 0}, {"examples": 501}, {"examples": 10**9})),
    (
        ("matrix",),
        (
            {"faults": ["model_refusal"], "calls": [0]},
            {"faults": ["model_refusal"], "calls": [10_001]},
        ),
    ),
    (("seed",), (-1, 2**64, 10**40)),
    (("model", "turns"), ([{"text": "x"}] * 1001,)),
    (("name",), ("n" * 201,)),
)


@st.composite
def _out_of_range(draw: st.DrawFn) -> Case:
    data = draw(valid_scenarios())
    path, values = draw(st.sampled_from(_OUT_OF_RANGE))
    return Case(
        "out_of_range", dump(_put(data, path, draw(st.sampled_from(values)))).encode(), True
    )


# Fields of a fixed shape, and a value of the wrong kind for each (pydantic's lax mode turns
# "1.5" into a float, so a scalar field gets a list or mapping, a container field a scalar).
_WRONG_TYPES: tuple[tuple[tuple[str | int, ...], tuple[Any, ...]], ...] = (
    (("name",), ([1], {"a": 1}, None, 5)),
    (("description",), ([], {"x": "y"}, None)),
    (("input",), ("text", 5, [1, 2], None)),
    (("expect",), ("completed", [], 1)),
    (("expect", "state"), ("done", 1, [], {"a": 1})),
    (("expect", "budget", "wall_s"), ("soon", [], {"s": 1})),
    (("tools",), ("x", [1])),
    (("tools", "services"), ("x", [1], 3)),
    (("model", "turns"), ("x", 5, {"text": "x"})),
    (("reviewer",), ("approve", 1, {"verdict": "approve"})),
    (("faults",), ("model_refusal", 3, {"a": 1})),
    (("agent_config",), ([1], "x", 3)),
)


@st.composite
def _wrong_types(draw: st.DrawFn) -> Case:
    data = draw(valid_scenarios())
    path, values = draw(st.sampled_from(_WRONG_TYPES))
    return Case("wrong_types", dump(_put(data, path, draw(st.sampled_from(values)))).encode(), True)


_FIXED_MODELS: tuple[tuple[str, ...], ...] = (
    (),
    ("expect",),
    ("expect", "budget"),
    ("tools",),
    ("model",),
)


@st.composite
def _unknown_fields(draw: st.DrawFn) -> Case:
    data = draw(valid_scenarios())
    where = draw(st.sampled_from(_FIXED_MODELS))
    key = draw(_names) + "_x"  # ends in _x: no real field does
    node: Any = data
    for part in where:
        node = node.setdefault(part, {})
    node[key] = draw(_scalars)
    return Case("unknown_fields", dump(data).encode(), True)


@st.composite
def _truncated(draw: st.DrawFn) -> Case:
    data = dump(draw(valid_scenarios())).encode()
    cut = draw(st.integers(0, len(data) - 1))
    # Cutting at a line boundary after every field may leave a valid scenario; any other cut
    # must be refused, but either way the loader must answer with a scenario or a located error.
    return Case("truncated", data[:cut], False)


_garbage = st.builds(
    lambda b: Case("binary_garbage", b, True),
    st.binary(min_size=1, max_size=4096).filter(lambda b: b.strip() != b""),
)

_valid = st.builds(lambda d: Case("valid", dump(d).encode(), False), valid_scenarios())

# Each attack and the number of files it writes per run (500+ in all).
ATTACKS: dict[str, tuple[st.SearchStrategy[Case], int]] = {
    "valid": (_valid, 30),
    "huge_ints": (_fill(_huge_ints, "huge_ints"), 50),
    "deep_nesting": (_fill(_deep, "deep_nesting"), 40),
    "bad_tags": (_fill(_bad_tags, "bad_tags"), 50),
    "control_characters": (_control_characters(), 50),
    "billion_laughs": (_fill(_billion_laughs, "billion_laughs"), 40),
    "recursive_aliases": (_fill(_recursive, "recursive_aliases"), 40),
    "non_finite": (_fill(_non_finite, "non_finite"), 50),
    "out_of_range": (_out_of_range(), 60),
    "wrong_types": (_wrong_types(), 50),
    "unknown_fields": (_unknown_fields(), 40),
    "truncated": (_truncated(), 50),
    "binary_garbage": (_garbage, 40),
}
