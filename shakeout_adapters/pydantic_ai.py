"""Put a pydantic-ai ``Agent`` under test: message history as the checkpoint, deferred tools as
the approval gate.

The user's agent declares its risky tools with ``requires_approval=True`` and includes
``DeferredToolRequests`` in its ``output_type``; the adapter drives it node by node
(``agent.iter``), persists the message history (``ModelMessagesTypeAdapter``) in the run's
state directory after every node, announces a crash boundary before each node and after each
checkpoint, parks the run on a deferred approval, and delivers the reviewer's decision as
``DeferredToolResults``. A fresh adapter over the same state directory resumes from the last
checkpoint: a trailing ``ModelRequest`` is sent again, a trailing ``ModelResponse`` has its tool
calls executed, and effects reuse their ``Idempotency-Key`` (:func:`RunInfo.idempotency_key`).

    from shakeout_adapters.pydantic_ai import PydanticAIAdapter, RunInfo

    def build_adapter(endpoints):
        agent = build_my_agent(endpoints.model_base_url)      # your Agent[MyDeps, ...]
        http = httpx.Client(base_url=endpoints.tools_base_url)
        return PydanticAIAdapter(
            agent,
            prompt=lambda payload: payload["message"],
            deps=lambda run: MyDeps(run, ToolHttp(http, run.clock)),
            run_key="ticket_id",
        )
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic_ai import (
    Agent,
    DeferredToolRequests,
    DeferredToolResults,
    ModelMessagesTypeAdapter,
    UsageLimits,
)
from pydantic_ai import exceptions as pai_errors
from pydantic_ai.agent import CallToolsNode, ModelRequestNode
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_graph import End

from shakeout_adapters._runs import (
    ClockLike,
    GatedRunAdapter,
    Outcome,
    idempotency_key,
)
from shakeout_adapters.categories import (
    AgentError,
    LogicError,
    ModelError,
    categorize,
)

__all__ = ["PydanticAIAdapter", "RunInfo", "categorize_pydantic_ai"]

DepsT = TypeVar("DepsT")

MAX_MODEL_REQUESTS = 12
"""Default bound on model requests per run (``UsageLimits.request_limit``)."""


@dataclass(frozen=True)
class RunInfo:
    """What a tool of the user's agent may need from the run, handed to the ``deps`` factory.

    Attributes:
        run_id: the run's id (stable across restarts).
        clock: the world's clock: sleep and read time on it only.
        state_dir: the run's persistent directory.
        config: the scenario's ``agent_config``.
    """

    run_id: str
    clock: ClockLike
    state_dir: Path
    config: Mapping[str, Any]

    def idempotency_key(self, tool_call_id: str) -> str:
        """The ``Idempotency-Key`` for the effect of one tool call (``ctx.tool_call_id``)."""
        return idempotency_key(self.run_id, tool_call_id)


def categorize_pydantic_ai(exc: BaseException) -> AgentError:
    """The typed failure a pydantic-ai run's exception stands for.

    ``UsageLimitExceeded`` (the request budget ran out: no progress) is a logic error;
    ``ModelHTTPError`` / ``ModelAPIError`` (the provider failed after the SDK's own retries) and
    ``UnexpectedModelBehavior`` (the model's answers kept breaking the schema after
    pydantic-ai's re-asks) are model errors; everything else goes through
    :func:`shakeout_adapters.categories.categorize` (a tool's ``ToolError`` passes through).
    """
    if isinstance(exc, AgentError):
        return exc
    if isinstance(exc, pai_errors.UsageLimitExceeded):
        return LogicError(f"the run's budget ran out: {exc}")
    if isinstance(exc, pai_errors.ModelHTTPError):
        return ModelError(f"the model endpoint answered HTTP {exc.status_code}: {exc.message}")
    if isinstance(exc, pai_errors.ModelAPIError):
        return ModelError(f"the model endpoint failed: {exc.message}")
    if isinstance(exc, pai_errors.UnexpectedModelBehavior):
        return ModelError(f"the model's answers broke the schema: {exc.message}")
    cause = exc.__cause__
    if isinstance(exc, pai_errors.AgentRunError) and cause is not None:
        return categorize(cause)
    return categorize(exc)


def _summary(call: ToolCallPart) -> str:
    args = call.args_as_dict()
    values = ", ".join(f"{k}={v}" for k, v in sorted(args.items()))
    return f"Approve {call.tool_name}({values})?"


class PydanticAIAdapter(GatedRunAdapter, Generic[DepsT]):
    """Drives a pydantic-ai ``Agent`` through shakeout's adapter contract.

    Args:
        agent: the user's agent; its ``output_type`` must include ``DeferredToolRequests``
            when any tool has ``requires_approval=True``.
        prompt: builds the user prompt from the run's input.
        deps: builds the agent's dependencies for a run (tools reach the clock, the run id and
            idempotency keys through :class:`RunInfo`).
        run_key: the input field that identifies a run, so a redelivered input continues it.
        intake: validates the input; returns why it is rejected (ends ``failed``/``input``).
        summary: the reviewer's summary of an approval request (must name every value).
        state_of: maps the agent's final output to a terminal state (default ``completed``).
        max_model_requests: the run's request budget (exceeding it ends ``failed``/``logic``).
        max_reasks: how often per run an unusable model answer (refused, filtered, empty, cut
            at the token limit, malformed) is asked again before the run fails (``model``).
    """

    def __init__(
        self,
        agent: Agent[DepsT, Any],
        *,
        prompt: Callable[[Mapping[str, Any]], str],
        deps: Callable[[RunInfo], DepsT],
        run_key: str | None = None,
        intake: Callable[[Mapping[str, Any]], str | None] | None = None,
        summary: Callable[[ToolCallPart], str] = _summary,
        state_of: Callable[[Any], str] | None = None,
        max_model_requests: int = MAX_MODEL_REQUESTS,
        max_reasks: int = 2,
    ) -> None:
        self.agent = agent
        self.prompt = prompt
        self.deps = deps
        self.run_key = run_key
        self.intake = intake
        self.summary = summary
        self.state_of = state_of
        self.max_model_requests = max_model_requests
        self.max_reasks = max_reasks
        self._world = None
        self._store = None

    # ------------------------------------------------------------------ the adapter contract

    def trace(self, run_id: str) -> None:
        """pydantic-ai keeps its trace in the message history; none is exposed to the harness."""
        return

    # ------------------------------------------------------------------ driving

    def _drive(self, run: dict[str, Any]) -> Outcome:
        while True:
            if run.get("final_state"):
                return self._finish(run, str(run["final_state"]))
            loop = asyncio.new_event_loop()
            try:
                output = loop.run_until_complete(self._iterate(run))
            except BaseExceptionGroup as group:
                raise _unwrap(group) from None
            except _Reask as reask:
                if run["reasks"] >= self.max_reasks:
                    return self._finish(run, "failed", reask.error)
                # ask again from the last checkpoint: it ends with the request just sent
                run["reasks"] += 1
                self._runs.save(run)
                continue
            except Exception as exc:
                return self._finish(run, "failed", categorize_pydantic_ai(exc))
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
            if isinstance(output, DeferredToolRequests):
                return self._park(run, output)
            return self._finish(run, str(run["final_state"]))

    def _park(self, run: dict[str, Any], requests: DeferredToolRequests) -> Outcome:
        if requests.calls or len(requests.approvals) != 1:
            return self._finish(
                run,
                "failed",
                LogicError(
                    f"the model asked for {len(requests.approvals)} approvals and "
                    f"{len(requests.calls)} external calls at once; this adapter gates one "
                    "approval at a time"
                ),
            )
        call = requests.approvals[0]
        self._boundary("before_step", "approve")
        return self._park_on(
            run, call.tool_name, call.tool_call_id, call.args_as_dict(), self.summary(call)
        )

    async def _iterate(self, run: dict[str, Any]) -> Any:
        assert self._world is not None
        world = self._world
        history = _load(run.get("messages"))
        fresh = not history
        info = RunInfo(run["run_id"], world.clock, Path(world.state_dir), world.config)
        async with self.agent.iter(
            self.prompt(run["payload"]) if fresh else None,
            message_history=history or None,
            deps=self.deps(info),
            deferred_tool_results=_undelivered(history, run["decisions"]),
            usage_limits=UsageLimits(request_limit=self.max_model_requests),
        ) as agent_run:
            node = agent_run.next_node
            while not isinstance(node, End):
                step = _step_name(node, agent_run.all_messages())
                self._boundary("before_step", step)
                asked = isinstance(node, ModelRequestNode)
                try:
                    node = await agent_run.next(node)
                except Exception as exc:
                    if asked and _reaskable(exc):
                        raise _Reask(ModelError(f"{type(exc).__name__}: {exc}")) from exc
                    raise
                if isinstance(node, CallToolsNode):
                    # an answer cut at the token limit is never acted on, even when it parses;
                    # a refused or filtered one is asked again rather than failing the run
                    unusable = _UNUSABLE.get(str(node.model_response.finish_reason))
                    if unusable is not None:
                        raise _Reask(ModelError(f"the model's answer was {unusable}"))
                run["messages"] = _dump(_checkpoint(agent_run.all_messages(), node))
                if isinstance(node, End) and not isinstance(node.data.output, DeferredToolRequests):
                    output = node.data.output
                    final = "completed" if self.state_of is None else self.state_of(output)
                    run["final_state"] = final
                self._runs.save(run)
                self._boundary("after_checkpoint", step)
            result = agent_run.result
        assert result is not None
        return result.output


_UNUSABLE = {"length": "cut at the token limit", "content_filter": "refused or filtered"}


class _Reask(Exception):
    """The model's answer cannot be used; asking again from the last checkpoint can help."""

    def __init__(self, error: AgentError) -> None:
        super().__init__(str(error))
        self.error = error


def _reaskable(exc: Exception) -> bool:
    """A failure while the model answered that asking again can fix (not a budget, not a
    provider failure the SDK already retried)."""
    if isinstance(exc, pai_errors.UsageLimitExceeded | pai_errors.ModelAPIError):
        return False
    if isinstance(exc, AgentError):
        return exc.transient
    return True


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """A crash raised inside a task group comes back wrapped; hand the harness the crash."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            inner: BaseException = _unwrap(exc)
            return inner
        if not isinstance(exc, Exception):
            return exc
    return group


def _step_name(node: Any, history: Sequence[ModelMessage]) -> str:
    responses = sum(isinstance(m, ModelResponse) for m in history)
    kind = type(node).__name__
    if kind == "ModelRequestNode":
        return f"model_{responses + 1}"
    if kind == "CallToolsNode":
        names = sorted({p.tool_name for p in node.model_response.parts if _is_call(p)})
        return f"tools_{responses}" + (f"_{'_'.join(names)}" if names else "")
    return kind.removesuffix("Node").lower()


def _is_call(part: object) -> bool:
    return isinstance(part, ToolCallPart)


def _checkpoint(history: list[ModelMessage], node: Any) -> list[ModelMessage]:
    """The history to resume from: the next request too, once tools have answered it."""
    request = getattr(node, "request", None)
    if (
        isinstance(request, ModelRequest)
        and request.parts
        and (not history or history[-1] is not request)
    ):
        return [*history, request]
    return list(history)


def _undelivered(
    history: Sequence[ModelMessage], decisions: Mapping[str, bool]
) -> DeferredToolResults | None:
    """Decisions whose tool call has no return in the history yet (delivered again after a
    crash between the decision and the tool's answer)."""
    answered = {
        p.tool_call_id
        for m in history
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, ToolReturnPart)
    }
    open_calls = {
        p.tool_call_id
        for m in history
        if isinstance(m, ModelResponse)
        for p in m.parts
        if isinstance(p, ToolCallPart)
    }
    todo = {k: v for k, v in decisions.items() if k not in answered and k in open_calls}
    return DeferredToolResults(approvals=dict(todo)) if todo else None


def _dump(messages: Sequence[ModelMessage]) -> Any:
    return ModelMessagesTypeAdapter.dump_python(list(messages), mode="json")


def _load(raw: Any) -> list[ModelMessage]:
    if not raw:
        return []
    return list(ModelMessagesTypeAdapter.validate_python(raw))
