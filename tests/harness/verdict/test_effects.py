"""The approval-summary check's memoised helpers give what the uncached forms give."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from harness.verdict import effects

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


def _names_value_uncompiled(summary: str, value: float) -> bool:
    return any(
        re.search(rf"(?<![\d.]){re.escape(form)}(?!\d|\.\d)", summary)
        for form in effects._number_forms(value)
    )


@given(
    st.text(alphabet="0123456789.,- EURabc", max_size=40),
    st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False),
)
def test_names_value_matches_the_uncompiled_pattern(summary: str, value: float) -> None:
    assert effects.names_value(summary, value) == _names_value_uncompiled(summary, value)


def test_names_value_tells_a_number_apart_from_a_longer_one() -> None:
    assert effects.names_value("refund 49.99 EUR", 49.99)
    assert not effects.names_value("refund 149.99 EUR", 49.99)


@given(JSON)
def test_body_texts_memo_equals_a_fresh_parse(payload: Any) -> None:
    body = json.dumps(payload).encode()
    fresh = effects._texts_of(body)
    assert effects._body_texts(body) == fresh
    assert effects._body_texts(body) == fresh  # the memoised answer, asked again
    expected = [" ".join(v.split()) for v in effects._leaves(payload) if isinstance(v, str)]
    assert list(fresh) == expected


def test_body_texts_of_a_non_json_body_is_its_collapsed_text() -> None:
    assert effects._texts_of(b"not  json\n at all") == ("not json at all",)
