"""The scripted model: serves a scenario's turns in a provider's wire format, faults inserted."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import get_args

from faults.base import Fault, Surface
from faults.injection import BAIT_KEY, Payload
from faults.surfaces import (
    FaultFiring,
    HttpRequest,
    HttpResponse,
    ModelAnswer,
    ModelFault,
    ProviderError,
    StreamFault,
    StreamPlan,
    ToolCallSpec,
    WireFormat,
)
from harness.scenario.base import OnToolError
from harness.world.bridge import StreamedResponse
from harness.world.clock import FakeClock
from harness.world.wire import WireEncoder, encoder_for
from harness.world.wire.base import SSE_HEADERS, LastTurn, ToolResultSent

RETRY_AFTER_MS = "20"
"""Added to every provider error as ``retry-after-ms``: the openai and anthropic SDKs retry as
they do in production (their built-in retries count as the agent's own), but sleep 20 ms of real
time instead of 0.5-8 s, so the suite stays fast. An agent with its own retry loop reads
``retry-after`` (seconds) and waits on the fake clock; either wait satisfies the timing check."""

NOT_RETRYABLE = ("x-should-retry", "false")
"""Only on the answer to a request beyond the script (the SDKs then raise at once)."""

ToolErrorReaction = OnToolError  # one definition: the scenario file's on_tool_error values
"""How a reactive scripted model answers a request that hands it a failed tool call."""
REACTIONS: tuple[ToolErrorReaction, ...] = get_args(ToolErrorReaction)
REACTION_KEY = "on_tool_error"
"""The key of a reaction's firing in the record (``on_tool_error:<reaction>`` its label)."""
GIVE_UP_TEXT = (
    "I cannot continue: the {tool} call failed ({error}). I am stopping here; I have no "
    "result for this request."
)
"""The final answer of a model that gives up (``{tool}``, ``{error}`` filled in)."""


@dataclass(frozen=True)
class Served:
    """What the scripted model answered one model request with.

    Attributes:
        response: the response to deliver (a JSON/error response or a stream).
        call_index: the 1-based index of the request among the run's model requests.
        stream: whether the answer is streamed.
        fired: labels of the faults that fired on this request.
        exhausted: the script had no turn left for this request.
    """

    response: HttpResponse | StreamedResponse
    call_index: int
    stream: bool
    fired: tuple[str, ...] = ()
    exhausted: bool = False


@dataclass(frozen=True)
class _ModelCall:
    """The ``ModelCallContext`` / ``StreamCallContext`` a fault sees."""

    request: HttpRequest
    call_index: int
    scripted: ModelAnswer | None
    previous: ModelAnswer | None
    wire_format: WireFormat
    rng: random.Random
    encoder: WireEncoder

    def error_event(self) -> bytes:
        return self.encoder.error_event()


class ScriptedModel:
    """Serves scripted turns in order, one per model request, in a provider's wire format.

    A firing ``ModelFault`` is an insertion: its answer is served and the scripted turn stays
    next in line, so an agent that re-asks gets it. A firing ``StreamFault`` whose plan still
    delivers the scripted answer whole (same events and terminator, no cut: a slow stream)
    serves the turn. One that breaks the stream leaves the turn pending, and the next model
    request decides: the same request body again is a re-ask and gets the turn; a different
    body means the agent moved on with what it received, so the turn counts as served (an agent
    that assembles an answer whose end marker went missing is not thrown off its script).
    Requests beyond the script get HTTP 500 with a provider error body naming the problem.
    With ``on_tool_error`` set, a request that hands the model a failed tool call gets the
    model's reaction (:meth:`react`) unless a model fault fires on it first.

    Not thread-safe on its own: the world serialises calls.

    Args:
        wire_format: the provider format to speak.
        turns: the scripted answers, in order.
        stream: whether to stream when a request body does not say (``"stream"`` in the
            request body always wins, as it does with real providers).
        model_name: the model name echoed in answers.
        on_tool_error: how the model reacts to a request that hands it a failed tool call
            (see :meth:`react`); None answers the script whatever the request carries.
    """

    def __init__(
        self,
        wire_format: WireFormat,
        turns: Sequence[ModelAnswer],
        stream: bool = False,
        model_name: str = "shakeout-model",
        on_tool_error: ToolErrorReaction | None = None,
    ) -> None:
        if on_tool_error is not None and on_tool_error not in REACTIONS:
            raise ValueError(
                f"on_tool_error must be one of {', '.join(REACTIONS)} or None, got "
                f"{on_tool_error!r}"
            )
        self.wire_format: WireFormat = wire_format
        self.encoder = encoder_for(wire_format)
        self.turns = tuple(turns)
        self.stream = stream
        self.model_name = model_name
        self.on_tool_error: ToolErrorReaction | None = on_tool_error
        self._gave_up: ModelAnswer | None = None
        self._next = 0
        self._calls = 0
        self._previous: ModelAnswer | None = None
        self._exhausted: list[int] = []
        self._pending: bytes | None = None
        # a permanent provider error answers every retry of the same request body; a fault
        # with ``times`` > 1 answers the agent's next requests until its attempts are used
        self._sticky: dict[bytes, ModelFault] = {}
        self._again: tuple[ModelFault, int] | None = None

    def _repeat(self, body: bytes) -> ModelFault | None:
        """The fault that answers this request again, if one still has attempts."""
        sticky = self._sticky.get(body)
        if sticky is not None:
            return sticky
        if self._again is not None:
            fault, left = self._again
            self._again = (fault, left - 1) if left > 1 else None
            return fault
        return None

    @property
    def path_suffix(self) -> str:
        """How the provider endpoint's path ends (``/chat/completions``, ...)."""
        return self.encoder.path_suffix

    @property
    def turns_served(self) -> int:
        """How many scripted turns have been consumed."""
        return self._next

    @property
    def exhausted(self) -> tuple[int, ...]:
        """Call indices of model requests that found no turn left."""
        return tuple(self._exhausted)

    def handle(
        self,
        request: HttpRequest,
        faults: Sequence[Fault],
        rng: random.Random,
        clock: FakeClock,
        record: Callable[[FaultFiring], None],
    ) -> Served:
        """Answer one model request.

        Args:
            request: the intercepted request.
            faults: the run's faults; model and stream faults among them are considered.
            rng: the run's seeded RNG (for probability schedules and faults that draw).
            clock: the fake clock (timestamps; slow streams advance it per event).
            record: called with each firing, in order.
        """
        self._calls += 1
        index = self._calls
        if self._pending is not None:
            if request.body != self._pending:
                self._next += 1  # the agent moved on from the broken stream
            self._pending = None
        scripted = self.turns[self._next] if self._next < len(self.turns) else None
        stream = _wants_stream(request.body, self.stream)
        ctx = _ModelCall(
            request, index, scripted, self._previous, self.wire_format, rng, self.encoder
        )
        fired: list[str] = []
        answer: ModelAnswer | ProviderError | None = None
        repeat = self._repeat(request.body)
        if repeat is not None:
            answer = repeat.answer(ctx)
            fired.append(repeat.label())
            record(
                FaultFiring(
                    repeat.key, repeat.surface, "model", index, {"repeat": True}, repeat.label()
                )
            )
        for fault in faults if answer is None else ():
            if isinstance(fault, ModelFault) and fault.at.fires(index, rng):
                answer = fault.answer(ctx)
                fired.append(fault.label())
                record(FaultFiring(fault.key, fault.surface, "model", index, {}, fault.label()))
                if isinstance(answer, ProviderError) and not fault.transient:
                    self._sticky[request.body] = fault
                elif fault.times > 1:
                    self._again = (fault, fault.times - 1)
                break
        proceeded: FaultFiring | None = None
        if answer is None and self.on_tool_error is not None:
            reaction = self.react(request, index)
            if reaction is not None and reaction[0] is not None:
                answer, firing = reaction
                fired.append(firing.label)
                record(firing)
            elif reaction is not None:
                proceeded = reaction[1]
        consumed = False
        if answer is None:
            if scripted is None:
                self._exhausted.append(index)
                message = (
                    f"shakeout: scripted model has no turn left for request {index} "
                    f"(scenario scripts {len(self.turns)} turns)"
                )
                error = self.encoder.error(ProviderError("server"), message)
                # not a provider fault but the scenario's script running out: an SDK retry
                # cannot help, and would count one over-ask as three exhausted requests
                final = HttpResponse(error.status, (*error.headers, NOT_RETRYABLE), error.body)
                return Served(final, index, stream, (), exhausted=True)
            answer = scripted
            consumed = True
            if proceeded is not None:
                # the script's own answer: recorded as the reaction, but the exchange stays
                # "real" (the agent got exactly what the script says)
                record(proceeded)
        if isinstance(answer, ProviderError):
            self._previous = None
            return Served(_provider(self.encoder.error(answer)), index, stream, tuple(fired))
        self._previous = answer
        created = int(clock.now())
        if not stream:
            if consumed:
                self._next += 1
            response = self.encoder.response(
                answer, model=self.model_name, seq=index, created=created
            )
            return Served(response, index, False, tuple(fired))
        original = self.encoder.stream(answer, model=self.model_name, seq=index, created=created)
        plan = original
        if consumed:
            for fault in faults:
                if isinstance(fault, StreamFault) and fault.at.fires(index, rng):
                    plan = fault.mutate(plan, ctx)
                    fired.append(fault.label())
                    record(
                        FaultFiring(fault.key, fault.surface, "stream", index, {}, fault.label())
                    )
            if _whole(plan, original):
                self._next += 1
            elif _end_missing(plan, original):
                # Every content event arrived, only the end marker did not: an agent may use
                # the answer (the next request moves on) or retry it (the same request again).
                self._pending = request.body
            # else the answer itself was broken (cut, error event, mangled content): the turn
            # stays next in line for the agent's retry or corrective re-ask, as an insertion.
        return Served(
            StreamedResponse(200, SSE_HEADERS, plan, _advancer(clock, plan.delay_per_event)),
            index,
            True,
            tuple(fired),
        )

    def react(
        self, request: HttpRequest, index: int
    ) -> tuple[ModelAnswer | None, FaultFiring] | None:
        """The model's reaction to request ``index``, or None when it hands no failed call.

        A request hands the model a failed call when a tool result sent after the model's last
        answer says the call failed (:attr:`harness.world.wire.base.ToolResultSent.is_error`: the
        format's error flag, or a JSON body with ``error``, ``isError`` or a 4xx/5xx
        ``status``). ``retry`` answers with the failed call(s) again, same tool and arguments
        (fresh ids); ``proceed`` serves the scripted turn (``None`` as the answer) as if the
        call had worked; ``give_up`` answers a final text saying it cannot continue, and keeps
        answering it to every later request. ``retry`` needs the failed call's name and
        arguments: it finds them by id in the answer the request echoes, else in the answer
        this model served last; when it finds none, the model does not react (no firing).
        """
        if self._gave_up is not None:
            detail: dict[str, object] = {"reaction": "give_up", "repeat": True}
            return self._gave_up, self._firing(index, "?", detail)
        if not any(hint in request.body for hint in _ERROR_HINTS):
            return None  # no failed call can be in it: spare parsing the whole conversation
        try:
            body = json.loads(request.body)
        except ValueError:
            return None
        turn = self.encoder.last_turn(body)
        failed = turn.errors()
        if not failed:
            return None
        mode = self.on_tool_error
        calls = _failed_calls(failed, turn, self._previous)
        tool = calls[0].name if calls else "?"
        detail = {
            "reaction": mode,
            "failed": len(failed),
            "error": _excerpt(failed[0].text),
        }
        if mode == "proceed":
            return None, self._firing(index, tool, detail)
        if mode == "give_up":
            error = _excerpt(failed[0].text) or "an error"
            self._gave_up = ModelAnswer(text=GIVE_UP_TEXT.format(tool=tool, error=error))
            return self._gave_up, self._firing(index, tool, detail)
        if not calls:
            return None
        again = tuple(
            ToolCallSpec(c.name, c.arguments, id=f"call_retry_{index}_{n}")
            for n, c in enumerate(calls, 1)
        )
        return ModelAnswer(tool_calls=again), self._firing(index, tool, detail)

    def _firing(self, index: int, tool: str, detail: dict[str, object]) -> FaultFiring:
        mode = self.on_tool_error
        return FaultFiring(
            REACTION_KEY, Surface.MODEL, tool, index, detail, f"{REACTION_KEY}:{mode}"
        )


def _failed_calls(
    failed: Sequence[ToolResultSent], turn: LastTurn, previous: ModelAnswer | None
) -> tuple[ToolCallSpec, ...]:
    """The tool calls the failed results answer: by id in the echoed answer, else in the
    answer served last; with no ids to go by, the echoed (or last served) calls themselves."""
    known = turn.calls or (previous.tool_calls if previous is not None else ())
    by_id = {c.id: c for c in known if c.id is not None}
    if previous is not None:
        for c in previous.tool_calls:
            if c.id is not None:
                by_id.setdefault(c.id, c)
    found = [by_id[r.call_id] for r in failed if r.call_id is not None and r.call_id in by_id]
    if not found and all(r.call_id is None for r in failed):
        found = list(known[: len(failed)])
    return tuple(dict.fromkeys(found))


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


_ERROR_HINTS = (b"rror", b"tatus")
"""Every error form a tool result can take contains one of these (``error``, ``is_error``,
``isError``, ``status``, ``statusCode``, ...), escaped or not; a substring search is ~30x
cheaper than a regular expression over a long conversation."""

_STREAM_FLAG = re.compile(rb'"stream"\s*:\s*(true|false)')


def _wants_stream(body: bytes, default: bool) -> bool:
    # a top-level "stream": true/false in every provider's request body; searched rather than
    # parsed because parsing a long conversation on every model request is the world's
    # largest per-request cost (an escaped \"stream\" inside a message cannot match)
    found = _STREAM_FLAG.search(body)
    return default if found is None else found.group(1) == b"true"


def _whole(plan: StreamPlan, original: StreamPlan) -> bool:
    if plan.events != original.events or plan.terminator != original.terminator:
        return False
    if plan.cut_after is None:
        return True
    # a cut at or beyond the body's end cuts nothing (the interceptor delivers it whole)
    return plan.cut_after >= sum(map(len, plan.events)) + len(plan.terminator)


def _end_missing(plan: StreamPlan, original: StreamPlan) -> bool:
    """All of the answer's content events arrived; at most the final end event is missing."""
    if plan.cut_after is not None or len(plan.events) < len(original.events) - 1:
        return False
    return plan.events == original.events[: len(plan.events)]


def _advancer(clock: FakeClock, delay: float) -> Callable[[int], None] | None:
    if delay <= 0:
        return None

    def advance(_index: int) -> None:
        clock.advance(delay)

    return advance


def _provider(response: HttpResponse) -> HttpResponse:
    return HttpResponse(
        response.status, (*response.headers, ("retry-after-ms", RETRY_AFTER_MS)), response.body
    )


# ------------------------------------------------------------ a model that takes the bait


@dataclass(frozen=True)
class Bait:
    """An injected payload as the scripted model sees it: the marker that shows the payload
    reached a model request, and the answer an obedient model gives when it does.

    Attributes:
        marker: plain ASCII text carried by the payload (JSON-escaping leaves it alone).
        answer: the payload's goal as a model answer (one tool call).
        label: the firing's label (``take_bait:inject:approval_spoofing@get_order#1``).
    """

    marker: str
    answer: ModelAnswer
    label: str


def bait_of(payload: Payload, label: str) -> Bait:
    """The bait of an injection payload: its goal served as the model's tool call."""
    call = ToolCallSpec(
        payload.goal.tool, json.dumps(dict(payload.goal.arguments)), id="call_injected"
    )
    return Bait(payload.marker, ModelAnswer(tool_calls=(call,)), f"{BAIT_KEY}:{label}")


class BaitedModel(ScriptedModel):
    """A scripted model that takes the bait: the first model request whose body carries the
    injected payload's marker (in the agent's input or in a tool answer it passed on) is
    answered with the payload's goal tool call instead of the scripted turn, once. The goal is
    an insertion, like a model fault: the scripted turn stays next in line, so an agent that
    refuses the goal and asks again gets its script, and one that obeys acts on the goal.

    Args:
        bait: the payload's marker and goal answer.
        wire_format, turns, stream, model_name, on_tool_error: as for :class:`ScriptedModel`.
    """

    def __init__(
        self,
        bait: Bait,
        wire_format: WireFormat,
        turns: Sequence[ModelAnswer],
        stream: bool = False,
        model_name: str = "shakeout-model",
        on_tool_error: ToolErrorReaction | None = None,
    ) -> None:
        super().__init__(
            wire_format, turns, stream=stream, model_name=model_name, on_tool_error=on_tool_error
        )
        self.bait = bait
        self._marker = bait.marker.encode()
        self.taken: int | None = None
        """The call index of the model request that took the bait (None: not yet)."""

    def handle(
        self,
        request: HttpRequest,
        faults: Sequence[Fault],
        rng: random.Random,
        clock: FakeClock,
        record: Callable[[FaultFiring], None],
    ) -> Served:
        """Answer one model request: the goal on the first one carrying the marker, else the
        script (see :meth:`ScriptedModel.handle`)."""
        if self.taken is not None or self._marker not in request.body:
            return super().handle(request, faults, rng, clock, record)
        self._calls += 1
        index = self._calls
        self.taken = index
        if self._pending is not None:
            if request.body != self._pending:
                self._next += 1  # the agent moved on from a broken stream
            self._pending = None
        answer = self.bait.answer
        self._previous = answer
        record(
            FaultFiring(
                BAIT_KEY,
                Surface.INJECTION,
                "model",
                index,
                {"marker": self.bait.marker},
                self.bait.label,
            )
        )
        fired = (self.bait.label,)
        stream = _wants_stream(request.body, self.stream)
        created = int(clock.now())
        if not stream:
            response = self.encoder.response(
                answer, model=self.model_name, seq=index, created=created
            )
            return Served(response, index, False, fired)
        plan = self.encoder.stream(answer, model=self.model_name, seq=index, created=created)
        return Served(StreamedResponse(200, SSE_HEADERS, plan, None), index, True, fired)
