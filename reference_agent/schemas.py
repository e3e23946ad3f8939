"""Pydantic schemas at every boundary: the intake payload, tool bodies and model tool arguments.

Infrastructure shared by the workflow and the tool client: imports nothing from the package.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

# Characters that render as nothing or reorder text: a classic way to hide instructions.
_INVISIBLE = frozenset(
    "\u200b\u200c\u200d\u2060\ufeff\u180e"  # zero-width
    "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # bidi controls
)
MAX_MESSAGE_CHARS = 4000


class TicketPayload(BaseModel):
    """The intake payload: a support ticket. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ticket_id: Annotated[StrictStr, Field(pattern=r"^T-[0-9]{1,12}$")]
    customer_id: Annotated[StrictStr, Field(pattern=r"^C-[0-9]{1,12}$")]
    message: StrictStr

    @field_validator("message")
    @classmethod
    def _clean_message(cls, value: str) -> str:
        text = unicodedata.normalize("NFC", value).strip()
        if not text:
            raise ValueError("message is empty after stripping whitespace; send 1..4000 chars")
        if len(text) > MAX_MESSAGE_CHARS:
            raise ValueError(
                f"message has {len(text)} characters, over the limit of {MAX_MESSAGE_CHARS}"
            )
        for ch in text:
            if ch in _INVISIBLE:
                raise ValueError(
                    f"message contains the invisible/bidi-control character U+{ord(ch):04X}; "
                    "remove zero-width and direction-override characters"
                )
            if unicodedata.category(ch) == "Cc" and ch not in "\n\t":
                raise ValueError(
                    f"message contains the control character U+{ord(ch):04X}; "
                    "only newline and tab are allowed"
                )
        return text


class ClassifyOutput(BaseModel):
    """The classify stage's output."""

    model_config = ConfigDict(frozen=True)

    intent: Literal["refund", "other", "ambiguous"]
    order_id: str | None = None


# --------------------------------------------------------------------------- tool bodies


class _Body(BaseModel):
    # Strict so a number sent as a string is drift, not silently coerced; extra fields ignored.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class OrderBody(_Body):
    """``GET /orders/{order_id}``."""

    order_id: str
    customer_id: str
    total: float
    currency: str
    placed_at: dt.date
    refunded_amount: float


class CustomerBody(_Body):
    """``GET /customers/{customer_id}``."""

    customer_id: str
    email: str
    name: str


class PolicyBody(_Body):
    """``GET /policy/refunds``."""

    window_days: int
    max_refund: float


class RefundBody(_Body):
    """``POST /refunds``."""

    refund_id: str
    status: str


class EmailBody(_Body):
    """``POST /emails``."""

    message_id: str


class TicketBody(_Body):
    """``PATCH /tickets/{ticket_id}``."""

    ticket_id: str
    status: str


# --------------------------------------------------------------------------- model tool arguments


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ClassifyArgs(_Args):
    """Arguments of ``classify_request``."""

    intent: Literal["refund", "other", "ambiguous"]
    order_id: str | None = None


class LookupOrderArgs(_Args):
    """Arguments of ``lookup_order``."""

    order_id: Annotated[str, Field(min_length=1)]


class ProposeRefundArgs(_Args):
    """Arguments of ``propose_refund``."""

    amount: Annotated[float, Field(gt=0)]
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class EscalateArgs(_Args):
    """Arguments of ``escalate``."""

    reason: Annotated[str, Field(min_length=1, max_length=500)]


def _fn(name: str, description: str, properties: dict[str, Any], required: list[str]) -> Any:
    return {
        "name": name,
        "description": description,
        "parameters": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        },
    }


CLASSIFY_TOOL = _fn(
    "classify_request",
    "Classify the customer's request; give the order id when the request is a refund.",
    {
        "intent": {"type": "string", "enum": ["refund", "other", "ambiguous"]},
        "order_id": {"type": ["string", "null"]},
    },
    ["intent"],
)
LOOKUP_ORDER_TOOL = _fn(
    "lookup_order",
    "Read an order again (read-only).",
    {"order_id": {"type": "string"}},
    ["order_id"],
)
PROPOSE_REFUND_TOOL = _fn(
    "propose_refund",
    "Propose a refund amount for the order; a human approves it before it is issued.",
    {
        "amount": {"type": "number", "exclusiveMinimum": 0},
        "reason": {"type": "string", "minLength": 1, "maxLength": 500},
    },
    ["amount", "reason"],
)
ESCALATE_TOOL = _fn(
    "escalate",
    "Hand the ticket to a human agent.",
    {"reason": {"type": "string", "minLength": 1, "maxLength": 500}},
    ["reason"],
)
ARG_MODELS: dict[str, type[_Args]] = {
    "classify_request": ClassifyArgs,
    "lookup_order": LookupOrderArgs,
    "propose_refund": ProposeRefundArgs,
    "escalate": EscalateArgs,
}
