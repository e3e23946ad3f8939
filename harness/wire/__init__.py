"""Encoders from provider-neutral model answers to each provider's real wire format.

One :class:`WireEncoder` per format renders a ``ModelAnswer`` as the provider's JSON body or as
a ``StreamPlan`` of its SSE events, a ``ProviderError`` as its error status and body (so the
real SDK raises its real exception class), and an in-stream error event.
"""

from __future__ import annotations

from faults.surfaces import WireFormat
from harness.wire.anthropic_messages import AnthropicMessagesEncoder
from harness.wire.base import WireEncoder, provider_error_status
from harness.wire.openai_chat import OpenAIChatEncoder
from harness.wire.openai_responses import OpenAIResponsesEncoder
from harness.wire.sse import sse_event

__all__ = [
    "AnthropicMessagesEncoder",
    "OpenAIChatEncoder",
    "OpenAIResponsesEncoder",
    "WireEncoder",
    "encoder_for",
    "provider_error_status",
    "sse_event",
]

_ENCODERS: dict[str, WireEncoder] = {
    "openai_chat": OpenAIChatEncoder(),
    "openai_responses": OpenAIResponsesEncoder(),
    "anthropic_messages": AnthropicMessagesEncoder(),
}


def encoder_for(wire_format: WireFormat) -> WireEncoder:
    """The encoder of ``wire_format`` (encoders are stateless and shared).

    Raises:
        ValueError: for a format shakeout does not speak.
    """
    try:
        return _ENCODERS[wire_format]
    except KeyError:
        known = ", ".join(sorted(_ENCODERS))
        raise ValueError(f"unknown wire format {wire_format!r}; use one of: {known}") from None
