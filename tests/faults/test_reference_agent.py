"""Every registered fault, applied to the reference agent through the real SDKs, fires, passes its
derived expectation and shows the SDK-level behaviour it should in the agent's trace."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from faults import catalogue  # noqa: F401  (imported to register every fault)
from faults.base import Schedule, Surface, registry
from faults.surfaces import CrashPoint
from harness.plugin.session import judge
from harness.record import Exchange, RunRecord
from harness.run.runner import AdapterCache, endpoints_of, probe, run_variant
from harness.scenario.expect import derive
from harness.scenario.loader import load_scenario
from harness.scenario.matrix import crash_cells
from harness.scenario.spec import CrashMatrix, Scenario
from harness.scenario.variant import Probe, Variant

SEED = 20261124
WALL_S = 10.0
AGENT = "reference_agent:build_adapter"
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
ADAPTERS = AdapterCache()  # one adapter per endpoints: building SDK clients costs 20-60 ms
IN_MEMORY: Mapping[str, Any] = {"persist": False}

TOOL_SCENARIO = "refund_happy"
LEDGER_TOOLS = ("issue_refund", "send_email", "close_ticket")
TOOLS = ("get_order", "get_customer", "get_refund_policy", *LEDGER_TOOLS)
MODEL_SCENARIOS = {  # scenario -> the model call its output faults aim at
    "refund_happy": 2,  # OpenAI chat; call 2 is the decide step, which traces its re-asks
    "matrix_responses_api": 2,
    "matrix_anthropic_messages": 2,
    "matrix_streaming_chat": 1,  # call 1 is the classify step, whose re-asks are not traced
    "matrix_streaming_responses": 1,
    "matrix_streaming_anthropic": 1,
}
STREAM_SCENARIOS = (
    "matrix_streaming_chat",
    "matrix_streaming_responses",
    "matrix_streaming_anthropic",
)
LOOP_SCENARIO = "matrix_lookup_repeat"  # model call 3 follows a lookup_order call in decide
STEPS = ("intake", "classify", "gather", "decide", "approve", "act", "notify", "close")

NOT_APPLICABLE: Mapping[str, str] = {}
"""Faults that cannot act on the reference agent, with the reason (none today: every
registered fault has a call it can break)."""


@dataclass(frozen=True)
class Case:
    """One fault aimed at one call of one scenario."""

    key: str
    scenario: str
    target: str | None = None
    nth: int = 1

    def id(self) -> str:
        where = f"@{self.target}" if self.target else ""
        return f"{self.key}{where}#{self.nth}-{self.scenario}"


# --------------------------------------------------------------------------- scenarios and runs


@cache
def scenario(name: str) -> Scenario:
    if name == "crash_refund":
        base = scenario(TOOL_SCENARIO)
        return base.model_copy(update={"crash_matrix": CrashMatrix(points=tuple(CrashPoint))})
    return load_scenario(SCENARIOS / f"{name}.yaml")


@cache
def probed(name: str) -> Probe:
    sc = scenario(name)
    return probe(sc, ADAPTERS.get(AGENT, endpoints_of(sc)), seed=SEED, wall_s=WALL_S)


def variant(case: Case) -> Variant:
    sc = scenario(case.scenario)
    cls = registry()[case.key]
    if cls.surface is Surface.CRASH:
        label = cls(target=case.target, at=Schedule(nth=case.nth)).label()
        cells = {v.label: v for v in crash_cells(sc, probed(case.scenario))}
        assert label in cells, f"the fault-free run never reached {label}; cells: {sorted(cells)}"
        return cells[label]
    fault = cls(target=case.target, at=Schedule(nth=case.nth))
    label = fault.label()
    return Variant(sc, label, (*sc.build_faults(), fault), derive(sc, fault, label), "fault")


def run(case: Case) -> tuple[Variant, RunRecord]:
    v = variant(case)
    adapter = ADAPTERS.get(AGENT, endpoints_of(v.scenario))
    surface = registry()[case.key].surface
    # SQLite commits dominate a run's time; only restarts (crashes, a decision delivered after
    # a restart) need the state on disk, the SDK behaviour under test does not.
    config = None if surface in (Surface.CRASH, Surface.APPROVAL) else IN_MEMORY
    return v, run_variant(v, adapter, seed=SEED, wall_s=WALL_S, config=config)


def traced(record: RunRecord, kind: str, tool: str | None = None) -> list[Mapping[str, Any]]:
    assert record.trace is not None, "the reference agent exposes its trace"
    assert record.trace.kept_in_full, "fault runs are high risk: the trace is kept in full"
    return [
        r
        for r in record.trace.records
        if r.get("kind") == kind and (tool is None or r.get("tool") == tool)
    ]


def model_exchanges(record: RunRecord) -> list[Exchange]:
    return [e for e in record.exchanges if e.surface == "model"]


def sdk_class(module: Any, name: str, base: type[BaseException]) -> type[BaseException]:
    """The SDK's exception class of that name, checked to be real and of the right family."""
    cls = getattr(module, name, None)
    assert isinstance(cls, type), f"{module.__name__} has no exception class {name!r}"
    assert issubclass(cls, base), f"{module.__name__}.{name} is not a {base.__name__}"
    return cls


# --------------------------------------------------------------------------- tool surface


@dataclass(frozen=True)
class ToolSdk:
    """What the agent's httpx client sees: the agent's error kind, the raised transport class,
    the status it read, and whether the agent retried (transient) or stopped (permanent)."""

    kind: str | None
    transport: str | None = None
    status: int | None = None


TOOL_SDK: Mapping[str, ToolSdk] = {
    "tool_connect_timeout": ToolSdk("Timeout", "ConnectTimeout"),
    "tool_read_timeout": ToolSdk("Timeout", "ReadTimeout"),
    "tool_timeout_after_commit": ToolSdk("Timeout", "ReadTimeout"),
    "tool_connection_reset": ToolSdk("ConnectionFailed", "ReadError"),
    **{
        f"tool_http_{s}": ToolSdk("UnexpectedStatus", status=s)
        for s in (400, 401, 403, 404, 409, 422, 500, 502, 503, 504)
    },
    "tool_rate_limit": ToolSdk("RateLimited", status=429),
    "tool_rate_limit_http_date": ToolSdk("RateLimited", status=429),
    "tool_quota_exhausted": ToolSdk("RateLimited", status=429),
    "tool_empty_body": ToolSdk("MalformedBody"),
    "tool_invalid_json": ToolSdk("MalformedBody"),
    "tool_truncated_body": ToolSdk("MalformedBody"),
    "tool_wrong_content_type": ToolSdk("MalformedBody"),
    "tool_oversize_body": ToolSdk("OversizeBody"),
    "tool_schema_missing_field": ToolSdk("SchemaDrift"),
    "tool_schema_renamed_field": ToolSdk("SchemaDrift"),
    "tool_schema_wrong_type": ToolSdk("SchemaDrift"),
    "tool_latency": ToolSdk(None),
    "tool_duplicate_delivery": ToolSdk(None),
}


def check_tool(case: Case, record: RunRecord) -> None:
    tool = case.target
    assert tool is not None
    sdk = TOOL_SDK[case.key]
    transient = registry()[case.key].transient
    calls = [e for e in record.exchanges if e.tool == tool]
    faulted = calls[case.nth - 1]
    assert any(label.startswith(case.key) for label in faulted.faults)
    first = traced(record, "tool_call", tool)[case.nth - 1]
    error = first["error"]
    if sdk.kind is None:
        assert error is None, f"{case.key} must reach the agent as an ordinary answer: {error}"
    else:
        assert isinstance(error, str), f"{case.key} must reach the agent as an error"
        assert error.startswith(f"{sdk.kind}: {tool}: "), error
    if sdk.transport is not None:
        # The tool client is plain httpx: the raised class must be httpx's own.
        sdk_class(httpx, sdk.transport, httpx.TransportError)
        assert f": {sdk.transport} calling " in str(error), error
        assert first["status"] is None
        assert faulted.status is None
    else:
        # What the agent read is what the world served.
        assert first["status"] == faulted.status
        if sdk.status is not None:
            assert faulted.status == sdk.status
        elif sdk.kind is not None:
            assert faulted.status is not None
            assert 200 <= faulted.status < 300
    if sdk.kind is None:
        assert len(calls) == case.nth, "an ordinary answer is not retried"
    elif transient:
        assert len(calls) == case.nth + 1, f"transient {case.key} is retried exactly once"
        retry = calls[case.nth]
        assert retry.request.body == faulted.request.body
        assert retry.request.header("Idempotency-Key") == faulted.request.header("Idempotency-Key")
        if case.key.startswith("tool_rate_limit"):
            assert retry.t - faulted.t >= 2.0, "Retry-After (2 s) is honoured on the fake clock"
    else:
        assert len(calls) == case.nth, f"permanent {case.key} must not be retried"
    if case.key == "tool_latency":
        assert first["duration_s"] >= 5.0, "the latency shows in the traced duration"
    if tool in LEDGER_TOOLS and case.key in (
        "tool_timeout_after_commit",
        "tool_duplicate_delivery",
    ):
        effects = [e for e in record.effects if e.tool == tool]
        assert len(effects) == 1, f"{tool} committed {len(effects)} effects"
        assert effects[0].replays == 1, (
            f"{tool}: the second delivery must be deduped by its idempotency key: {effects}"
        )


# --------------------------------------------------------------------------- model surface


def family(sc: Scenario) -> str:
    return "anthropic" if sc.model.format == "anthropic_messages" else "openai"


PROVIDER_SDK: Mapping[str, Mapping[str, tuple[str | None, int]]] = {
    # fault -> SDK family -> (exception class the SDK raised, HTTP status)
    "model_rate_limit": {"openai": ("RateLimitError", 429), "anthropic": ("RateLimitError", 429)},
    "model_server_error": {
        "openai": ("InternalServerError", 500),
        "anthropic": ("InternalServerError", 500),
    },
    "model_overloaded": {
        "openai": ("InternalServerError", 503),
        "anthropic": ("OverloadedError", 529),
    },
    # The agent's quota message does not name the SDK class (only status and code).
    "model_quota_exhausted": {"openai": (None, 429), "anthropic": ("PaymentRequiredError", 402)},
}


def _args(response: Mapping[str, Any]) -> str:
    return str(response["tool_calls"][0]["arguments"])


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


OUTPUT_SDK: Mapping[str, tuple[str, Callable[[Mapping[str, Any]], bool]]] = {
    # fault -> (the agent's ModelError kind, what the SDK parsed the faulty answer into)
    "model_args_not_json": ("InvalidJSON", lambda r: not _parses(_args(r))),
    "model_args_not_object": ("InvalidJSON", lambda r: isinstance(json.loads(_args(r)), list)),
    "model_content_filter": (
        "Refusal",
        lambda r: r["finish"] in ("content_filter", "refusal") and not r["tool_calls"],
    ),
    "model_empty": ("EmptyAnswer", lambda r: r["empty"] is True and not r["tool_calls"]),
    "model_extra_argument": (
        "SchemaViolation",
        lambda r: "override_policy" in json.loads(_args(r)),
    ),
    "model_missing_argument": (
        "SchemaViolation",
        lambda r: len(json.loads(_args(r))) == 1,
    ),
    "model_no_tool_use": (
        "SchemaViolation",
        lambda r: not r["tool_calls"] and bool(r["text"]) and r["finish"] == "stop",
    ),
    "model_refusal": ("Refusal", lambda r: r["refusal"] is not None and not r["tool_calls"]),
    "model_tool_call_without_id": ("MissingToolCallId", lambda r: not r["tool_calls"][0]["id"]),
    "model_truncated": ("TruncatedOutput", lambda r: r["finish"] == "length"),
    "model_length_valid_json": (
        "TruncatedOutput",
        lambda r: r["finish"] == "length" and bool(r["tool_calls"]) and _parses(_args(r)),
    ),
    "model_unknown_tool": ("UnknownTool", lambda r: r["tool_calls"][0]["name"] == "web_search"),
    "model_wrong_argument_type": (
        "SchemaViolation",
        lambda r: any(isinstance(v, list) for v in json.loads(_args(r)).values()),
    ),
}


def check_model(case: Case, record: RunRecord) -> None:
    sc = scenario(case.scenario)
    exchanges = model_exchanges(record)
    faulted = exchanges[case.nth - 1]
    assert any(label.startswith(case.key) for label in faulted.faults)
    call = traced(record, "model_call")[case.nth - 1]
    after = exchanges[case.nth] if len(exchanges) > case.nth else None
    if case.key in PROVIDER_SDK:
        check_provider(case, sc, call, faulted, after)
    elif case.key == "model_repeat_call":
        previous = traced(record, "model_call")[case.nth - 2]
        assert call["response"]["tool_calls"] == previous["response"]["tool_calls"]
        final = record.final
        assert final is not None
        assert str(final.error).startswith("NoProgress: ")
        assert after is None, "no progress is permanent: nothing is asked after it"
    elif case.key == "model_progress_loop":
        looped = [c["response"]["tool_calls"] for c in traced(record, "model_call")[case.nth - 1 :]]
        assert len(looped) > 2
        assert len({json.dumps(c, sort_keys=True) for c in looped}) == len(looped), looped
        final = record.final
        assert final is not None
        assert "model calls exhausted" in str(final.error), final.error
    else:
        kind, parsed = OUTPUT_SDK[case.key]
        check_output(case, kind, parsed, call, faulted, after)


def check_provider(
    case: Case,
    sc: Scenario,
    call: Mapping[str, Any],
    faulted: Exchange,
    after: Exchange | None,
) -> None:
    name, status = PROVIDER_SDK[case.key][family(sc)]
    assert faulted.status == status
    assert call["status"] == status
    error = str(call["error"])
    assert error.startswith("ProviderError: "), error
    if name is not None:
        module: Any = anthropic if family(sc) == "anthropic" else openai
        sdk_class(module, name, module.APIStatusError)
        assert f"({name}" in error, f"the SDK should raise {name}: {error}"
    else:
        assert "insufficient_quota" in error, error
    if registry()[case.key].transient:
        assert after is not None, f"transient {case.key} is retried"
        assert after.request.body == faulted.request.body, "the retry sends the same request"
    else:
        assert after is None, f"permanent {case.key} must not be retried"


def check_output(
    case: Case,
    kind: str,
    parsed: Callable[[Mapping[str, Any]], bool],
    call: Mapping[str, Any],
    faulted: Exchange,
    after: Exchange | None,
) -> None:
    # The SDK parsed the faulty answer without raising: the fault is in the content.
    assert call["error"] is None
    assert call["status"] == 200
    assert faulted.status == 200
    response = call["response"]
    assert response is not None
    assert parsed(response), f"{case.key}: the SDK parsed {response}"
    # A corrective re-ask names the agent's ModelError class to the model.
    assert after is not None
    assert f"rejected ({kind})".encode() in after.request.body.replace(b"\\", b""), (
        f"the re-ask after {case.key} should name {kind}"
    )


# --------------------------------------------------------------------------- stream surface


STREAM_SDK: Mapping[str, Mapping[str, str | None]] = {
    # fault -> wire format -> the error the agent traced (the SDK's class where one was raised)
    "stream_cut_mid_event": {
        "openai_chat": "APIConnectionError",
        "openai_responses": "APIConnectionError",
        "anthropic_messages": "RemoteProtocolError",
    },
    "stream_error_event": {
        "openai_chat": "APIError",
        "openai_responses": "the model stream reported error",  # an event, not an exception
        "anthropic_messages": "APIStatusError",
    },
    "stream_no_terminator": {
        "openai_chat": None,  # the SDK ends quietly without [DONE]
        "openai_responses": "ended before response.completed",
        "anthropic_messages": None,  # message_delta carried the stop reason already
    },
    "stream_trickle": {"openai_chat": None, "openai_responses": None, "anthropic_messages": None},
    "stream_partial_tool_json": {
        "openai_chat": None,
        "openai_responses": None,
        "anthropic_messages": None,
    },
}
STREAM_CLASSES: Mapping[str, tuple[Any, type[BaseException]]] = {
    "APIConnectionError": (openai, openai.APIError),
    "APIError": (openai, openai.OpenAIError),
    "RemoteProtocolError": (httpx2, httpx2.TransportError),
    "APIStatusError": (anthropic, anthropic.APIError),
}


def check_stream(case: Case, record: RunRecord) -> None:
    fmt = scenario(case.scenario).model.format
    exchanges = model_exchanges(record)
    faulted = exchanges[case.nth - 1]
    assert any(label.startswith(case.key) for label in faulted.faults)
    assert faulted.stream
    call = traced(record, "model_call")[case.nth - 1]
    after = exchanges[case.nth] if len(exchanges) > case.nth else None
    expected = STREAM_SDK[case.key][fmt]
    if expected is None:
        assert call["error"] is None, f"{case.key} on {fmt}: {call['error']}"
    else:
        if expected in STREAM_CLASSES:
            module, base = STREAM_CLASSES[expected]
            sdk_class(module, expected, base)
        assert expected in str(call["error"]), f"{case.key} on {fmt}: {call['error']}"
        # A broken stream is a transient provider failure: the same request is sent again.
        assert after is not None, f"{case.key} on {fmt} is retried"
        assert after.request.body == faulted.request.body
    if case.key == "stream_error_event" and fmt == "anthropic_messages":
        assert call["status"] == 200, "anthropic reports an in-stream error with status 200"
    if case.key == "stream_trickle":
        assert call["duration_s"] >= 0.5, "the slow stream shows in the traced duration"
    if case.key == "stream_partial_tool_json":
        response = call["response"]
        assert response is not None
        assert not _parses(_args(response))


# --------------------------------------------------------------------------- approval and crash


APPROVAL_SDK: Mapping[str, str] = {
    # fault -> what the reviewer's delivery must lead to at the gate
    "approval_deny": "denied: nothing refunded",
    "approval_never": "undecided: expired, nothing refunded",
    "approval_changed_args": "bound to other arguments: refused, nothing refunded",
    "approval_duplicate": "delivered twice: the second refused, refunded once",
    "approval_after_restart": "delivered to a restarted agent: refunded once",
    "approval_concurrent_duplicate": "delivered twice at once: refunded once",
    "approval_late": "approved after its expiry: refused, expired, nothing refunded",
}


def check_approval(case: Case, record: RunRecord) -> None:
    verdicts = [d.verdict for d in record.deliveries]
    refusals = [str(r["reason"]) for r in traced(record, "approval_refused")]
    refunds = record.committed_effects()["issue_refund"]
    final = record.final
    assert final is not None
    if case.key == "approval_deny":
        assert verdicts == ["deny"]
        assert refunds == 0
    elif case.key == "approval_never":
        assert verdicts == ["never"]
        assert refunds == 0
        assert "expired" in str(final.error)
    elif case.key == "approval_changed_args":
        assert verdicts[0] == "approve"
        assert not record.deliveries[0].bound_to_requested
        assert any("bound to" in reason for reason in refusals), refusals
        assert refunds == 0
    elif case.key == "approval_duplicate":
        assert verdicts == ["approve", "approve"]
        assert len(refusals) == 1
        assert refunds == 1
    elif case.key == "approval_after_restart":
        assert record.restarts == 1
        assert refunds == 1
    elif case.key == "approval_late":
        late = record.deliveries[0]
        assert late.verdict == "approve"
        assert late.expires_at is not None
        assert late.t > late.expires_at
        assert any("expired" in reason for reason in refusals), refusals
        assert refunds == 0
    else:
        assert case.key == "approval_concurrent_duplicate"
        assert verdicts == ["approve", "approve"]
        assert refunds == 1


CRASH_TARGETS: Mapping[CrashPoint, tuple[str | None, ...]] = {
    CrashPoint.BEFORE_STEP: STEPS,
    CrashPoint.AFTER_CHECKPOINT: STEPS,
    CrashPoint.AFTER_EFFECT: LEDGER_TOOLS,
    CrashPoint.WHILE_PARKED: (None,),
    CrashPoint.TERMINAL_WRITE: ("completed",),
}


def check_crash(case: Case, record: RunRecord) -> None:
    point = registry()[case.key].point  # type: ignore[attr-defined]
    where = case.target if case.target is not None else str(case.nth)
    assert f"{point.value}:{where}" in record.crashes
    assert record.restarts >= 1, "the crashed run is resumed by a fresh adapter"
    assert dict(record.committed_effects()) == dict.fromkeys(LEDGER_TOOLS, 1)
    assert all(e.replays == 0 or point is CrashPoint.AFTER_EFFECT for e in record.effects)


# --------------------------------------------------------------------------- the cases


def _cases() -> Iterator[Any]:
    for key, cls in sorted(registry().items()):
        if key in NOT_APPLICABLE:
            continue
        for case in _cases_of(key, cls.surface):
            yield pytest.param(case, id=case.id())


def _cases_of(key: str, surface: Surface) -> Iterator[Case]:
    if surface is Surface.TOOL:
        for tool in TOOLS:
            yield Case(key, TOOL_SCENARIO, tool)
    elif surface is Surface.MODEL:
        if key in ("model_repeat_call", "model_progress_loop"):
            yield Case(key, LOOP_SCENARIO, nth=3)
            return
        for name, nth in MODEL_SCENARIOS.items():
            # provider errors at the first call; output faults where the scenario aims them
            yield Case(key, name, nth=1 if key in PROVIDER_SDK else nth)
    elif surface is Surface.STREAM:
        for name in STREAM_SCENARIOS:
            for nth in (1, 2):
                yield Case(key, name, nth=nth)
    elif surface is Surface.APPROVAL:
        yield Case(key, TOOL_SCENARIO)
    elif surface is Surface.CRASH:
        point = registry()[key].point  # type: ignore[attr-defined]
        for target in CRASH_TARGETS[point]:
            yield Case(key, "crash_refund", target)


CASES = list(_cases())
CHECKS: Mapping[Surface, Callable[[Case, RunRecord], None]] = {
    Surface.TOOL: check_tool,
    Surface.MODEL: check_model,
    Surface.STREAM: check_stream,
    Surface.APPROVAL: check_approval,
    Surface.CRASH: check_crash,
}


@pytest.mark.parametrize("case", CASES)
def test_fault_through_the_real_sdks(case: Case) -> None:
    v, record = run(case)
    result = judge(v, record, f"tests/faults/test_reference_agent.py -k '{case.id()}'")
    assert case.key in {f.key for f in record.firings}, f"{case.key} never fired"
    assert result.verdict == "pass", result.explain()
    final = record.final
    assert final is not None
    assert final.state.value == v.expect.state, result.explain()
    assert final.category == v.expect.category, result.explain()
    CHECKS[registry()[case.key].surface](case, record)


def test_every_registered_fault_is_covered() -> None:
    keys = set(registry())
    assert len(keys) >= 45, f"the catalogue has {len(keys)} faults, issue 4 asks for 45"
    covered = {p.values[0].key for p in CASES}
    assert keys == covered | set(NOT_APPLICABLE), (
        f"faults neither run nor listed in NOT_APPLICABLE: {sorted(keys - covered)}"
    )
    assert not covered & set(NOT_APPLICABLE)
    tables: dict[Surface, Mapping[str, object]] = {
        Surface.TOOL: TOOL_SDK,
        Surface.MODEL: {
            **PROVIDER_SDK,
            **OUTPUT_SDK,
            "model_repeat_call": (),
            "model_progress_loop": (),
        },
        Surface.STREAM: STREAM_SDK,
        Surface.APPROVAL: APPROVAL_SDK,
        Surface.CRASH: {k: () for k, c in registry().items() if c.surface is Surface.CRASH},
    }
    for key in covered:
        surface = registry()[key].surface
        assert key in tables[surface], f"{key} runs but its SDK-level behaviour is not stated"
