from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faults.inputs import (
    CONFUSABLES,
    CONTROL,
    INJECTIONS,
    INPUT_STRATEGIES,
    ZERO_WIDTH,
    boundary_ids,
    confusables_and_zero_width,
    control_characters,
    edge_case_inputs,
    empty_and_whitespace,
    malformed_structure,
    mixed_scripts_rtl,
    prompt_injection,
    very_long,
)

BASE: dict[str, Any] = {
    "ticket_id": "T-1042",
    "customer_id": "C-77",
    "message": "My parcel arrived broken, please refund order O-1.",
}
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _changed(payload: dict[str, Any]) -> list[str]:
    assert set(payload) == set(BASE)
    return [k for k in BASE if payload[k] != BASE[k]]


def test_registered_by_name() -> None:
    assert list(INPUT_STRATEGIES) == [
        "empty_and_whitespace",
        "very_long",
        "confusables_and_zero_width",
        "control_characters",
        "mixed_scripts_rtl",
        "prompt_injection",
        "boundary_ids",
        "malformed_structure",
    ]


@FAST
@given(empty_and_whitespace(BASE))
def test_empty_and_whitespace(payload: dict[str, Any]) -> None:
    (key,) = _changed(payload)
    assert payload[key].strip() == ""


@FAST
@given(very_long(BASE))
def test_very_long(payload: dict[str, Any]) -> None:
    (key,) = _changed(payload)
    assert len(payload[key]) > 4000


@FAST
@given(confusables_and_zero_width(BASE))
def test_confusables_and_zero_width(payload: dict[str, Any]) -> None:
    (key,) = _changed(payload)
    odd = set(ZERO_WIDTH) | set(CONFUSABLES.values())
    assert odd & set(payload[key])


@FAST
@given(control_characters(BASE))
def test_control_characters(payload: dict[str, Any]) -> None:
    (key,) = _changed(payload)
    assert set(CONTROL) & set(payload[key])


@FAST
@given(mixed_scripts_rtl(BASE))
def test_mixed_scripts_rtl(payload: dict[str, Any]) -> None:
    (key,) = _changed(payload)
    assert any(unicodedata.bidirectional(c) in ("R", "AL") for c in payload[key])


@FAST
@given(prompt_injection(BASE))
def test_prompt_injection_targets_free_text_only(payload: dict[str, Any]) -> None:
    assert _changed(payload) == ["message"]
    assert any(attack in payload["message"] for attack in INJECTIONS)


@FAST
@given(boundary_ids(BASE))
def test_boundary_ids_change_one_id(payload: dict[str, Any]) -> None:
    (key,) = _changed(payload)
    assert key.endswith("_id")


def test_boundary_ids_straddle_the_twelve_digit_limit() -> None:
    seen: set[str] = set()

    @settings(max_examples=200, deadline=None)
    @given(boundary_ids({"ticket_id": "T-5"}))
    def collect(payload: dict[str, Any]) -> None:
        seen.add(payload["ticket_id"])

    collect()
    assert {"T-" + "9" * 12, "T-" + "9" * 13, "T-0", "T-", ""} <= seen


@FAST
@given(malformed_structure(BASE))
def test_malformed_structure_is_never_the_valid_shape(payload: Any) -> None:
    well_formed = (
        isinstance(payload, dict)
        and set(payload) == set(BASE)
        and all(type(payload[k]) is type(BASE[k]) for k in BASE)
    )
    assert not well_formed


@FAST
@given(edge_case_inputs(BASE))
def test_every_edge_case_differs_from_the_base(payload: Any) -> None:
    assert payload != BASE


@given(st.sampled_from(sorted(INPUT_STRATEGIES)), st.data())
@FAST
def test_strategies_never_mutate_the_base(name: str, data: st.DataObject) -> None:
    base = dict(BASE)
    data.draw(INPUT_STRATEGIES[name](base))
    assert base == BASE


@pytest.mark.parametrize("name", [n for n in INPUT_STRATEGIES if n != "malformed_structure"])
def test_a_base_without_text_is_refused_with_a_hint(name: str) -> None:
    with pytest.raises(ValueError, match="at least one string field"):
        INPUT_STRATEGIES[name]({"ticket_id": 1})
