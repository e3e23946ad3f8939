"""Stream faults: a streamed model answer delivered broken (cut, unterminated, slow, partial)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from faults.base import Category, FaultNotApplicableError
from faults.surfaces import StreamCallContext, StreamFault, StreamPlan, WireFormat

# The formats whose last event is their end marker (OpenAI chat ends with the separate
# ``data: [DONE]`` terminator instead).
END_EVENTS: dict[WireFormat, tuple[bytes, ...]] = {
    "anthropic_messages": (b"event: message_stop",),
    "openai_responses": (b"event: response.completed", b"event: response.incomplete"),
}


@dataclass(frozen=True)
class StreamCutMidEvent(StreamFault):
    """The connection drops in the middle of an event about half way through the stream."""

    key = "stream_cut_mid_event"
    category = Category.MODEL
    transient = True

    def mutate(self, plan: StreamPlan, ctx: StreamCallContext) -> StreamPlan:
        """Cut half way into the middle event."""
        middle = len(plan.events) // 2
        start = sum(len(e) for e in plan.events[:middle])
        inside = len(plan.events[middle]) // 2 if plan.events else 0
        return dataclasses.replace(plan, cut_after=start + inside)


@dataclass(frozen=True)
class StreamNoTerminator(StreamFault):
    """The stream ends without its end marker (``[DONE]``, ``message_stop``, ``completed``).

    Every content event still arrives, so a robust agent assembles the full answer, or treats
    the missing marker as a transient stream failure and asks again: either way the run ends
    like the fault-free one (transient); when it does not, the failure is a model error.
    """

    key = "stream_no_terminator"
    category = Category.MODEL
    transient = True
    needs_real_answer = False  # every content event arrived: using the answer is a recovery

    def mutate(self, plan: StreamPlan, ctx: StreamCallContext) -> StreamPlan:
        """Drop the terminator, and the last event when it is the format's end marker."""
        events = plan.events
        markers = END_EVENTS.get(ctx.wire_format, ())
        if events and events[-1].startswith(markers):
            events = events[:-1]
        return dataclasses.replace(plan, events=events, terminator=b"")


@dataclass(frozen=True)
class StreamErrorEvent(StreamFault):
    """The provider sends an in-stream error event half way through, then nothing more."""

    key = "stream_error_event"
    category = Category.MODEL
    transient = True

    def mutate(self, plan: StreamPlan, ctx: StreamCallContext) -> StreamPlan:
        """Keep the first half of the events, then the error event, and no terminator."""
        middle = len(plan.events) // 2
        return dataclasses.replace(
            plan, events=(*plan.events[:middle], ctx.error_event()), terminator=b""
        )


@dataclass(frozen=True)
class StreamTrickle(StreamFault):
    """The stream arrives slowly (the fake clock advances per event).

    Attributes:
        delay_per_event: seconds between events.
    """

    key = "stream_trickle"
    category = Category.MODEL
    transient = True
    needs_real_answer = False
    delay_per_event: float = 0.5

    def mutate(self, plan: StreamPlan, ctx: StreamCallContext) -> StreamPlan:
        """The same events, each delayed."""
        return dataclasses.replace(plan, delay_per_event=self.delay_per_event)

    def label_detail(self) -> str:
        """The delay per event, e.g. ``0.5s``."""
        return f"{self.delay_per_event:g}s"


# --------------------------------------------------------------------------- partial tool JSON


@dataclass
class _Event:
    """One SSE event split into its lines, with the parsed JSON of its ``data:`` line."""

    lines: list[bytes]
    data_line: int | None
    data: Any


def _parse_event(raw: bytes) -> _Event:
    lines = raw.split(b"\n")
    for i, line in enumerate(lines):
        if line.startswith(b"data:"):
            try:
                return _Event(lines, i, json.loads(line[5:].strip()))
            except ValueError:
                break  # "[DONE]" and other non-JSON payloads are left alone
    return _Event(lines, None, None)


def _encode_event(event: _Event) -> bytes:
    assert event.data_line is not None
    lines = list(event.lines)
    ending = b"\r" if lines[event.data_line].endswith(b"\r") else b""
    encoded = json.dumps(event.data, separators=(",", ":")).encode()
    lines[event.data_line] = b"data: " + encoded + ending
    return b"\n".join(lines)


# An argument fragment: the dict holding it, the key of the fragment in that dict, and which
# tool call it belongs to.
_Fragment = tuple[dict[str, Any], str, tuple[Any, ...]]


def _fragments(data: Any) -> Iterator[_Fragment]:
    if not isinstance(data, dict):
        return
    # OpenAI chat: choices[].delta.tool_calls[].function.arguments
    for choice in data.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        calls = delta.get("tool_calls") if isinstance(delta, dict) else None
        for call in calls or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                yield function, "arguments", ("chat", choice.get("index"), call.get("index"))
    # Anthropic messages: content_block_delta with an input_json_delta
    delta = data.get("delta")
    if (
        data.get("type") == "content_block_delta"
        and isinstance(delta, dict)
        and delta.get("type") == "input_json_delta"
        and isinstance(delta.get("partial_json"), str)
    ):
        yield delta, "partial_json", ("anthropic", data.get("index"))
    # OpenAI responses: response.function_call_arguments.delta
    if data.get("type") == "response.function_call_arguments.delta" and isinstance(
        data.get("delta"), str
    ):
        yield data, "delta", ("responses", data.get("item_id"), data.get("output_index"))


def _replace_arguments(data: Any, full: str, partial: str) -> bool:
    # Formats that repeat the complete arguments in closing events (OpenAI responses'
    # ``.done``, ``output_item.done`` and ``completed``) must repeat the partial ones instead,
    # or the agent would read the complete JSON from there.
    changed = False
    if isinstance(data, dict):
        for k, v in data.items():
            if k == "arguments" and v == full:
                data[k] = partial
                changed = True
            else:
                changed = _replace_arguments(v, full, partial) or changed
    elif isinstance(data, list):
        for item in data:
            changed = _replace_arguments(item, full, partial) or changed
    return changed


@dataclass(frozen=True)
class StreamPartialToolJson(StreamFault):
    """The first tool call's argument deltas stop half way; the stream then ends normally.

    Formats that repeat the complete arguments in closing events repeat the partial ones.
    """

    key = "stream_partial_tool_json"
    category = Category.MODEL
    transient = True

    def mutate(self, plan: StreamPlan, ctx: StreamCallContext) -> StreamPlan:
        """Keep the first half of the first tool call's arguments, blank the later deltas."""
        events = [_parse_event(raw) for raw in plan.events]
        target: tuple[Any, ...] | None = None
        owned: list[tuple[int, dict[str, Any], str]] = []
        for i, event in enumerate(events):
            for holder, field_name, call in _fragments(event.data):
                target = call if target is None else target
                if call == target:
                    owned.append((i, holder, field_name))
        full = "".join(holder[name] for _, holder, name in owned)
        if len(full) < 2:
            raise FaultNotApplicableError(
                f"{self.key} needs a streamed tool call with arguments to cut, but the "
                f"{ctx.wire_format} stream of model call {ctx.call_index} has "
                f"{'none' if not owned else f'only {full!r}'}; aim it at a tool-call answer"
            )
        keep = len(full) // 2
        touched: set[int] = set()
        for i, holder, name in owned:
            fragment: str = holder[name]
            holder[name] = fragment[:keep]
            keep -= len(holder[name])
            if holder[name] != fragment:
                touched.add(i)  # re-encoded; every other event keeps its exact bytes
        partial = full[: len(full) // 2]
        for i, event in enumerate(events):
            if event.data_line is not None and _replace_arguments(event.data, full, partial):
                touched.add(i)
        out = tuple(
            _encode_event(event) if i in touched else raw
            for i, (event, raw) in enumerate(zip(events, plan.events, strict=True))
        )
        return dataclasses.replace(plan, events=out)
