"""Boundary schemas (reference_agent/schemas.py): the intake payload and tool bodies."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from reference_agent.schemas import TicketPayload

BASE = {"ticket_id": "T-1", "customer_id": "C-1", "message": "hello"}


def test_message_is_nfc_normalised_and_stripped() -> None:
    ticket = TicketPayload.model_validate({**BASE, "message": "  Cafe\u0301\n\tok  "})
    assert ticket.message == "Caf\u00e9\n\tok"


@pytest.mark.parametrize(
    "change",
    [
        {"ticket_id": "T-1234567890123"},
        {"ticket_id": "T-١"},  # a non-ASCII digit
        {"ticket_id": "T-1\n"},
        {"customer_id": 7},
        {"message": "\u200bhidden"},
        {"message": "left\u2066right"},
        {"message": "nul\x00"},
        {"message": ""},
        {"message": None},
        {"other": "x"},
    ],
)
def test_bad_payloads_are_rejected(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TicketPayload.model_validate({**BASE, **change})


@given(st.text(min_size=1, max_size=300))
def test_accepted_messages_satisfy_the_contract(message: str) -> None:
    try:
        ticket = TicketPayload.model_validate({**BASE, "message": message})
    except ValidationError:
        return
    text = ticket.message
    assert 1 <= len(text) <= 4000
    assert text == text.strip()
    assert unicodedata.is_normalized("NFC", text)
    assert all(unicodedata.category(c) != "Cc" or c in "\n\t" for c in text)
