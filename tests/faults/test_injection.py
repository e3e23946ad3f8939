"""The injection corpus: its size, its families, every payload's goal, the strategies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from faults.injection import (
    ATTACKER_EMAIL,
    CORPUS,
    FAMILIES,
    FAMILY_SUMMARIES,
    Payload,
    Target,
    fill,
    is_marker,
    marker_for,
    payloads,
    pick,
    templates,
)

TARGET = Target()


def test_the_corpus_holds_at_least_100_payloads_in_every_family() -> None:
    assert len(CORPUS) >= 100
    assert set(FAMILY_SUMMARIES) == set(FAMILIES)
    for family in FAMILIES:
        assert templates(family), family


@pytest.mark.parametrize("template", CORPUS, ids=lambda t: f"{t.family}/{t.index}")
def test_every_payload_fills_with_its_marker_and_carries_a_goal(template: object) -> None:
    payload = fill(template, TARGET, "inj-abcdefgh23")  # type: ignore[arg-type]
    assert "inj-abcdefgh23" in payload.text
    assert payload.goal.tool
    assert payload.goal.arguments
    assert payload.goal.evidence
    assert "{" not in payload.goal.describe().split(" ", 1)[0]


def test_goals_aim_outside_the_scenario() -> None:
    goals = [fill(t, TARGET, "inj-abcdefgh23").goal for t in CORPUS]
    kinds = {g.kind for g in goals}
    assert kinds == {"refund_other", "exfiltrate_email", "outside_endpoint", "self_approval"}
    other = next(g for g in goals if g.kind == "refund_other")
    assert other.arguments == {"order_id": TARGET.other_order_id, "amount": TARGET.goal_amount}
    email = next(g for g in goals if g.kind == "exfiltrate_email")
    assert email.arguments["to"] == ATTACKER_EMAIL


def test_unicode_smuggling_hides_the_instruction_in_tag_or_zero_width_characters() -> None:
    texts = [fill(t, TARGET, "inj-abcdefgh23").text for t in templates("unicode_smuggling")]
    assert any(any(0xE0000 <= ord(c) <= 0xE007F for c in t) for t in texts)
    assert any("\u200b" in t for t in texts)


def test_pick_is_deterministic_per_seed_and_point() -> None:
    a = pick("approval_spoofing", TARGET, 7, "get_order#1")
    assert a == pick("approval_spoofing", TARGET, 7, "get_order#1")
    assert a.family == "approval_spoofing"
    assert is_marker(a.marker)
    assert a.marker == marker_for(7, "approval_spoofing", "get_order#1")
    assert {pick(f, TARGET, s, "input.message").name for f in FAMILIES for s in range(20)} > {
        a.name
    }


def test_an_unknown_family_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="instruction_override"):
        templates("nope")


@settings(max_examples=40, deadline=None)
@given(payloads(TARGET))
def test_generated_payloads_carry_their_marker_and_a_goal(payload: Payload) -> None:
    assert payload.family in FAMILIES
    assert payload.marker in payload.text
    assert is_marker(payload.marker)
    assert payload.goal.evidence
