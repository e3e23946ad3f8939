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


def _copied_by_set(own: str, sources: list[str], n: int) -> str | None:
    """The plain statement of a copied run: the first run of ``n`` characters, in source order,
    that is one of ``own``'s runs."""
    grams = {own[i : i + n] for i in range(len(own) - n + 1)}
    for src in sources:
        for i in range(len(src) - n + 1):
            if src[i : i + n] in grams:
                return src[i : i + n]
    return None


@given(
    own=st.text(alphabet="abc ", max_size=40),
    sources=st.lists(st.text(alphabet="abc ", max_size=60), max_size=4),
    n=st.integers(min_value=1, max_value=6),
)
def test_a_copied_run_is_the_first_in_source_order_whichever_side_is_searched(
    own: str, sources: list[str], n: int
) -> None:
    # _copied searches a short source in the summary and a long one in the summary's run set:
    # both must find what the set of the summary's runs finds, and the same first run.
    assert effects._copied(own, sources, n, ()) == _copied_by_set(own, sources, n)
