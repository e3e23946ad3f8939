"""A tool-loop agent for the harness's tests: it hands every tool result to the model, errors too.

The shape most framework agents have: the model names a tool, the agent calls it over HTTP and
sends the result back as a ``tool`` message, until the model answers with text. It speaks the
openai chat format through the real SDK (``max_retries=0``) and httpx. Correct by default: a
transient tool error is retried in code (bounded) before the model sees it; a failure the model
was shown is final (re-asked, it is not run again); an effect is refused while a failed call is
unresolved; a text answer after an unresolved failure ends the run failed (category tool), not
completed. Each name in ``world.config["defects"]`` switches on one defect (:data:`DEFECTS`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import httpx
import openai

DEFECTS: Mapping[str, str] = {
    "reruns_failed_calls": "every tool call the model asks for is run, a failed one again and "
    "again, with no model-call budget (it loops until its test releases it)",
    "acts_after_failure": "an effect is carried out although a call it depends on failed",
    "completes_on_any_answer": "a text answer ends the run completed, whatever failed before",
}
"""Every defect the agent can switch on, with what it breaks."""

TOOLS: Mapping[str, tuple[str, str, bool]] = {
    "get_order": ("GET", "/orders/{order_id}", False),
    "issue_refund": ("POST", "/refunds", True),
}
"""Tool name -> (method, path template, has a side effect)."""

MAX_MODEL_CALLS = 8
MAX_ATTEMPTS = 3
LOOP_CAP = 100_000  # the looping defect still stops somewhere once its test is long gone
TRANSIENT = frozenset({429, 500, 502, 503, 504})


def _spec(name: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {"type": "object", "properties": dict(properties)},
        },
    }


SPECS = [
    _spec("get_order", {"order_id": {"type": "string"}}),
    _spec(
        "issue_refund",
        {"order_id": {"type": "string"}, "amount": {"type": "number"}, "currency": {}},
    ),
]


@dataclass(frozen=True)
class Outcome:
    """Where a run stands (read structurally by the harness)."""

    run_id: str
    state: str
    category: str | None = None
    error: str | None = None
    pending_approval: None = None
    approvals: tuple[()] = ()


@dataclass(frozen=True)
class Trace:
    """The run's trace, kept in full."""

    records: tuple[Mapping[str, Any], ...]
    kept_in_full: bool = True


class _Stop(Exception):
    """Ends the run with a state and category."""

    def __init__(self, state: str, category: str | None, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.category = category


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class ToolLoopAgent:
    """The adapter and the agent in one.

    Args:
        endpoints: anything with ``model_base_url``, ``tools_base_url``, ``api_key``, ``model``.

    Attributes:
        release: set it to stop a ``reruns_failed_calls`` loop (tests set it at teardown).
    """

    def __init__(self, endpoints: Any) -> None:
        self.model_name = str(getattr(endpoints, "model", "shakeout-model"))
        self.model_url = str(endpoints.model_base_url).rstrip("/") + "/chat/completions"
        self._model = openai.OpenAI(
            base_url=str(endpoints.model_base_url),
            api_key=str(getattr(endpoints, "api_key", "sk-loop")),
            max_retries=0,
            timeout=10.0,
        )
        self._http = httpx.Client(base_url=str(endpoints.tools_base_url), timeout=5.0)
        self.release = threading.Event()
        self.defects: frozenset[str] = frozenset()
        self._world: Any = None
        self._runs: dict[str, Outcome] = {}
        self._traces: dict[str, list[Mapping[str, Any]]] = {}

    def begin(self, world: Any) -> None:
        """Bind to a run's world; runs live in memory (this agent is never crashed)."""
        raw = world.config.get("defects", ())
        names = frozenset([raw] if isinstance(raw, str) else raw)
        unknown = sorted(names - set(DEFECTS))
        if unknown:
            raise ValueError(
                f"unknown tool-loop defect(s) {unknown}; choose from {sorted(DEFECTS)}"
            )
        self.defects = names
        self._world = world
        self._runs = {}
        self._traces = {}

    def start(self, payload: Mapping[str, Any]) -> Outcome:
        """Run the ticket's conversation to its end."""
        run_id = "loop-" + hashlib.sha256(str(payload.get("ticket_id")).encode()).hexdigest()[:12]
        self._traces[run_id] = []
        try:
            answer = self._loop(run_id, str(payload.get("message", "")))
            outcome = Outcome(run_id, "completed", error=None if answer else "no answer")
        except _Stop as stop:
            outcome = Outcome(run_id, stop.state, stop.category, f"{stop.category}: {stop}")
        self._runs[run_id] = outcome
        return outcome

    def resume(self, run_id: str, decision: Any = None) -> Outcome:
        """Nothing parks here: the run's outcome as it ended."""
        return self._runs[run_id]

    def trace(self, run_id: str) -> Trace | None:
        """The run's trace, or None for an unknown run."""
        records = self._traces.get(run_id)
        return None if records is None else Trace(tuple(records))

    # ------------------------------------------------------------------ the loop

    def _loop(self, run_id: str, message: str) -> str:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "Refund desk. Use the tools, then answer in text."},
            {"role": "user", "content": message},
        ]
        failed: dict[str, str] = {}  # call key -> why, for failures the model was shown
        looping = "reruns_failed_calls" in self.defects
        budget = LOOP_CAP if looping else MAX_MODEL_CALLS
        for _ in range(budget):
            if looping and self.release.is_set():
                break
            reply = self._ask(run_id, messages)
            calls = list(reply.tool_calls or ())
            if not calls:
                unresolved = "; ".join(failed.values())
                if unresolved and "completes_on_any_answer" not in self.defects:
                    raise _Stop(
                        "failed",
                        "tool",
                        f"the model ended without the data it lacked: {unresolved}",
                    )
                return str(reply.content or "")
            messages.append(reply.model_dump(exclude_none=True))
            for call in calls:
                name, raw = call.function.name, call.function.arguments
                args = json.loads(raw) if raw else {}
                key = f"{name}:{_canonical(args)}"
                if key in failed and not looping:
                    raise _Stop(
                        "failed",
                        "tool",
                        f"the model asked again for {name} {_canonical(args)}, which already "
                        f"failed ({failed[key]}); a failed call is not run again",
                    )
                effect = TOOLS.get(name, ("", "", False))[2]
                if effect and failed and "acts_after_failure" not in self.defects:
                    raise _Stop(
                        "failed",
                        "tool",
                        f"refusing {name}: {'; '.join(failed.values())}, and the effect would "
                        "be built without that data",
                    )
                status, content = self._call(run_id, name, args)
                if status >= 400:
                    failed[key] = f"{name} answered {status}"
                else:
                    # a call that finally worked is no longer missing
                    failed.pop(key, None)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
        raise _Stop("failed", "logic", f"model-call budget of {budget} exhausted")

    def _ask(self, run_id: str, messages: list[dict[str, Any]]) -> Any:
        self._traces[run_id].append({"kind": "model_call", "method": "POST", "url": self.model_url})
        try:
            response = self._model.chat.completions.create(
                model=self.model_name, messages=cast(Any, messages), tools=cast(Any, SPECS)
            )
        except openai.APIError as exc:
            raise _Stop("failed", "model", f"the provider failed: {exc}") from None
        if not response.choices:
            raise _Stop("failed", "model", "the provider sent no choice")
        return response.choices[0].message

    def _call(self, run_id: str, name: str, args: Mapping[str, Any]) -> tuple[int, str]:
        """One tool call, transient failures retried here; ``(status, content for the model)``."""
        if name not in TOOLS:
            return 404, _canonical({"error": f"unknown tool {name!r}", "status": 404})
        method, template, effect = TOOLS[name]
        path = template.format(**{k: v for k, v in args.items() if isinstance(v, str)})
        body = dict(args) if method == "POST" else None
        headers = {"Idempotency-Key": f"{run_id}:{name}"} if effect else {}
        status, raw = 0, b""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._traces[run_id].append(
                {
                    "kind": "tool_call",
                    "method": method,
                    "url": str(self._http.base_url.join(path)),
                    "tool": name,
                }
            )
            try:
                response = self._http.request(method, path, json=body, headers=headers)
                status, raw = response.status_code, response.content
            except httpx.TransportError as exc:
                status, raw = 503, _canonical({"error": type(exc).__name__}).encode()
            if status not in TRANSIENT or attempt == MAX_ATTEMPTS:
                break
            self._world.clock.sleep(0.5 * 2 ** (attempt - 1))
        if status >= 400:
            text = raw.decode("utf-8", "replace")[:200]
            return status, _canonical({"error": f"{name}: {text}", "status": status})
        return status, raw.decode("utf-8", "replace")


def build_adapter(endpoints: Any) -> ToolLoopAgent:
    """The factory the harness calls (``toy_agents.toolloop:build_adapter``)."""
    return ToolLoopAgent(endpoints)
