"""Calls out of the run: budgets, bounded retries with backoff, and a trace record per request.

Owns ``ActiveRun`` (one run's in-memory accounting during a start/resume call) and ``Calls``:
``ask`` (one model turn through ``ModelClient``) and ``tool`` (one tool request through
``ToolClient``, with an ``Idempotency-Key`` of ``<run_id>:<step>`` on effects), each charged
against the run's budgets, retried on transient errors on the world's clock, and traced.
Infrastructure: it may import ``contract``, ``errors``, ``gate``, ``model``, ``schemas``,
``settings``, ``store`` and ``tools``; never the workflow, the engine or the desk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from reference_agent.contract import ClockLike, UnknownRunError
from reference_agent.errors import BudgetExhausted, ProviderError, RunError
from reference_agent.gate import risk_of
from reference_agent.model import Message, ModelClient, ModelReply
from reference_agent.schemas import TicketPayload
from reference_agent.settings import Api, RunOptions
from reference_agent.store import RunRow, Store
from reference_agent.tools import ToolClient

_T = TypeVar("_T", bound=BaseModel)


@dataclass
class ActiveRun:
    """In-memory accounting of one run for the duration of one start/resume call."""

    row: RunRow
    ticket: TicketPayload
    model_calls: int
    tool_calls: int

    @property
    def run_id(self) -> str:
        return self.row.run_id


class Calls:
    """The run's model and tool requests, bound to one world (store, clock, options).

    Args:
        store: the desk's database (trace records; the run row for the time budget).
        clock: the world's clock (durations, backoff sleeps).
        options: budgets and attempt limits.
        model: the model client, and the API and streaming mode in use.
        tools: the tool client.
    """

    def __init__(
        self,
        store: Store,
        clock: ClockLike,
        options: RunOptions,
        *,
        model: ModelClient,
        api: Api,
        stream: bool,
        tools: ToolClient,
    ) -> None:
        self._store = store
        self._clock = clock
        self._options = options
        self._model = model
        self._api = api
        self._stream = stream
        self._tools = tools

    def now(self) -> float:
        """The world's clock."""
        return float(self._clock.now())

    def trace(self, run_id: str, record: dict[str, Any]) -> None:
        """Append one trace record in its own transaction."""
        self._store.add_trace(run_id, record, self.now())

    def load(self, row: RunRow) -> ActiveRun:
        """The run's accounting as persisted: its ticket and the requests made so far."""
        models, tools = self._store.count_calls(row.run_id)
        return ActiveRun(
            row=row,
            ticket=TicketPayload.model_validate(row.payload),
            model_calls=models,
            tool_calls=tools,
        )

    # ------------------------------------------------------------------ budgets and retries

    def _charge(self, run: ActiveRun, kind: str) -> None:
        opts, now = self._options, self.now()
        row = self._store.get_run(run.run_id)
        if row is None:
            raise UnknownRunError(f"run {run.run_id!r} vanished from the state directory")
        elapsed = now - row.started_at - row.parked_total
        if elapsed > opts.max_run_seconds:
            raise BudgetExhausted(
                f"run seconds exhausted: {elapsed:.1f} s active, budget {opts.max_run_seconds} s"
            )
        if kind == "model":
            if run.model_calls >= opts.max_model_calls:
                raise BudgetExhausted(
                    f"model calls exhausted: {run.model_calls} made, budget {opts.max_model_calls}"
                )
            run.model_calls += 1
        else:
            if run.tool_calls >= opts.max_tool_calls:
                raise BudgetExhausted(
                    f"tool calls exhausted: {run.tool_calls} made, budget {opts.max_tool_calls}"
                )
            run.tool_calls += 1

    def _backoff(self, error: RunError, attempt: int) -> None:
        if not error.transient:
            raise error
        if attempt >= self._options.max_attempts:
            error.args = (f"{error} (gave up after {attempt} attempts)",)
            raise error
        retry_after = getattr(error, "retry_after", None)
        delay = retry_after if retry_after is not None else min(0.5 * 2 ** (attempt - 1), 8.0)
        if delay > 60.0:
            error.transient = False
            error.args = (f"{error} (Retry-After of {delay:.0f} s exceeds the 60 s limit)",)
            raise error
        self._clock.sleep(delay)

    # ------------------------------------------------------------------ requests

    def ask(
        self,
        run: ActiveRun,
        step: str,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]],
    ) -> ModelReply:
        """One model answer to ``messages`` offering ``tools``, retried while transient."""
        api, stream = self._api, self._stream
        attempt = 0
        while True:
            attempt += 1
            self._charge(run, "model")
            exchange = self._model.exchange(api)
            started = self.now()
            error: ProviderError | None = None
            try:
                reply = self._model.complete(api, stream, messages, tools, exchange, started)
            except ProviderError as exc:
                error = exc
            self.trace(
                run.run_id,
                {
                    "kind": "model_call",
                    "method": exchange.method,
                    "url": exchange.url,
                    "status": exchange.status,
                    "attempt": attempt,
                    "step": step,
                    "duration_s": self.now() - started,
                    "api": api,
                    "stream": stream,
                    "messages": list(messages),
                    "tools": [t["name"] for t in tools],
                    "response": None if exchange.reply is None else exchange.reply.as_record(),
                    "error": None if error is None else f"{error.kind}: {error}",
                },
            )
            if error is None:
                return reply
            self._backoff(error, attempt)

    def tool(
        self,
        run: ActiveRun,
        step: str,
        tool: str,
        schema: type[_T],
        path_args: Mapping[str, str],
        *,
        body: Mapping[str, Any] | None = None,
        effect: bool = False,
    ) -> _T:
        """One tool request, its answer validated by ``schema``, retried while transient.

        An ``effect`` carries the ``Idempotency-Key`` ``<run_id>:<step>``: every retry and every
        re-execution after a crash sends the same key, so the service applies it once.
        """
        key = f"{run.run_id}:{step}" if effect else None
        attempt = 0
        while True:
            attempt += 1
            self._charge(run, "tool")
            exchange = self._tools.exchange(tool, path_args)
            started = self.now()
            error: RunError | None = None
            result: BaseModel | None = None
            try:
                result = self._tools.call(
                    tool, exchange, body=body, idempotency_key=key, now=started
                )
            except RunError as exc:
                error = exc
            self.trace(
                run.run_id,
                {
                    "kind": "tool_call",
                    "tool": tool,
                    "method": exchange.method,
                    "url": exchange.url,
                    "status": exchange.status,
                    "attempt": attempt,
                    "step": step,
                    "duration_s": self.now() - started,
                    "arguments": dict(body) if body is not None else dict(path_args),
                    "idempotency_key": key,
                    "risk": risk_of(tool, body).value,
                    "response": exchange.response,
                    "error": None if error is None else f"{error.kind}: {error}",
                },
            )
            if error is None:
                assert isinstance(result, schema)
                return result
            self._backoff(error, attempt)
