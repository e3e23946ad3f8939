"""Tests of harness.report.spool: the entry's JUnit form, the entry spool, an item built from an
entry."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.redact import MASK, Redactor
from harness.report.spool import EntrySpool, build_item, junit_properties

NODEIDS = st.sampled_from(["s.yaml::a", "s.yaml::b[tool_http_503@get_order#1]", "t.yml::c"])
ENTRIES = st.fixed_dictionaries(
    {"verdict": st.sampled_from(["pass", "fail", "error"]), "note": st.text(max_size=20)}
)


@given(st.lists(st.tuples(NODEIDS, ENTRIES), max_size=12))
def test_the_spool_gives_back_the_last_entry_spooled_for_each_nodeid(
    adds: list[tuple[str, dict[str, str]]],
) -> None:
    spool = EntrySpool()
    last: dict[str, dict[str, str]] = {}
    try:
        for nodeid, entry in adds:
            text = json.dumps(entry, sort_keys=True)
            spool.add(nodeid, text)
            spool.add(nodeid, text)  # setup and call carry the same text: spooled once
            last[nodeid] = entry
        assert spool.nodeids() == set(last)
        for nodeid, entry in last.items():
            assert spool.entry(nodeid) == entry
        assert spool.entry("never.yaml::spooled") is None
    finally:
        spool.close()


def test_an_unparsable_entry_comes_back_marked_and_its_item_is_an_error() -> None:
    spool = EntrySpool()
    spool.add("s.yaml::a", "{not json")
    entry = spool.entry("s.yaml::a")
    spool.close()
    assert entry == {"_unparsable": "{not json"}
    item = build_item("s.yaml::a", entry, [], seed=3)
    assert item.verdict == "error"
    assert "does not match the report schema" in str(item.error)


@pytest.mark.parametrize(
    ("problems", "verdict", "error"),
    [
        ([], "pass", None),
        ([("call", "assert False")], "fail", "failed after the run passed: assert False"),
        ([("teardown", "boom")], "error", "error in teardown: boom"),
    ],
)
def test_a_passing_entry_is_made_worse_by_a_failed_phase_never_better(
    problems: list[tuple[str, str]], verdict: str, error: str | None
) -> None:
    entry = {"scenario": "a", "variant": "base", "verdict": "pass", "seed": 3}
    item = build_item("s.yaml::a", entry, problems, seed=3)
    assert (item.verdict, item.error) == (verdict, error)


def test_an_item_without_an_entry_is_an_error_named_from_its_nodeid() -> None:
    item = build_item("dir/s.yaml::refund[tool_http_503]", None, [("setup", "no agent")], seed=9)
    assert (item.scenario, item.variant, item.verdict, item.seed) == (
        "refund",
        "tool_http_503",
        "error",
        9,
    )
    assert item.error == "error in setup: no agent"


def test_junit_properties_is_idempotent_and_leaves_other_properties_alone() -> None:
    entry = {"verdict": "pass", "scenario": "s", "faults_fired": [{"key": "k"}, {"key": "k"}]}
    once = junit_properties([("other", {"a": 1}), ("shakeout", entry)])
    assert once[0] == ("other", {"a": 1})
    assert once[1] == ("shakeout", json.dumps(entry, sort_keys=True))
    assert ("shakeout.faults_fired", "k") in once
    assert ("shakeout.category", "") in once
    assert junit_properties(once) == once


def test_entry_text_from_a_worker_is_masked_again_only_for_values_remembered_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the controller's redactor knows a secret the worker's text still carries: masked
    controller = Redactor(secrets=["s3cr3t-value-42"])
    leaked = json.dumps({"verdict": "pass", "note": "token s3cr3t-value-42 in free text"})
    ((_, text), *_) = junit_properties([("shakeout", leaked)], controller)
    assert isinstance(text, str)
    assert "s3cr3t-value-42" not in text
    assert json.loads(text)["note"] == f"token {MASK} in free text"
    # text the worker already masked is not parsed and walked again (the controller's cost)
    walked: list[str] = []
    real = Redactor._json_text

    def counting(self: Redactor, value: str) -> tuple[str, bool]:
        walked.append(value)
        return real(self, value)

    monkeypatch.setattr(Redactor, "_json_text", counting)
    masked = json.dumps({"verdict": "pass", "headers": {"authorization": MASK}})
    assert junit_properties([("shakeout", masked)], controller)[0] == ("shakeout", masked)
    assert walked == []
    # an entry that is still a mapping (this process ran the item) is walked and masked
    entry = {"verdict": "pass", "headers": {"authorization": "Bearer abc.def.ghi"}}
    ((_, fresh), *_) = junit_properties([("shakeout", entry)], controller)
    assert isinstance(fresh, str)
    assert "abc.def.ghi" not in fresh
    assert walked
