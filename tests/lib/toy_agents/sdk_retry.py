"""Two small tool-loop agents that leave model-error retries to their SDK, as many real ones do.

One speaks the real ``openai`` SDK (chat completions), the other the real ``anthropic`` SDK
(messages). Each builds its client once, with the SDK's default ``max_retries``, and has no
retry loop of its own for model errors: the SDK retries a 429/5xx itself (sleeping what the
answer's ``retry-after-ms`` / ``retry-after`` asks for), and an exception that escapes the SDK
ends the run ``failed`` with category ``model``. The tools the model names are called over
``httpx`` against the scenario's tools base URL; any tool failure ends the run ``failed`` with
category ``tool``.

The trace records every HTTP attempt the SDK makes (through its client's request hook, so the
SDK's own retries are in it) and every tool request.

``world.config`` switches, for tests that prove the cells can fail:

- ``max_retries``: the SDK's ``max_retries`` for this run (default: the SDK's own default).
- ``retry_at_once``: the agent's own retries of a failed model call, sent at once with no wait
  on either clock (a defect: the timing check must catch it). Default 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import anthropic
import httpx
import httpx2
import openai

Provider = Literal["openai", "anthropic"]
T = TypeVar("T")

MAX_TURNS = 8
TOOLS: Mapping[str, tuple[str, str]] = {
    "get_order": ("/orders/{order_id}", "Look an order up by its id."),
    "get_customer": ("/customers/{customer_id}", "Look a customer up by their id."),
}
"""The tools the agents offer: name -> (GET path template, description)."""

_PARAMS: Mapping[str, str] = {"get_order": "order_id", "get_customer": "customer_id"}


@dataclass(frozen=True)
class Outcome:
    """A run's outcome, in the shape the harness reads (structurally)."""

    run_id: str
    state: str
    category: str | None = None
    error: str | None = None
    pending_approval: None = None
    approvals: tuple[()] = ()


@dataclass(frozen=True)
class Trace:
    """Every model attempt and tool request of a run."""

    records: tuple[Mapping[str, Any], ...]
    kept_in_full: bool = True


class RunFailed(Exception):
    """The run ends failed with ``category``."""

    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.category = category


def _schema(name: str) -> dict[str, Any]:
    param = _PARAMS[name]
    return {
        "type": "object",
        "properties": {param: {"type": "string"}},
        "required": [param],
        "additionalProperties": False,
    }


class SdkRetryAgent:
    """The adapter and the agent in one (``begin``/``start``/``resume``/``trace``).

    Args:
        endpoints: anything with ``model_base_url``, ``tools_base_url``, ``api_key``, ``model``.
        provider: which SDK to speak.
    """

    def __init__(self, endpoints: Any, provider: Provider) -> None:
        self.provider = provider
        self.model_name = str(getattr(endpoints, "model", "shakeout-model"))
        base_url = str(endpoints.model_base_url)
        api_key = str(getattr(endpoints, "api_key", "sk-sdk-retry"))
        # The SDK's own HTTP client with a hook that traces every attempt it sends, retries too.
        hooks = {"request": [self._traced]}
        # Built once per adapter: an SDK client costs tens of milliseconds to build.
        self._openai: openai.OpenAI | None = None
        self._anthropic: anthropic.Anthropic | None = None
        if provider == "openai":
            self._openai = openai.OpenAI(
                base_url=base_url,
                api_key=api_key,
                timeout=10.0,
                http_client=openai.DefaultHttpxClient(event_hooks=hooks),
            )
        else:
            self._anthropic = anthropic.Anthropic(
                base_url=base_url,
                api_key=api_key,
                timeout=10.0,
                http_client=anthropic.DefaultHttpxClient(event_hooks=hooks),
            )
        self._http = httpx.Client(base_url=str(endpoints.tools_base_url), timeout=5.0)
        self._config: Mapping[str, Any] = {}
        self._records: list[dict[str, Any]] = []
        self._traces: dict[str, tuple[Mapping[str, Any], ...]] = {}
        self._clock: Any = None

    # ------------------------------------------------------------------ the adapter surface

    def begin(self, world: Any) -> None:
        """Bind to a run's world; nothing persists between runs of this agent."""
        self._config = dict(world.config)
        self._clock = world.clock
        self._records = []
        self._traces = {}

    def start(self, payload: Mapping[str, Any]) -> Outcome:
        """Ask the model, call the tools it names, until it answers in text."""
        run_id = str(payload.get("run_id", "run"))
        self._records = []
        try:
            answer = self._loop(str(payload.get("message", "")))
        except RunFailed as exc:
            outcome = Outcome(run_id, "failed", exc.category, str(exc))
        else:
            self._note({"kind": "decision", "answer": answer})
            outcome = Outcome(run_id, "completed")
        self._traces[run_id] = tuple(self._records)
        return outcome

    def resume(self, run_id: str, decision: object = None) -> Outcome:
        """Runs never park and keep no state: there is nothing to resume."""
        return Outcome(run_id, "failed", "logic", "this agent keeps no state to resume from")

    def trace(self, run_id: str) -> Trace | None:
        """The run's trace, or None for an unknown run."""
        records = self._traces.get(run_id)
        return None if records is None else Trace(records)

    # ------------------------------------------------------------------ the loop

    def _loop(self, message: str) -> str:
        if self.provider == "openai":
            return self._openai_loop(message)
        return self._anthropic_loop(message)

    def _openai_loop(self, message: str) -> str:
        assert self._openai is not None
        client = self._openai
        retries = self._config.get("max_retries")
        if retries is not None:
            client = client.with_options(max_retries=int(retries))
        tools: list[Any] = [
            {
                "type": "function",
                "function": {"name": n, "description": d, "parameters": _schema(n)},
            }
            for n, (_, d) in TOOLS.items()
        ]
        messages: list[Any] = [{"role": "user", "content": message}]
        for _ in range(MAX_TURNS):
            completion = self._ask(
                lambda: client.chat.completions.create(
                    model=self.model_name, messages=messages, tools=tools
                ),
                openai.APIError,
            )
            if not completion.choices:
                raise RunFailed("model", "the model answered with no choice")
            reply = completion.choices[0].message
            calls = [c for c in reply.tool_calls or () if c.type == "function"]
            if not calls:
                if not reply.content:
                    raise RunFailed("model", "the model answered neither text nor a tool call")
                return reply.content
            messages.append(reply.model_dump(exclude_none=True))
            for call in calls:
                result = self._tool(call.function.name, call.function.arguments)
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}
                )
        raise RunFailed("logic", f"no final answer within {MAX_TURNS} model turns")

    def _anthropic_loop(self, message: str) -> str:
        assert self._anthropic is not None
        client = self._anthropic
        retries = self._config.get("max_retries")
        if retries is not None:
            client = client.with_options(max_retries=int(retries))
        tools: list[Any] = [
            {"name": n, "description": d, "input_schema": _schema(n)} for n, (_, d) in TOOLS.items()
        ]
        messages: list[Any] = [{"role": "user", "content": message}]
        for _ in range(MAX_TURNS):
            reply = self._ask(
                lambda: client.messages.create(
                    model=self.model_name, max_tokens=1024, messages=messages, tools=tools
                ),
                anthropic.APIError,
            )
            uses = [b for b in reply.content if b.type == "tool_use"]
            if not uses:
                text = "".join(b.text for b in reply.content if b.type == "text")
                if not text:
                    raise RunFailed("model", "the model answered neither text nor a tool call")
                return text
            messages.append(
                {
                    "role": "assistant",
                    "content": [b.model_dump(exclude_none=True) for b in reply.content],
                }
            )
            results = [
                {
                    "type": "tool_result",
                    "tool_use_id": b.id,
                    "content": json.dumps(self._tool(b.name, json.dumps(b.input))),
                }
                for b in uses
            ]
            messages.append({"role": "user", "content": results})
        raise RunFailed("logic", f"no final answer within {MAX_TURNS} model turns")

    def _ask(self, call: Callable[[], T], errors: type[Exception]) -> T:
        """One model call; the SDK has already retried what it retries when it raises."""
        own = int(self._config.get("retry_at_once", 0))
        for attempt in range(own + 1):
            try:
                return call()
            except errors as exc:
                if attempt < own:
                    continue  # the defect: retried at once, no wait on either clock
                raise RunFailed("model", f"{type(exc).__name__}: {exc}") from None
        raise AssertionError("unreachable")

    def _tool(self, name: str, arguments: str) -> Any:
        spec = TOOLS.get(name)
        if spec is None:
            raise RunFailed("model", f"the model called {name!r}, which was not offered")
        try:
            args = json.loads(arguments)
        except ValueError:
            raise RunFailed("model", f"{name}: the arguments are not JSON") from None
        value = args.get(_PARAMS[name]) if isinstance(args, dict) else None
        if not isinstance(value, str) or not value:
            raise RunFailed("model", f"{name}: argument {_PARAMS[name]!r} is missing")
        request = self._http.build_request("GET", spec[0].format(**{_PARAMS[name]: value}))
        self._note({"kind": "tool_call", "method": "GET", "url": str(request.url), "tool": name})
        try:
            response = self._http.send(request)
        except httpx.TransportError as exc:
            raise RunFailed("tool", f"{name}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise RunFailed("tool", f"{name}: status {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise RunFailed("tool", f"{name}: the body is not JSON") from None

    # ------------------------------------------------------------------ trace

    def _traced(self, request: httpx2.Request) -> None:
        self._note({"kind": "model_call", "method": request.method, "url": str(request.url)})

    def _note(self, record: dict[str, Any]) -> None:
        now = None if self._clock is None else float(self._clock.now())
        self._records.append({**record, "t": now})


def build_openai(endpoints: Any) -> SdkRetryAgent:
    """The factory for the openai agent (``toy_agents.sdk_retry:build_openai``)."""
    return SdkRetryAgent(endpoints, "openai")


def build_anthropic(endpoints: Any) -> SdkRetryAgent:
    """The factory for the anthropic agent (``toy_agents.sdk_retry:build_anthropic``)."""
    return SdkRetryAgent(endpoints, "anthropic")


PROVIDER_ERRORS: Sequence[str] = (
    "model_rate_limit",
    "model_overloaded",
    "model_server_error",
    "model_quota_exhausted",
)
"""The provider-error cells of the fault matrix."""


def scenario(provider: Provider) -> dict[str, Any]:
    """A two-turn scenario (the model calls ``get_order``, then answers) with the provider-error
    cells on both model calls, in the scenario file format."""
    anthropic_api = provider == "anthropic"
    return {
        "name": f"sdk_retry_{provider}",
        "description": f"A tool-loop agent on the {provider} SDK relies on the SDK's retries.",
        "agent": f"toy_agents.sdk_retry:build_{provider}",
        "input": {"run_id": "r1", "message": "What did order O-1001 cost?"},
        "model": {
            "format": "anthropic_messages" if anthropic_api else "openai_chat",
            # the anthropic SDK appends /v1/messages itself
            "base_url": "http://model.shakeout.test" + ("" if anthropic_api else "/v1"),
            "turns": [
                {"tool_call": {"name": "get_order", "arguments": {"order_id": "O-1001"}}},
                {"text": "Order O-1001 cost 49.99 EUR."},
            ],
        },
        "tools": {
            "services": {
                "get_order": {
                    "path": "/orders/O-1001",
                    "respond": {"json": {"order_id": "O-1001", "total": 49.99, "currency": "EUR"}},
                }
            }
        },
        "matrix": {"faults": list(PROVIDER_ERRORS), "calls": [1, 2]},
        "expect": {
            "state": "completed",
            "calls_made": ["get_order"],
            # the SDKs' default: one request and two retries
            "budget": {"model_calls": 2, "wall_s": 10, "attempts": 3},
        },
    }
