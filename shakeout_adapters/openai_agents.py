"""Put an OpenAI Agents SDK agent under shakeout: approvals, durable resume, tracing kept local.

Wrap your agent in a few lines (``examples/openai_agents`` is a complete example)::

    from shakeout_adapters.openai_agents import OpenAIAgentsAdapter

    def build_adapter(endpoints):
        return OpenAIAgentsAdapter(build_agent(), endpoints, context=lambda run: MyDeps(run))

What the adapter does with the SDK's own machinery:

- **Approvals.** A function tool with ``needs_approval`` interrupts the run; the adapter parks
  it (``awaiting_approval``, the tool call id as ``approval_id``, its parsed JSON arguments as
  ``arguments``) and keeps the SDK's serialisable ``RunState`` (``to_string``) in the run file
  under ``state_dir``. A decision is checked against the exact call and its expiry on the
  harness's clock, then applied with ``RunState.approve`` and the run continues; a denial ends
  the run ``rejected``; an expired approval ends it ``expired``.
- **Durable resume.** Every model answer and every tool result is journaled before the run goes
  on (keyed by the model input and by the tool call id). After a crash a fresh adapter replays
  the run through the SDK from its last ``RunState`` (or its input): journaled answers are
  served from the journal, so no completed model call or tool call is made again; the call in
  flight is made again, with the same idempotency key (derive it from ``run_id`` and
  ``ToolContext.tool_call_id``). ``start(payload)`` after a crash continues the same run: the
  run id is derived from the payload.
- **Crash boundaries.** ``before_step`` before each model call and tool call,
  ``after_checkpoint`` after each is journaled, ``terminal_write`` before the final state.
- **Tracing.** The SDK's trace export (to a remote server by default) is switched off for every
  run (``RunConfig(tracing_disabled=True)``); the adapter's own trace is written under
  ``state_dir`` from the HTTP requests the run makes.
- **Categories.** A failed run is categorized by the exception: a ``category`` attribute on it
  (or on its cause) wins; else the SDK's and openai's exception classes (model behaviour and
  provider errors: ``model``; ``MaxTurnsExceeded``: ``logic``; guardrails: ``input``); httpx
  errors from a tool: ``tool``.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Generic, TypeVar

import httpx
import httpx2
import openai
from agents import (
    Agent,
    FunctionTool,
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    Model,
    ModelBehaviorError,
    ModelRefusalError,
    ModelResponse,
    ModelSettings,
    OpenAIResponsesModel,
    RunConfig,
    RunContextWrapper,
    Runner,
    RunState,
    Usage,
)
from agents.items import TResponseInputItem, TResponseStreamEvent
from agents.models.interface import ModelTracing
from openai.types.responses import ResponseOutputItem
from pydantic import BaseModel, TypeAdapter

from shakeout_adapters._runs import (
    DEFAULT_APPROVAL_TTL_S,
    Approval,
    Categorized,
    DurableRunAdapter,
    Outcome,
    RunInfo,
    Trace,
    categorize_by_rules,
    outcome_of,
    park,
    summarize,
)

__all__ = ["Approval", "OpenAIAgentsAdapter", "Outcome", "RunInfo", "Trace"]

TContext = TypeVar("TContext")

RULES: tuple[tuple[type[BaseException], str], ...] = (
    (InputGuardrailTripwireTriggered, "input"),
    (MaxTurnsExceeded, "logic"),
    (ModelBehaviorError, "model"),
    (ModelRefusalError, "model"),
    (openai.APIError, "model"),
    (httpx2.HTTPError, "model"),
    (httpx.HTTPError, "tool"),
    (json.JSONDecodeError, "model"),
)
"""Exception classes to categories, first match wins (after a ``category`` attribute)."""

_OUTPUT = TypeAdapter(list[ResponseOutputItem])
_STEP: contextvars.ContextVar[str] = contextvars.ContextVar("shakeout_step", default="agent")


class OpenAIAgentsAdapter(DurableRunAdapter, Generic[TContext]):
    """Drives an ``agents.Agent`` through the harness's four-method contract.

    Args:
        agent: your agent, built once; its model is replaced by the run's endpoint.
        endpoints: the harness's endpoints (``model_base_url``, ``tools_base_url``,
            ``api_key``, ``model``).
        context: builds the run context your tools receive from a :class:`RunInfo` (run id,
            clock, a traced ``httpx.Client`` for the tool services, state dir); default: the
            ``RunInfo`` itself.
        prompt: turns the scenario's input into the run's input (default: its JSON).
        summary: the reviewer's summary of a gated call (default: tool and arguments).
        approval_ttl_s: how long an approval stays valid on the run's clock.
        max_turns: the SDK's turn budget per run segment (``MaxTurnsExceeded`` is ``logic``).
    """

    namespace = "openai-agents"

    def __init__(
        self,
        agent: Agent[TContext],
        endpoints: Any,
        *,
        context: Callable[[RunInfo], TContext] | None = None,
        prompt: Callable[[Mapping[str, Any]], str] | None = None,
        summary: Callable[[str, Mapping[str, Any]], str] = summarize,
        approval_ttl_s: float = DEFAULT_APPROVAL_TTL_S,
        max_turns: int = 10,
    ) -> None:
        super().__init__(endpoints, context=context, summary=summary, approval_ttl_s=approval_ttl_s)
        self.agent = agent
        self.endpoints = endpoints
        self._prompt = prompt or (lambda payload: json.dumps(payload, ensure_ascii=False))
        self._max_turns = max_turns
        self._ssl = ssl.create_default_context()  # built once: a client per run stays cheap
        self._tools = {t.name: t for t in agent.tools if isinstance(t, FunctionTool)}

    # ------------------------------------------------------------------ the contract

    def _approved(self, pending: Mapping[str, Any]) -> Any:
        return pending["approval_id"]

    # ------------------------------------------------------------------ running the SDK

    def _advance(self, doc: dict[str, Any]) -> Outcome:
        self._run_id = doc["run_id"]
        try:
            result = asyncio.run(self._run(doc))
        except Exception as exc:
            found: Categorized = categorize_by_rules(exc, RULES)
            return self._end(doc, "failed", found.category, found.message)
        if result.interruptions:
            item = result.interruptions[0]
            raw = item.raw_item
            arguments = json.loads(str(_field(raw, "arguments") or "{}"))
            doc["run_state"] = result.to_state().to_string()
            if not isinstance(arguments, dict):
                arguments = {"arguments": arguments}
            park(
                doc,
                approval_id=str(_field(raw, "call_id")),
                tool=str(item.tool_name),
                arguments=arguments,
                now=self._world.clock.now(),
                ttl_s=self._ttl,
                summary=self._summary(str(item.tool_name), arguments),
            )
            self._require_store().save(doc)
            return outcome_of(doc)
        doc["output"] = str(result.final_output)
        return self._end(doc, "completed", None, None)

    async def _run(self, doc: dict[str, Any]) -> Any:
        info = self._info(doc, self._http)
        context: Any = info if self._context is None else self._context(info)
        client = openai.AsyncOpenAI(
            base_url=str(self.endpoints.model_base_url),
            api_key=str(getattr(self.endpoints, "api_key", "sk-shakeout")),
            http_client=httpx2.AsyncClient(
                verify=self._ssl, event_hooks={"request": [self._trace_model_request]}
            ),
        )
        model = _JournaledModel(
            OpenAIResponsesModel(
                model=str(getattr(self.endpoints, "model", "gpt-4.1-mini")), openai_client=client
            ),
            self,
            doc,
        )
        config = RunConfig(model=model, tracing_disabled=True)
        agent = self.agent.clone(tools=[self._journaled(t, doc) for t in self.agent.tools])
        try:
            if doc.get("run_state"):
                state = await RunState.from_string(
                    agent,
                    doc["run_state"],
                    context_override=RunContextWrapper(context=context),
                )
                approved = doc.get("decision")
                for item in state.get_interruptions():
                    if str(_field(item.raw_item, "call_id")) == approved:
                        state.approve(item)
                resumed: Any = state  # the SDK types a resumed run's input by its context
                return await Runner.run(
                    agent, resumed, max_turns=self._max_turns, run_config=config
                )
            return await Runner.run(
                agent,
                self._prompt(doc["payload"]),
                context=context,
                max_turns=self._max_turns,
                run_config=config,
            )
        finally:
            await client.close()

    def _journaled(self, tool: Any, doc: dict[str, Any]) -> Any:
        """The tool, its result journaled by call id: a replay after a crash returns it."""
        if not isinstance(tool, FunctionTool):
            return tool
        invoke = tool.on_invoke_tool
        name = tool.name

        async def on_invoke_tool(ctx: Any, arguments: str) -> Any:
            key = f"tool:{ctx.tool_call_id}"
            journal = doc["journal"]
            if key in journal:
                return journal[key]
            self._world.boundary("before_step", name)
            token = _STEP.set(name)
            try:
                result = await invoke(ctx, arguments)
            finally:
                _STEP.reset(token)
            journal[key] = _jsonable(result)
            self._require_store().save(doc)
            self._world.boundary("after_checkpoint", name)
            return result

        return _copy_tool(tool, on_invoke_tool)

    # ------------------------------------------------------------------ trace

    async def _trace_model_request(self, request: httpx2.Request) -> None:
        self._record("model_call", request.method, str(request.url))

    def _step(self, kind: str) -> str:
        return _STEP.get() if kind == "tool_call" else "model"


class _JournaledModel(Model):
    """The run's model, each answer journaled under a hash of the model's input."""

    def __init__(self, inner: Model, adapter: OpenAIAgentsAdapter[Any], doc: dict[str, Any]):
        self.inner = inner
        self.adapter = adapter
        self.doc = doc

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Any],
        output_schema: Any,
        handoffs: list[Any],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: Any,
    ) -> ModelResponse:
        seen = json.dumps([system_instructions, _jsonable(input)], sort_keys=True, default=str)
        key = "model:" + hashlib.sha256(seen.encode()).hexdigest()[:32]
        journal = self.doc["journal"]
        if key in journal:
            return ModelResponse(
                output=_OUTPUT.validate_python(journal[key]), usage=Usage(), response_id=None
            )
        world = self.adapter._world
        world.boundary("before_step", "model")
        response = await self.inner.get_response(
            system_instructions,
            input,
            model_settings,
            tools,
            output_schema,
            handoffs,
            tracing,
            previous_response_id=previous_response_id,
            conversation_id=conversation_id,
            prompt=prompt,
        )
        journal[key] = [item.model_dump(mode="json") for item in response.output]
        self.adapter._require_store().save(self.doc)
        world.boundary("after_checkpoint", "model")
        return response

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[TResponseStreamEvent]:
        raise NotImplementedError(
            "the shakeout adapter runs agents with Runner.run; streamed runs are not journaled"
        )


def _copy_tool(tool: FunctionTool, on_invoke_tool: Any) -> FunctionTool:
    import dataclasses

    return dataclasses.replace(tool, on_invoke_tool=on_invoke_tool)


def _field(raw: Any, name: str) -> Any:
    return raw.get(name) if isinstance(raw, dict) else getattr(raw, name, None)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
