"""Server-sent event framing shared by the streaming encoders."""

from __future__ import annotations

import json
from typing import Any


def sse_event(data: Any, event: str | None = None) -> bytes:
    """One complete SSE event: an optional ``event:`` line, a ``data:`` line, a blank line.

    Args:
        data: JSON-serialisable payload, or ``str`` sent verbatim (for ``[DONE]``).
        event: the event name, when the format names its events.
    """
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def pieces(text: str, count: int) -> list[str]:
    """Split ``text`` into at most ``count`` non-empty consecutive pieces (none if empty).

    Streaming encoders use it to deliver text and tool arguments across several deltas, the
    way providers do, so an agent that reads only the first delta is caught.
    """
    if not text:
        return []
    count = max(1, min(count, len(text)))
    size = -(-len(text) // count)
    return [text[i : i + size] for i in range(0, len(text), size)]


def rough_tokens(text: str | None) -> int:
    """A deterministic stand-in for a token count (about four characters per token)."""
    return 0 if not text else max(1, len(text) // 4)
