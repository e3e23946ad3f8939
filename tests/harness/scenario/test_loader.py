"""Tests of scenario loading: messages pinned to file and line, YAML pitfalls, validate, schema."""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faults.base import _REGISTRY, Category
from faults.surfaces import ToolFault, ToolResult
from harness.scenario.loader import (
    REGENERATE,
    SCHEMA_LINE,
    load_library,
    load_scenario,
    scenario_schema,
    schema_text,
    validate_main,
    write_schema,
)
from harness.scenario.reading import ScenarioError

REPO = Path(__file__).resolve().parents[3]
LIBRARY = REPO / "scenarios"


@pytest.fixture
def status_fault() -> Iterator[None]:
    """A test-local tool fault, registered for one test only so other tests never see it."""

    @dataclass(frozen=True)
    class LoaderStatusFault(ToolFault):
        """Test-local: the tool answers ``status``."""

        key: ClassVar[str] = "loader_test_status"
        category: ClassVar[Category | None] = Category.TOOL
        transient: ClassVar[bool] = False
        status: int = 404

        def apply(self, ctx: Any) -> ToolResult:
            raise NotImplementedError

    yield
    # the registry is global: leave it as other tests (and matrix expansions) expect it
    _REGISTRY.pop("loader_test_status", None)


GOOD = """\
# yaml-language-server: $schema=schema.json
name: refund_mini
description: A small valid scenario.
input: {ticket_id: T-1001, customer_id: C-42, message: "Refund please"}
model:
  turns:
    - tool_call: {name: classify_request, arguments: {intent: refund, order_id: O-1001}}
tools:
  services:
    get_order:
      method: GET
      path: /orders/O-1001
      respond: {status: 200, json: {order_id: O-1001, placed_at: 2025-12-20, note: no}}
    issue_refund: {method: POST, path: /refunds, ledger: {status: 201, json: {refund_id: R-1}}}
expect:
  state: completed
  effects: {issue_refund: 1}
"""


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in an empty directory with a ``scenarios/`` folder, so paths print relative."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scenarios").mkdir()
    return tmp_path


def write(name: str, text: str) -> Path:
    path = Path("scenarios") / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(text: str, name: str = "x.yaml") -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(name, text))
    return str(info.value).splitlines()


def test_a_valid_file_loads_with_its_source(in_tmp: Path) -> None:
    path = write("mini.yaml", GOOD)
    s = load_scenario(path)
    assert s.name == "refund_mini"
    assert s.source == path
    body = s.service("get_order").respond
    assert body is not None
    # YAML 1.1 would have read a date and a boolean here; scenario files keep what they say
    assert body.json_body == {"order_id": "O-1001", "placed_at": "2025-12-20", "note": "no"}


def test_wrong_type_points_at_the_field_line_with_the_exact_message(in_tmp: Path) -> None:
    text = GOOD.replace("respond: {status: 200", "respond: {status: abc")
    assert errors_of(text) == [
        "scenarios/x.yaml:13: field 'tools.services.get_order.respond.status': Input should be a "
        "valid integer, got 'abc'. Fix: write a whole number without quotes, e.g. 200"
    ]


def test_missing_field_points_at_its_parent_mapping(in_tmp: Path) -> None:
    text = GOOD.replace("  state: completed\n", "")
    assert errors_of(text) == [
        "scenarios/x.yaml:15: field 'expect.state': required field is missing. "
        "Fix: add 'state' under 'expect'"
    ]
    assert errors_of(GOOD.replace("name: refund_mini\n", ""), "y.yaml") == [
        "scenarios/y.yaml:2: field 'name': required field is missing. "
        "Fix: add 'name' at the top level"
    ]


def test_unknown_field_lists_the_allowed_ones_with_a_suggestion(in_tmp: Path) -> None:
    text = GOOD.replace("      method: GET\n", "      methd: GET\n")
    assert errors_of(text) == [
        "scenarios/x.yaml:11: field 'tools.services.get_order.methd': unknown field 'methd'. "
        "Fix: did you mean 'method'? remove 'methd' (allowed here: method, path, path_regex, "
        "respond, sequence, ledger, gated, vary, approval_map)"
    ]


def test_unknown_field_inside_a_turn_short_form(in_tmp: Path) -> None:
    text = GOOD.replace("arguments: {intent", "args: {intent")
    (line,) = errors_of(text)
    assert line.startswith(
        "scenarios/x.yaml:7: field 'model.turns[0].tool_call.args': unknown field 'args'. "
        "Fix: did you mean 'arguments'? remove 'args' (allowed here: name, arguments, id)"
    )


def test_bad_enum_lists_the_allowed_values(in_tmp: Path) -> None:
    assert errors_of(GOOD.replace("method: GET", "method: get")) == [
        "scenarios/x.yaml:11: field 'tools.services.get_order.method': Input should be 'GET', "
        "'POST', 'PUT', 'PATCH' or 'DELETE', got 'get'. Fix: write 'GET' (values are "
        "case-sensitive)"
    ]
    assert errors_of(GOOD.replace("state: completed", "state: done")) == [
        "scenarios/x.yaml:16: field 'expect.state': Input should be 'completed', 'failed', "
        "'rejected', 'expired', 'escalated' or 'throttled', got 'done'. Fix: use one of: "
        "completed, failed, rejected, expired, escalated, throttled"
    ]


def test_several_errors_give_one_line_each_in_line_order(in_tmp: Path) -> None:
    text = GOOD.replace("state: completed", "state: done").replace("name: refund_mini", "name: X")
    lines = errors_of(text)
    assert [line.split(":")[1] for line in lines] == ["2", "16"]
    assert "field 'name': String should match pattern" in lines[0]


@pytest.mark.usefixtures("status_fault")
def test_rule_errors_point_at_the_field_they_name(in_tmp: Path) -> None:
    text = GOOD + "faults:\n  - loader_test_status: {target: get_ordr, at: {nth: 0}}\n"
    text += "  - loader_test_statu\n"
    assert errors_of(text) == [
        "scenarios/x.yaml:19: field 'faults[0].loader_test_status.at.nth': Input should be "
        "greater than 0, got 0. Fix: use a value greater than 0",
        "scenarios/x.yaml:20: field 'faults[1]': unknown fault 'loader_test_statu'. Fix: did you "
        "mean 'loader_test_status'? run `shakeout faults` to list them all",
    ]
    text = GOOD + "faults:\n  - loader_test_status: {target: get_ordr}\n"
    assert errors_of(text) == [
        "scenarios/x.yaml:19: field 'faults[0].loader_test_status.target': fault target "
        "'get_ordr' is not a service of this scenario. Fix: did you mean 'get_order'? add it "
        "under 'tools.services' or use one of: get_order, issue_refund"
    ]


def test_failed_state_without_category(in_tmp: Path) -> None:
    assert errors_of(GOOD.replace("state: completed", "state: failed")) == [
        "scenarios/x.yaml:15: field 'expect.category': a failed run must name its category. "
        "Fix: add 'category: model', 'tool', 'logic' or 'input' next to 'state: failed'"
    ]


def test_yaml_syntax_error_gives_line_column_and_problem(in_tmp: Path) -> None:
    assert errors_of("name: x\ndescription: a: b\n") == [
        "scenarios/x.yaml:2:15: YAML syntax error: mapping values are not allowed here. "
        "Fix: correct the YAML at that position (indentation, quotes, ': ' after each key)"
    ]
    (tabbed,) = errors_of("name: x\n\tdescription: y\n", "t.yaml")
    assert tabbed.startswith("scenarios/t.yaml:2:1: YAML syntax error: found character '\\t'")
    assert tabbed.endswith("Fix: indent with spaces, not tabs")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "scenarios/x.yaml:1: the file is empty (or holds only comments)"),
        ("# just a comment\n", "scenarios/x.yaml:1: the file is empty (or holds only comments)"),
        (
            "- name: x\n",
            "scenarios/x.yaml:1: the top level must be a mapping of scenario fields, got a list",
        ),
        ("just text\n", "scenarios/x.yaml:1: the top level must be a mapping of scenario fields"),
        (
            "a: 1\n---\nb: 2\n",
            "scenarios/x.yaml:2:1: YAML syntax error: but found another document (expected a "
            "single document in the stream at line 1). Fix: keep one scenario per file: move what "
            "follows '---' into a file of its own",
        ),
    ],
)
def test_files_that_are_not_one_mapping(in_tmp: Path, text: str, expected: str) -> None:
    (line,) = errors_of(text)
    assert line.startswith(expected)


def test_duplicate_keys_are_rejected_at_any_depth(in_tmp: Path) -> None:
    text = GOOD.replace(
        "      path: /orders/O-1001\n", "      path: /orders/O-1001\n      path: /x\n"
    )
    assert errors_of(text) == [
        "scenarios/x.yaml:13: field 'tools.services.get_order.path': duplicate key 'path' "
        "(first at line 12). Fix: remove or rename one of them; YAML would silently keep only "
        "the last"
    ]


def test_scenario_error_exposes_the_first_issue(in_tmp: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write("x.yaml", GOOD.replace("respond: {status: 200", "respond: {status: x")))
    err = info.value
    assert (err.path, err.line, err.field) == (
        "scenarios/x.yaml",
        13,
        "tools.services.get_order.respond.status",
    )
    assert err.message == "Input should be a valid integer, got 'x'"


def test_unreadable_files(in_tmp: Path) -> None:
    Path("scenarios/bin.yaml").write_bytes(b"name: \xff\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(Path("scenarios/bin.yaml"))
    assert str(info.value) == (
        "scenarios/bin.yaml:1:7: the file is not UTF-8 text (byte 0xff: invalid start byte). "
        "Fix: save it as UTF-8 text; a binary file is not a scenario"
    )
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(Path("scenarios/absent.yaml"))


def test_a_control_character_is_located_by_line_and_column(in_tmp: Path) -> None:
    text = GOOD.replace('"Refund please"', '"Refund\x00please"')
    assert errors_of(text) == [
        "scenarios/x.yaml:4:63: the file holds the character U+0000 (NUL), which YAML does not "
        "allow in a file. Fix: remove it; to put it in a value, write it as an escape inside "
        'double quotes, e.g. "\\u0000"'
    ]
    (line,) = errors_of(GOOD.replace("A small", "A \x1b small"))
    assert line.startswith("scenarios/x.yaml:3:16: the file holds the character U+001B (ESC)")
    # the escape the hint suggests is accepted
    assert load_scenario(write("ok.yaml", text.replace("\x00", "\\u0000"))).input["message"] == (
        "Refund\x00please"
    )


def test_an_integer_too_long_for_python_is_refused_where_it_is(in_tmp: Path) -> None:
    text = GOOD.replace("status: 201", "status: " + "9" * 5000)
    assert errors_of(text) == [
        "scenarios/x.yaml:14: an integer of 5,000 characters is too long (at most 100). "
        "Fix: quote it to keep it as text, or write a smaller number"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "!!int 12abc",
            "'12abc' cannot be read as a whole number (!!int: ValueError). Fix: "
            "write a whole number, or remove the '!!int' tag (quote the value to keep it as text)",
        ),
        ("!!float x", "'x' cannot be read as a number (!!float: ValueError)"),
        ("!!bool maybe", "'maybe' cannot be read as true or false (!!bool: KeyError)"),
        (
            "!!binary aGVsbG8=",
            "the tag '!!binary' is not supported in scenario files. Fix: "
            "remove the tag; scenario values are JSON-like",
        ),
        ("!!set {a}", "the tag '!!set' is not supported"),
        ("!python/object:os.system x", "the tag '!python/object:os.system' is not supported"),
        (
            ".inf",
            "the number '.inf' is not finite (it reads as inf); scenario values are JSON, "
            "which has no infinity or NaN. Fix: write a finite number, or quote it",
        ),
        ("-1.0e+999", "the number '-1.0e+999' is not finite (it reads as -inf)"),
        (".nan", "the number '.nan' is not finite (it reads as nan)"),
    ],
)
def test_a_value_its_tag_cannot_read_is_located(in_tmp: Path, value: str, message: str) -> None:
    text = GOOD.replace("note: no}", f"note: {value}}}")
    (line,) = errors_of(text)
    assert line.startswith(f"scenarios/x.yaml:13: {message}")


def test_an_unbounded_time_is_refused_with_its_line(in_tmp: Path) -> None:
    text = GOOD.replace("  state: completed\n", "  state: completed\n  budget: {wall_s: 7200}\n")
    assert errors_of(text) == [
        "scenarios/x.yaml:17: field 'expect.budget.wall_s': Input should be less than or equal "
        "to 3600, got 7200. Fix: use a value of at most 3600"
    ]
    (line,) = errors_of(text.replace("7200", ".inf"))
    assert line.startswith("scenarios/x.yaml:17: the number '.inf' is not finite")


def test_an_equals_sign_is_text(in_tmp: Path) -> None:
    scenario = load_scenario(write("eq.yaml", GOOD.replace("note: no}", "note: =}")))
    body = scenario.service("get_order").respond
    assert body is not None
    assert body.json_body["note"] == "="


def test_deep_nesting_is_refused_before_python_recursion(in_tmp: Path) -> None:
    text = GOOD + "agent_config: {deep: " + "[" * 5000 + "]" * 5000 + "}\n"
    (line,) = errors_of(text)
    assert line == (
        "scenarios/x.yaml:18: values nest more than 64 levels deep (aliases expanded). "
        "Fix: flatten the structure; no scenario field needs that depth"
    )


def test_nesting_through_aliases_counts_the_expanded_depth(in_tmp: Path) -> None:
    inner = "[" * 40 + "]" * 40
    text = GOOD + f"agent_config:\n  a: &deep {inner}\n  b: {'[' * 30}*deep{']' * 30}\n"
    (line,) = errors_of(text)
    assert "values nest more than 64 levels deep (aliases expanded)" in line
    fine = GOOD + f"agent_config:\n  a: &deep {inner}\n  b: [[*deep]]\n"
    assert load_scenario(write("fine.yaml", fine)).agent_config["b"][0][0] is not None


def test_billion_laughs_is_refused_without_expanding_it(in_tmp: Path) -> None:
    laughs = ["  l0: &l0 lol"] + [
        f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)
    ]
    text = GOOD + "agent_config:\n" + "\n".join(laughs) + "\n"
    (line,) = errors_of(text)
    # l4 (line 23) is the first list past 10,000 values: 11,111 once expanded
    assert line == (
        "scenarios/x.yaml:23: the document holds more than 10,000 values once its aliases are "
        "expanded. Fix: write smaller bodies and inputs, or split the scenario; an alias "
        "('*name') counts as a full copy of what its anchor names"
    )


def test_a_recursive_alias_is_refused_at_its_anchor(in_tmp: Path) -> None:
    text = GOOD.replace(
        'input: {ticket_id: T-1001, customer_id: C-42, message: "Refund please"}',
        "input: &loop {ticket_id: T-1001, again: *loop}",
    )
    assert errors_of(text) == [
        "scenarios/x.yaml:4: the anchor '&loop' is used inside itself (a recursive alias), so "
        "the value would be infinite. Fix: replace '*loop' inside it with a copy of the part "
        "you need"
    ]


def test_a_file_over_the_size_limit_names_the_line_where_it_is_reached(in_tmp: Path) -> None:
    text = GOOD + "# padding\n" * (600 * 1024 // 10)
    (line,) = errors_of(text)
    expected = GOOD.count("\n") + (512 * 1024 - len(GOOD)) // 10 + 1
    assert line == (
        f"scenarios/x.yaml:{expected}: the file is larger than 512 KiB (the limit is reached "
        "on this line). Fix: shorten the bodies and inputs, or split the scenario into several "
        "files"
    )


def test_the_recursion_backstop_is_a_located_error(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.scenario.reading

    monkeypatch.setattr(harness.scenario.reading, "MAX_DEPTH", 100_000)
    text = GOOD + "agent_config: {deep: " + "[" * 5000 + "]" * 5000 + "}\n"
    assert errors_of(text) == [
        "scenarios/x.yaml:1: the file nests too deeply for shakeout to read. Fix: keep values "
        "under 100000 levels of nesting"
    ]


@given(st.integers(min_value=0, max_value=12), st.sampled_from(["abc", "[1]", "{a: 1}", "x y"]))
def test_the_reported_line_is_where_the_field_is(padding: int, bad: str) -> None:
    # comments and blank lines above the field must not shift the reported line
    head, rest = GOOD.split("tools:\n", 1)
    text = head + "# pad\n\n" * padding + "tools:\n" + rest.replace("status: 200", f"status: {bad}")
    lines = text.splitlines()
    expected = 1 + next(i for i, line in enumerate(lines) if f"status: {bad}" in line)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ScenarioError) as info:
            load_scenario(path)
    assert (info.value.line, info.value.field) == (
        expected,
        "tools.services.get_order.respond.status",
    )


def test_load_library_rejects_duplicate_names_across_files(in_tmp: Path) -> None:
    write("a.yaml", GOOD)
    write("b.yaml", GOOD)
    (Path("scenarios") / "nested").mkdir()
    write("nested/c.yml", GOOD.replace("name: refund_mini", "name: other"))
    with pytest.raises(ScenarioError) as info:
        load_library([Path("scenarios")])
    assert str(info.value) == (
        "scenarios/b.yaml:2: field 'name': scenario name 'refund_mini' is already used by "
        "scenarios/a.yaml. Fix: rename one of them; names are unique in a library"
    )
    Path("scenarios/b.yaml").unlink()
    names = [s.name for s in load_library([Path("scenarios")])]
    assert names == ["refund_mini", "other"]


def test_validate_main_prints_one_line_per_file_or_issue(in_tmp: Path) -> None:
    write("a.yaml", GOOD)
    write("b.yaml", GOOD.replace("name: refund_mini", "name: b").replace("state: completed", ""))
    out = io.StringIO()
    assert validate_main(["scenarios/a.yaml"], out) == 0
    assert out.getvalue() == "ok  scenarios/a.yaml (refund_mini)\n"
    out = io.StringIO()
    assert validate_main(["scenarios"], out) == 1
    assert out.getvalue().splitlines() == [
        "ok  scenarios/a.yaml (refund_mini)",
        "scenarios/b.yaml:15: field 'expect.state': required field is missing. "
        "Fix: add 'state' under 'expect'",
    ]


def test_validate_main_exit_codes_for_missing_paths_and_empty_dirs(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write("a.yaml", GOOD)
    assert validate_main(["scenarios", "nowhere.yaml"]) == 2
    assert capsys.readouterr().out.splitlines() == [
        "nowhere.yaml: no such file or directory. Fix: check the path",
        "ok  scenarios/a.yaml (refund_mini)",
    ]
    Path("empty").mkdir()
    assert validate_main(["empty"]) == 1
    assert "empty: no *.yaml or *.yml files here" in capsys.readouterr().out


def test_schema_file_is_up_to_date() -> None:
    current = (LIBRARY / "schema.json").read_text(encoding="utf-8")
    assert current == schema_text(), (
        f"scenarios/schema.json is stale; regenerate it with `{REGENERATE}`"
    )


def test_schema_describes_the_top_level_fields(tmp_path: Path) -> None:
    schema = scenario_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "description", "input", "expect"}
    assert "json" in schema["$defs"]["ResponseSpec"]["properties"]
    write_schema(tmp_path / "schema.json")
    assert json.loads((tmp_path / "schema.json").read_text()) == schema


def test_the_library_is_valid_and_complete() -> None:
    scenarios = load_library([LIBRARY])
    names = {s.name for s in scenarios}
    assert len(scenarios) >= 20
    for required in ("refund_happy", "approval_denied", "streaming_anthropic", "invalid_input"):
        assert required in names
    happy = next(s for s in scenarios if s.name == "refund_happy")
    assert happy.matrix is not None
    assert set(happy.matrix.surfaces) == {"tool", "model", "injection"}
    for path in sorted(LIBRARY.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == SCHEMA_LINE, f"{path.name} must start with {SCHEMA_LINE!r}"


def test_a_bad_on_tool_error_names_its_line_and_the_reactions(in_tmp: Path) -> None:
    text = GOOD.replace("model:\n", "model:\n  on_tool_error: ignore\n")
    assert errors_of(text) == [
        "scenarios/x.yaml:6: field 'model.on_tool_error': Input should be 'retry', 'proceed' or "
        "'give_up', got 'ignore'. Fix: use one of: retry, proceed, give_up"
    ]
    text = GOOD.replace("model:\n", "model:\n  on_tool_error: Give_Up\n")
    assert errors_of(text)[0].endswith("Fix: write 'give_up' (values are case-sensitive)")


def test_a_matrix_reaction_listed_twice_is_refused(in_tmp: Path) -> None:
    matrix = "matrix: {faults: [tool_http_404], on_tool_error: [retry, give_up, retry]}\n"
    assert errors_of(GOOD + matrix) == [
        "scenarios/x.yaml:18: field 'matrix.on_tool_error': reaction retry is listed more than "
        "once. Fix: list each of retry, proceed, give_up once"
    ]


def test_matrix_reactions_without_a_tool_fault_are_refused(in_tmp: Path) -> None:
    matrix = "matrix: {faults: [model_refusal], on_tool_error: [give_up]}\n"
    assert errors_of(GOOD + matrix) == [
        "scenarios/x.yaml:18: field 'matrix.on_tool_error': the reactions play against tool "
        "fault cells, but the matrix has no tool fault. Fix: add a tool fault (e.g. 'faults: "
        "[tool_http_404]' or 'surfaces: [tool]') or remove 'on_tool_error'"
    ]
