"""Each provider's real wire format: encoding provider-neutral answers, and reading them back.

One :class:`WireEncoder` per format renders a ``ModelAnswer`` as the provider's JSON body or as
a ``StreamPlan`` of its SSE events, a ``ProviderError`` as its error status and body (so the
real SDK raises its real exception class), and an in-stream error event; and reads a recorded
response body or SSE stream back into a :class:`DecodedAnswer`
(``harness.recording.cassette_import`` turns cassettes into scenarios with it).
"""

from __future__ import annotations

from faults.surfaces import WireFormat
from harness.world.wire.anthropic_messages import AnthropicMessagesEncoder
from harness.world.wire.base import (
    DecodedAnswer,
    UnreadableAnswer,
    WireEncoder,
    provider_error_status,
)
from harness.world.wire.openai_chat import OpenAIChatEncoder
from harness.world.wire.openai_responses import OpenAIResponsesEncoder
from harness.world.wire.sse import sse_event, sse_events

__all__ = [
    "AnthropicMessagesEncoder",
    "DecodedAnswer",
    "OpenAIChatEncoder",
    "OpenAIResponsesEncoder",
    "UnreadableAnswer",
    "WireEncoder",
    "encoder_for",
    "format_of_path",
    "provider_error_status",
    "sse_event",
    "sse_events",
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


def format_of_path(path: str) -> WireFormat | None:
    """The wire format whose endpoint ``path`` ends like (``/v1/messages``: Anthropic), if any."""
    for encoder in _ENCODERS.values():
        if path.endswith(encoder.path_suffix):
            return encoder.wire_format
    return None
