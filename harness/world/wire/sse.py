"""Server-sent event framing shared by the streaming encoders, and reading it back."""

from __future__ import annotations

import json
from collections.abc import Iterator
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


def sse_events(body: bytes) -> Iterator[tuple[str | None, Any]]:
    """The events of a recorded SSE stream as (event name, parsed JSON data).

    Events without data, the ``[DONE]`` terminator and data that is not JSON are skipped.
    """
    text = body.decode("utf-8", errors="replace").replace("\r\n", "\n")
    for block in text.split("\n\n"):
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if not data:
            continue
        payload = "\n".join(data)
        if payload.strip() == "[DONE]":
            continue
        try:
            yield name, json.loads(payload)
        except ValueError:
            continue
