"""Put a plain tool loop on the ``openai`` or ``anthropic`` SDK under test.

The user hands over what their loop already has, the SDK client, the model, the system prompt
and the tools (each a pydantic model of its arguments and a function), and
:class:`ToolLoopAdapter` runs the loop the harness can test: the conversation is the
checkpoint (persisted in the run's state directory after every model answer and every tool
result), a crash boundary is announced around each, a tool marked ``gated`` parks the run until
a reviewer approves exactly its arguments, an effect's ``Idempotency-Key`` is derived from the
run and the model's tool call id (``call.key``), and every failure ends the run with its
category (:func:`shakeout_adapters.categories.categorize` maps the SDKs' exceptions)::

    from shakeout_adapters.tool_loop import Tool, ToolLoopAdapter, openai_chat

    def build_adapter(endpoints):
        client = openai.OpenAI(base_url=endpoints.model_base_url, api_key=endpoints.api_key)
        return ToolLoopAdapter(
            openai_chat(client, endpoints.model),          # or anthropic_messages(...)
            system="You are a support desk ...",
            tools=[Tool("get_order", GetOrder, get_order),
                   Tool("issue_refund", Refund, issue_refund, gated=True),
                   Tool("resolve", Resolution, final=True)],
            prompt=lambda payload: payload["message"],
            run_key="ticket_id",
            tools_http=httpx.Client(base_url=endpoints.tools_base_url),
        )

    def issue_refund(call):   # call.http: ToolHttp, call.key: the Idempotency-Key
        body = call.arguments.model_dump(mode="json")
        return call.http.effect("POST", "/refunds", body, Refund, key=call.key).model_dump()

An answer the loop cannot use (not JSON, an unknown tool, arguments that break the tool's
schema, a refusal, an empty or text-only answer, one cut at the token limit) is not appended:
the same request is sent again, at most ``max_reasks`` times per run. A call repeated with the
same arguments, or more than ``max_model_calls`` model requests, ends the run ``failed`` with
category ``logic``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anthropic
import httpx
import openai
import pydantic

from shakeout_adapters._runs import (
    ClockLike,
    GatedRunAdapter,
    Outcome,
    canonical,
    idempotency_key,
)
from shakeout_adapters.categories import (
    AgentError,
    LogicError,
    ModelError,
    categorize,
)
from shakeout_adapters.tool_http import ToolHttp

__all__ = [
    "Call",
    "Tool",
    "ToolLoopAdapter",
    "Wire",
    "anthropic_messages",
    "openai_chat",
]


@dataclass(frozen=True)
class Call:
    """One validated tool call, as a tool function receives it.

    Attributes:
        id: the model's id of the call.
        name: the tool's name.
        arguments: the validated arguments.
        key: the ``Idempotency-Key`` for the call's effect (stable across retries and restarts).
        run_id: the run's id.
        clock: the world's clock: sleep and read time on it only.
        config: the scenario's ``agent_config``.
        http: the tool services' client (bounded retries on the clock), when the adapter was
            given ``tools_http``.
    """

    id: str
    name: str
    arguments: pydantic.BaseModel
    key: str
    run_id: str
    clock: ClockLike
    config: Mapping[str, Any]
    http: ToolHttp | None = None


@dataclass(frozen=True)
class Tool:
    """A tool the model may call.

    Args:
        name: the name the model calls it by.
        arguments: the pydantic model of its arguments (its JSON Schema is sent to the model;
            ``extra="forbid"`` makes unknown arguments a schema violation).
        run: the function that does the work; returns a JSON-able result, raises
            ``AgentError`` (e.g. ``ToolError`` from ``ToolHttp``) on failure. None for a
            ``final`` tool.
        gated: the call needs a reviewer's approval of exactly its arguments first.
        final: calling it ends the run; its arguments are the run's answer.
        description: what it does (sent to the model).
    """

    name: str
    arguments: type[pydantic.BaseModel]
    run: Callable[[Call], Any] | None = None
    gated: bool = False
    final: bool = False
    description: str = ""


@dataclass(frozen=True)
class _Asked:
    """A tool call as the model wrote it (arguments not validated yet)."""

    id: str
    name: str
    raw: Any  # JSON text (openai) or an object (anthropic)


@dataclass(frozen=True)
class _Answer:
    message: dict[str, Any]
    calls: tuple[_Asked, ...]
    unusable: str | None


class Wire(Protocol):
    """One provider's request/answer shapes (built by :func:`openai_chat` or
    :func:`anthropic_messages`)."""

    def ask(
        self, system: str, messages: Sequence[Mapping[str, Any]], tools: Sequence[Tool]
    ) -> _Answer: ...

    def add_result(self, messages: list[dict[str, Any]], call_id: str, content: str) -> None: ...

    def first(self, prompt: str) -> dict[str, Any]: ...


class _OpenAIChat:
    def __init__(self, client: openai.OpenAI, model: str, max_tokens: int) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens

    def first(self, prompt: str) -> dict[str, Any]:
        return {"role": "user", "content": prompt}

    def ask(
        self, system: str, messages: Sequence[Mapping[str, Any]], tools: Sequence[Tool]
    ) -> _Answer:
        specs: Any = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.arguments.model_json_schema(),
                },
            }
            for t in tools
        ]
        sent: Any = [{"role": "system", "content": system}, *messages]
        completion = self.client.chat.completions.create(
            model=self.model, messages=sent, tools=specs, max_tokens=self.max_tokens
        )
        if not completion.choices:
            return _Answer({}, (), "empty (no choices)")
        choice = completion.choices[0]
        message = choice.message
        if choice.finish_reason in ("length", "content_filter"):
            return _Answer({}, (), f"cut or filtered (finish_reason {choice.finish_reason})")
        if message.refusal:
            return _Answer({}, (), "a refusal")
        calls = tuple(
            _Asked(c.id, c.function.name, c.function.arguments)
            for c in message.tool_calls or ()
            if c.type == "function"
        )
        if any(not c.id for c in calls):
            return _Answer({}, (), "a tool call without an id")
        kept: dict[str, Any] = {"role": "assistant", "content": message.content}
        if calls:
            kept["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.raw}}
                for c in calls
            ]
        return _Answer(kept, calls, None)

    def add_result(self, messages: list[dict[str, Any]], call_id: str, content: str) -> None:
        messages.append({"role": "tool", "tool_call_id": call_id, "content": content})


class _AnthropicMessages:
    def __init__(self, client: anthropic.Anthropic, model: str, max_tokens: int) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens

    def first(self, prompt: str) -> dict[str, Any]:
        return {"role": "user", "content": prompt}

    def ask(
        self, system: str, messages: Sequence[Mapping[str, Any]], tools: Sequence[Tool]
    ) -> _Answer:
        specs: Any = [
            {
                "name": t.name,
                "description": t.description,
                "input_schema": t.arguments.model_json_schema(),
            }
            for t in tools
        ]
        sent: Any = list(messages)
        reply = self.client.messages.create(
            model=self.model, system=system, messages=sent, tools=specs, max_tokens=self.max_tokens
        )
        if reply.stop_reason in ("max_tokens", "refusal"):
            return _Answer({}, (), f"cut or refused (stop_reason {reply.stop_reason})")
        blocks: list[dict[str, Any]] = []
        calls: list[_Asked] = []
        for block in reply.content:
            # read field by field: a malformed block (input not an object, no id) is the model's
            # error to re-ask, not a serializer warning
            kind = getattr(block, "type", None)
            if kind == "text":
                blocks.append({"type": "text", "text": str(getattr(block, "text", ""))})
            elif kind == "tool_use":
                asked = _Asked(
                    str(getattr(block, "id", None) or ""),
                    str(getattr(block, "name", "")),
                    getattr(block, "input", None),
                )
                if not asked.id:
                    return _Answer({}, (), "a tool call without an id")
                calls.append(asked)
                blocks.append(
                    {"type": "tool_use", "id": asked.id, "name": asked.name, "input": asked.raw}
                )
        return _Answer({"role": "assistant", "content": blocks}, tuple(calls), None)

    def add_result(self, messages: list[dict[str, Any]], call_id: str, content: str) -> None:
        block = {"type": "tool_result", "tool_use_id": call_id, "content": content}
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "user" and isinstance(last["content"], list):
            last["content"].append(block)  # all results of one turn go in one user message
        else:
            messages.append({"role": "user", "content": [block]})


def openai_chat(client: openai.OpenAI, model: str, *, max_tokens: int = 1024) -> Wire:
    """The loop over the OpenAI chat-completions API (``client.chat.completions.create``)."""
    return _OpenAIChat(client, model, max_tokens)


def anthropic_messages(client: anthropic.Anthropic, model: str, *, max_tokens: int = 1024) -> Wire:
    """The loop over the Anthropic messages API (``client.messages.create``)."""
    return _AnthropicMessages(client, model, max_tokens)


def _summary(tool: str, arguments: Mapping[str, Any]) -> str:
    values = ", ".join(f"{k}={v}" for k, v in sorted(arguments.items()))
    return f"Approve {tool}({values})?"


class ToolLoopAdapter(GatedRunAdapter):
    """Runs a tool loop through shakeout's adapter contract.

    Args:
        wire: the provider, from :func:`openai_chat` or :func:`anthropic_messages`.
        system: the system prompt.
        tools: the tools the model may call (exactly one with ``final=True`` ends the run).
        prompt: builds the first user message from the run's input.
        run_key: the input field that identifies a run, so a redelivered input continues it.
        intake: validates the input; returns why it is rejected (ends ``failed``/``input``).
        summary: the reviewer's summary of a gated call (must name every argument's value).
        state_of: maps the final tool's arguments to a terminal state (default ``completed``).
        max_model_calls: the run's model-request budget (past it: ``failed``/``logic``).
        max_reasks: how often per run an unusable answer is asked again (then ``model``).
        tools_http: an ``httpx.Client`` on the tool services' base URL; each call then gets a
            :class:`~shakeout_adapters.tool_http.ToolHttp` on the world's clock as ``call.http``.
    """

    def __init__(
        self,
        wire: Wire,
        *,
        system: str,
        tools: Sequence[Tool],
        prompt: Callable[[Mapping[str, Any]], str],
        run_key: str | None = None,
        intake: Callable[[Mapping[str, Any]], str | None] | None = None,
        summary: Callable[[str, Mapping[str, Any]], str] = _summary,
        state_of: Callable[[pydantic.BaseModel], str] | None = None,
        max_model_calls: int = 12,
        max_reasks: int = 2,
        tools_http: httpx.Client | None = None,
    ) -> None:
        if sum(t.final for t in tools) != 1:
            raise ValueError("give exactly one Tool with final=True: calling it ends the run")
        for t in tools:
            if not t.final and t.run is None:
                raise ValueError(f"tool {t.name!r} has no run function")
        self.wire = wire
        self.system = system
        self.tools = {t.name: t for t in tools}
        self.prompt = prompt
        self.run_key = run_key
        self.intake = intake
        self.summary = summary
        self.state_of = state_of
        self.max_model_calls = max_model_calls
        self.max_reasks = max_reasks
        self.tools_http = tools_http
        self._world = None
        self._store = None

    # ------------------------------------------------------------------ the adapter contract

    def trace(self, run_id: str) -> None:
        """The conversation is the trace; none is exposed to the harness."""
        return

    # ------------------------------------------------------------------ driving

    def _seed(self, run: dict[str, Any], payload: Mapping[str, Any]) -> None:
        run["messages"] = [self.wire.first(self.prompt(payload))]

    def _drive(self, run: dict[str, Any]) -> Outcome:
        try:
            return self._loop(run)
        except AgentError as exc:
            return self._finish(run, "failed", exc)
        except Exception as exc:
            return self._finish(run, "failed", categorize(exc))

    def _loop(self, run: dict[str, Any]) -> Outcome:
        while True:
            if run.get("final_state"):
                return self._finish(run, str(run["final_state"]))
            messages: list[dict[str, Any]] = run["messages"]
            last = messages[-1]
            if last["role"] == "assistant":
                parked = self._run_tools(run, last)
                if parked is not None:
                    return parked
                continue
            step = f"model_{sum(m['role'] == 'assistant' for m in messages) + 1}"
            self._boundary("before_step", step)
            answer = self._ask(run)
            messages.append(answer.message)
            self._runs.save(run)
            self._boundary("after_checkpoint", step)

    def _ask(self, run: dict[str, Any]) -> _Answer:
        """The model's next usable answer (unusable ones are asked again, bounded)."""
        while True:
            if run["model_calls"] >= self.max_model_calls:
                raise LogicError(
                    f"the model was asked {run['model_calls']} times without finishing the run "
                    f"(budget {self.max_model_calls})"
                )
            run["model_calls"] += 1
            try:
                answer = self.wire.ask(self.system, run["messages"], list(self.tools.values()))
            except (openai.OpenAIError, anthropic.AnthropicError) as exc:
                raise categorize(exc) from exc
            problem = answer.unusable or self._check(run, answer)
            if problem is None:
                return answer
            if run["reasks"] >= self.max_reasks:
                raise ModelError(f"the model's answer could not be used: {problem}")
            run["reasks"] += 1
            self._runs.save(run)

    def _check(self, run: Mapping[str, Any], answer: _Answer) -> str | None:
        if not answer.calls:
            return "no tool call (a text answer; the run ends only through its final tool)"
        for asked in answer.calls:
            tool = self.tools.get(asked.name)
            if tool is None:
                return f"unknown tool {asked.name!r}"
            try:
                _validate(tool, asked.raw)
            except pydantic.ValidationError as exc:
                return f"arguments of {asked.name} break its schema: {exc}"
            if self._repeated(run, asked):
                raise LogicError(
                    f"the model called {asked.name} again with the same arguments: no progress"
                )
        return None

    def _repeated(self, run: Mapping[str, Any], asked: _Asked) -> bool:
        seen = canonical([asked.name, _as_object(asked.raw)])
        return any(
            canonical([c.name, _as_object(c.raw)]) == seen
            for m in run["messages"]
            if m["role"] == "assistant"
            for c in _calls_of(m)
        )

    def _run_tools(self, run: dict[str, Any], message: Mapping[str, Any]) -> Outcome | None:
        """Answer the calls of the model's last message (skipping the ones answered)."""
        answered = _answered(run["messages"])
        for asked in _calls_of(message):
            if asked.id in answered:
                continue
            tool = self.tools[asked.name]
            arguments = _validate(tool, asked.raw)
            step = f"tool_{sum(m['role'] == 'assistant' for m in run['messages'])}_{tool.name}"
            if tool.final:
                run["final_state"] = (
                    "completed" if self.state_of is None else self.state_of(arguments)
                )
                self._runs.save(run)
                return None
            if tool.gated and asked.id not in run["decisions"]:
                self._boundary("before_step", "approve")
                body = arguments.model_dump(mode="json")
                return self._park_on(run, tool.name, asked.id, body, self.summary(tool.name, body))
            self._boundary("before_step", step)
            assert tool.run is not None
            assert self._world is not None
            call = Call(
                id=asked.id,
                name=tool.name,
                arguments=arguments,
                key=idempotency_key(run["run_id"], asked.id),
                run_id=run["run_id"],
                clock=self._world.clock,
                config=self._world.config,
                http=None if self.tools_http is None else ToolHttp(self.tools_http, self._clock),
            )
            result = tool.run(call)
            self.wire.add_result(run["messages"], asked.id, json.dumps(result, default=str))
            self._runs.save(run)
            self._boundary("after_checkpoint", step)
        return None


def _validate(tool: Tool, raw: Any) -> pydantic.BaseModel:
    if isinstance(raw, str):
        return tool.arguments.model_validate_json(raw or "{}")
    return tool.arguments.model_validate(raw if raw is not None else {})


def _as_object(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _calls_of(message: Mapping[str, Any]) -> list[_Asked]:
    if "tool_calls" in message:
        return [
            _Asked(c["id"], c["function"]["name"], c["function"]["arguments"])
            for c in message["tool_calls"]
        ]
    content = message.get("content")
    if isinstance(content, list):
        return [
            _Asked(b["id"], b["name"], b.get("input"))
            for b in content
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ]
    return []


def _answered(messages: Sequence[Mapping[str, Any]]) -> set[str]:
    done: set[str] = set()
    for m in messages:
        if m["role"] == "tool":
            done.add(str(m["tool_call_id"]))
        elif m["role"] == "user" and isinstance(m["content"], list):
            done.update(
                str(b["tool_use_id"])
                for b in m["content"]
                if isinstance(b, dict) and b.get("type") == "tool_result"
            )
    return done
