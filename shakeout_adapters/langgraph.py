"""Put a LangGraph graph under shakeout: ``interrupt()`` approvals, SQLite checkpoints, resume.

Wrap your graph in a few lines (``examples/langgraph`` is a complete example)::

    from shakeout_adapters.langgraph import LangGraphAdapter

    def build_adapter(endpoints):
        return LangGraphAdapter(build_graph, endpoints, context=lambda run: MyContext(run))

``build_graph(model, checkpointer)`` is your code: it binds its tools to ``model`` (a
``ChatOpenAI`` pointed at the run's model endpoint) and compiles the graph with
``checkpointer``. What the adapter does with LangGraph's own machinery:

- **Persistence.** The checkpointer is the SQLite saver (``langgraph-checkpoint-sqlite``) over a
  file in the world's ``state_dir``; the run id is the graph's ``thread_id``; every super-step
  is written before the next one starts (``durability="sync"``). After a crash a fresh adapter
  reopens the file and continues from the last checkpoint: finished nodes are not run again,
  the node in flight is (give its side effects an idempotency key, e.g. the run id and the
  tool call id). ``start(payload)`` after a crash continues the same run: the run id is derived
  from the payload.
- **Approvals.** A node or tool that calls ``interrupt(value)`` parks the run. ``value`` is a
  mapping with ``tool`` and ``arguments`` (the exact body the gated call will send), and
  optionally ``approval_id`` (default: the interrupt's id) and ``summary``. An approval is
  checked against that call and its expiry on the harness's clock, then delivered as
  ``Command(resume={"approved": True, "reviewer": ...})``; a denial ends the run ``rejected``
  without resuming; an expired approval ends it ``expired``.
- **Crash boundaries.** ``before_step`` as each node starts (a callback), ``after_checkpoint``
  each time the saver has written a checkpoint, ``terminal_write`` before the final state.
- **Trace and categories.** The run's model and tool requests are traced under ``state_dir``.
  A failed run is categorized by a ``category`` attribute on the exception (or its cause), else
  by class: openai and LangChain output errors ``model``, ``GraphRecursionError`` ``logic``,
  httpx errors ``tool``.
"""

from __future__ import annotations

import json
import sqlite3
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

import httpx
import httpx2
import openai
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.errors import GraphRecursionError
from langgraph.types import Command

from shakeout_adapters._runs import (
    DEFAULT_APPROVAL_TTL_S,
    Approval,
    DurableRunAdapter,
    Outcome,
    RunInfo,
    Trace,
    categorize_by_rules,
    outcome_of,
    park,
    summarize,
)

__all__ = ["Approval", "LangGraphAdapter", "Outcome", "RunInfo", "Trace"]

RULES: tuple[tuple[type[BaseException], str], ...] = (
    (GraphRecursionError, "logic"),
    (OutputParserException, "model"),
    (openai.APIError, "model"),
    (httpx2.HTTPError, "model"),
    (httpx.HTTPError, "tool"),
)
"""Exception classes to categories, first match wins (after a ``category`` attribute)."""

GraphBuilder = Callable[[BaseChatModel, BaseCheckpointSaver[Any]], Any]


class LangGraphAdapter(DurableRunAdapter):
    """Drives a compiled LangGraph graph through the harness's four-method contract.

    Args:
        build_graph: ``build_graph(model, checkpointer)`` returns your compiled graph.
        endpoints: the harness's endpoints (``model_base_url``, ``tools_base_url``,
            ``api_key``, ``model``).
        context: builds the graph's runtime context (``context_schema``) from a
            :class:`RunInfo` (run id, clock, a traced ``httpx.Client`` for the tool services,
            state dir); default: the ``RunInfo`` itself.
        graph_input: turns the scenario's input into the graph's input (default: one user
            message with the input's JSON).
        summary: the reviewer's summary when the interrupt value carries none.
        approval_ttl_s: how long an approval stays valid on the run's clock.
        recursion_limit: LangGraph's step budget (``GraphRecursionError`` is ``logic``).
    """

    namespace = "langgraph"

    def __init__(
        self,
        build_graph: GraphBuilder,
        endpoints: Any,
        *,
        context: Callable[[RunInfo], Any] | None = None,
        graph_input: Callable[[Mapping[str, Any]], Any] | None = None,
        summary: Callable[[str, Mapping[str, Any]], str] = summarize,
        approval_ttl_s: float = DEFAULT_APPROVAL_TTL_S,
        recursion_limit: int = 25,
    ) -> None:
        super().__init__(endpoints, context=context, summary=summary, approval_ttl_s=approval_ttl_s)
        self._build_graph = build_graph
        self._input = graph_input or _user_message
        self._recursion_limit = recursion_limit
        self._graph: Any = None
        self._connection: sqlite3.Connection | None = None
        self.model = ChatOpenAI(
            model=str(getattr(endpoints, "model", "gpt-4.1-mini")),
            base_url=str(endpoints.model_base_url),
            api_key=str(getattr(endpoints, "api_key", "sk-shakeout")),
            http_client=httpx2.Client(
                verify=ssl.create_default_context(),
                event_hooks={"request": [self._trace_model_request]},
            ),
        )
        self._boundaries = _Boundaries(self)

    # ------------------------------------------------------------------ the contract

    def begin(self, world: Any) -> None:
        """Bind to a run's world: open its SQLite checkpoints; no earlier run stays in memory."""
        super().begin(world)
        store = self._require_store()
        if self._connection is not None:
            self._connection.close()  # the previous run's checkpoints, never needed again
        self._connection = sqlite3.connect(
            str(store.root / "checkpoints.sqlite"), check_same_thread=False
        )
        saver = _AnnouncingSaver(self._connection, self._boundaries)
        self._graph = self._build_graph(self.model, saver)
        self._boundaries.reset()

    def close(self) -> None:
        """Close the checkpoint database (the harness calls it on an instance it built for one
        run, once that run is over; a cached instance is re-bound by ``begin`` instead)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _approved(self, pending: Mapping[str, Any]) -> Any:
        return {"approval_id": pending["approval_id"], "interrupt_id": pending["interrupt"]}

    # ------------------------------------------------------------------ running the graph

    def _advance(self, doc: dict[str, Any]) -> Outcome:
        self._run_id = doc["run_id"]
        info = self._info(doc, self._http)
        context: Any = info if self._context is None else self._context(info)
        config: RunnableConfig = {
            "configurable": {"thread_id": doc["run_id"]},
            "callbacks": [self._boundaries],
            "recursion_limit": self._recursion_limit,
        }
        graph = self._graph
        try:
            snapshot = graph.get_state(config)
            if not snapshot.created_at:
                command: Any = self._input(doc["payload"])
            elif snapshot.interrupts and doc.get("decision"):
                chosen = doc["decision"]
                command = Command(
                    resume={chosen["interrupt_id"]: {"approved": True, "reviewer": "human"}}
                )
            else:
                command = None  # continue from the last checkpoint
            result = graph.invoke(command, config, context=context, durability="sync")
        except Exception as exc:
            found = categorize_by_rules(exc, RULES)
            return self._end(doc, "failed", found.category, found.message)
        found_interrupts = result.get("__interrupt__", ()) if isinstance(result, dict) else ()
        interrupts: Sequence[Any] = found_interrupts
        if interrupts:
            first = interrupts[0]
            value = first.value if isinstance(first.value, Mapping) else {"arguments": first.value}
            arguments = value.get("arguments", {})
            if not isinstance(arguments, Mapping):
                arguments = {"value": arguments}
            given = value.get("summary")
            tool = str(value.get("tool", "interrupt"))
            arguments = dict(arguments)
            park(
                doc,
                approval_id=str(value.get("approval_id", first.id)),
                tool=tool,
                arguments=arguments,
                now=self._world.clock.now(),
                ttl_s=self._ttl,
                summary=self._summary(tool, arguments) if given is None else str(given),
                interrupt=first.id,
            )
            self._require_store().save(doc)
            return outcome_of(doc)
        messages = result.get("messages", []) if isinstance(result, dict) else []
        doc["output"] = str(getattr(messages[-1], "content", "")) if messages else ""
        return self._end(doc, "completed", None, None)

    # ------------------------------------------------------------------ trace

    def _trace_model_request(self, request: httpx2.Request) -> None:
        self._record("model_call", request.method, str(request.url))

    def _step(self, kind: str) -> str:
        return "agent" if kind == "model_call" else "tools"


class _Boundaries(BaseCallbackHandler):
    """Announces ``before_step`` as each graph node starts; remembers the last node finished."""

    raise_error = True

    def __init__(self, adapter: LangGraphAdapter) -> None:
        self.adapter = adapter
        self.lock = threading.Lock()
        self.nodes: dict[UUID, str] = {}
        self.last = "input"

    def reset(self) -> None:
        with self.lock:
            self.nodes.clear()
            self.last = "input"

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        node = (metadata or {}).get("langgraph_node")
        if node is None or kwargs.get("name") != node:
            return
        with self.lock:
            self.nodes[run_id] = str(node)
        self.adapter._world.boundary("before_step", str(node))

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with self.lock:
            node = self.nodes.pop(run_id, None)
            if node is not None:
                self.last = node

    def checkpointed(self) -> None:
        self.adapter._world.boundary("after_checkpoint", self.last)


class _AnnouncingSaver(SqliteSaver):
    """The SQLite saver, announcing ``after_checkpoint`` once a checkpoint is written."""

    def __init__(self, connection: sqlite3.Connection, boundaries: _Boundaries) -> None:
        super().__init__(connection)
        self._boundaries = boundaries

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        written = super().put(config, checkpoint, metadata, new_versions)
        self._boundaries.checkpointed()
        return written


def _user_message(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": json.dumps(payload, ensure_ascii=False)}]}
