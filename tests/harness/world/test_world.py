"""Tests for harness.world.world: routing, faults by surface, crashes after effects, the record."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from faults.base import Category, Schedule
from faults.crash import CrashAfterEffect
from faults.model import ModelRateLimit
from faults.stream import StreamTrickle
from faults.surfaces import (
    AgentCrash,
    FaultFiring,
    HttpResponse,
    ModelAnswer,
    ToolCallContext,
    ToolCallSpec,
    ToolFault,
    ToolResult,
    TransportError,
    TransportFailure,
)
from faults.tool import ToolHttp503, ToolTruncatedBody
from harness.adapter import Endpoints
from harness.record import Blocked
from harness.world.clock import FakeClock
from harness.world.intercept import InterceptionError, NetworkBlockedError, SubprocessBlockedError
from harness.world.model import ScriptedModel
from harness.world.services import Ledger, Sequence, ServiceDefinitionError, Static, ToolService
from harness.world.world import RECORD_BODY_LIMIT, World

ENDPOINTS = Endpoints("http://model.shakeout.test/v1", "http://tools.shakeout.test/api")
TOOLS = "http://tools.shakeout.test/api"
MESSAGES: list[Any] = [{"role": "user", "content": "refund order A-1"}]
TURNS = (
    ModelAnswer(tool_calls=(ToolCallSpec("get_order", '{"order_id": "A-1"}'),)),
    ModelAnswer(tool_calls=(ToolCallSpec("refund", '{"order_id": "A-1", "amount": 5}'),)),
    ModelAnswer(text="Refunded."),
)
ORDER = HttpResponse.of_json(200, {"order_id": "A-1", "total": 5})
REFUNDED = HttpResponse.of_json(201, {"refund_id": "r-1"})


class DoubleCall(ToolFault):
    """Test fault: calls the service twice, then times out."""

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        ctx.call_service()
        ctx.call_service()
        return TransportError(TransportFailure.READ_TIMEOUT)


class Broken(ToolFault):
    """Test fault with a bug in it."""

    def apply(self, ctx: ToolCallContext) -> ToolResult:
        raise KeyError("fault bug")


# set after class creation so the test faults stay out of the global registry
for cls, key in ((DoubleCall, "test_world_double_call"), (Broken, "test_world_broken")):
    cls.key = key
    cls.category = Category.TOOL
    cls.transient = True


@pytest.fixture(scope="module")
def llm() -> openai.OpenAI:
    return openai.OpenAI(base_url=ENDPOINTS.model_base_url, api_key="k", max_retries=0)


@pytest.fixture(scope="module")
def http() -> httpx2.Client:
    return httpx2.Client(verify=False)


def world(*faults: Any, seed: int = 7, stream: bool = False, turns: Any = TURNS) -> World:
    services = [
        ToolService("get_order", "GET", Static(ORDER), path_regex=r"/orders/[\w-]+"),
        ToolService("refund", "POST", Ledger(REFUNDED), path="/refunds"),
        ToolService("status", "GET", Sequence([HttpResponse(503), HttpResponse(200)]), path="/s"),
    ]
    model = ScriptedModel("openai_chat", turns, stream=stream)
    return World(ENDPOINTS, model, services, faults, seed, FakeClock(1000.0))


def refund(http: httpx2.Client, key: str | None = "k-1") -> httpx2.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return http.post(TOOLS + "/refunds", json={"order_id": "A-1", "amount": 5}, headers=headers)


def run_agent(llm: openai.OpenAI, http: httpx2.Client) -> list[str]:
    """A tiny agent loop: ask the model, call the tool it names, until it answers in text."""
    said: list[str] = []
    messages = list(MESSAGES)
    for _ in range(5):
        got = llm.chat.completions.create(model="shakeout-model", messages=messages)
        message = got.choices[0].message
        if not message.tool_calls:
            said.append(message.content or "")
            return said
        call = message.tool_calls[0]
        name = call.function.name  # type: ignore[union-attr]
        said.append(name)
        if name == "get_order":
            result = http.get(TOOLS + "/orders/A-1").json()
        else:
            result = refund(http).json()
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    return said


def test_a_fault_free_run_is_routed_and_recorded(llm: openai.OpenAI, http: httpx2.Client) -> None:
    w = world()
    with w.active():
        said = run_agent(llm, http)
    assert said == ["get_order", "refund", "Refunded."]
    ex = w.exchanges
    assert [(e.seq, e.surface, e.tool, e.call_index) for e in ex] == [
        (1, "model", None, 1),
        (2, "tool", "get_order", 1),
        (3, "model", None, 2),
        (4, "tool", "refund", 1),
        (6, "model", None, 3),  # the refund's commit is event 5
    ]
    assert ex[1].status == 200
    assert json.loads(ex[1].response_body) == {"order_id": "A-1", "total": 5}
    assert ex[0].request.path == "/v1/chat/completions"
    assert all(e.t == 1000.0 and e.faults == () and not e.crashed for e in ex)
    assert w.firings == ()
    assert w.unrouted == ()
    assert w.model_exhausted == ()
    assert w.harness_errors == ()
    assert [(e.tool, e.idempotency_key) for e in w.effects] == [("refund", "k-1")]
    assert [(e.request_seq, e.seq) for e in w.effects] == [(4, 5)]
    assert isinstance(w.exchanges, tuple)


def test_tool_faults_count_calls_per_tool(http: httpx2.Client) -> None:
    w = world(ToolHttp503(target="get_order", at=Schedule(nth=2)))
    with w.active():
        codes = [http.get(TOOLS + "/orders/A-1").status_code for _ in range(3)]
        refund(http)
    assert codes == [200, 503, 200]
    label = "tool_http_503@get_order#2"  # firings and exchanges carry the fault's label
    assert w.firings == (
        FaultFiring("tool_http_503", ToolHttp503.surface, "get_order", 2, {}, label),
    )
    assert w.exchanges[1].faults == (label,)


def test_an_untargeted_tool_fault_hits_every_tool(http: httpx2.Client) -> None:
    w = world(ToolHttp503())  # default schedule: the first call of each tool
    with w.active():
        assert http.get(TOOLS + "/orders/A-1").status_code == 503
        assert refund(http).status_code == 503
        assert refund(http).status_code == 201
    assert [f.where for f in w.firings] == ["get_order", "refund"]
    assert len(w.effects) == 1  # the 503 applied no effect


def test_a_fault_that_calls_the_service_commits_once(http: httpx2.Client) -> None:
    w = world(DoubleCall(target="refund"), ToolTruncatedBody(target="refund", at=Schedule(nth=2)))
    with w.active():
        with pytest.raises(httpx2.ReadTimeout):
            refund(http, "k-1")
        truncated = refund(http, "k-2")
    assert truncated.status_code == 201
    assert len(truncated.content) == len(REFUNDED.body) // 2
    assert [e.idempotency_key for e in w.effects] == ["k-1", "k-2"]
    assert w.exchanges[0].error == TransportFailure.READ_TIMEOUT.value
    assert w.exchanges[0].status is None


def test_crash_after_effect_commits_then_crashes_and_a_retry_replays(
    llm: openai.OpenAI, http: httpx2.Client
) -> None:
    w = world(CrashAfterEffect(target="refund"))
    with w.active():
        with pytest.raises(AgentCrash, match="after the effect of refund call 1"):
            refund(http)
        assert refund(http).status_code == 201  # the resumed agent retries with the same key
    ledger = w.ledgers["refund"]
    assert ledger.committed_count("k-1") == 1
    assert ledger.replay_count("k-1") == 1
    crashed = [e for e in w.exchanges if e.crashed]
    assert [(e.tool, e.status, e.faults) for e in crashed] == [
        ("refund", 201, ("crash_after_effect@refund#1",))
    ]
    assert w.firings[0].detail == {"point": "after_effect"}


def test_an_untargeted_crash_counts_effectful_calls_only(http: httpx2.Client) -> None:
    w = world(CrashAfterEffect(at=Schedule(nth=2)))
    with w.active():
        http.get(TOOLS + "/orders/A-1")
        refund(http, "k-1")
        http.get(TOOLS + "/orders/A-1")
        with pytest.raises(AgentCrash):
            refund(http, "k-2")
    assert [e.idempotency_key for e in w.effects] == ["k-1", "k-2"]


def test_crash_propagates_through_the_sdk_and_the_world_can_be_entered_again(
    http: httpx2.Client,
) -> None:
    w = world(CrashAfterEffect(target="refund"))
    with pytest.raises(AgentCrash), w.active():
        refund(http)
    with w.active():  # the resumed run, same world, same record
        refund(http)
    assert len(w.exchanges) == 2
    assert len(w.effects) == 1


def test_unrouted_requests_fail_closed_and_are_recorded(
    llm: openai.OpenAI, http: httpx2.Client
) -> None:
    w = world()
    with w.active():
        with pytest.raises(httpx2.ConnectError, match="no scenario route for DELETE"):
            http.delete(TOOLS + "/refunds")
        with pytest.raises(httpx2.ConnectError):
            http.get("https://api.example.com/v1/anything")
        with pytest.raises(openai.APIConnectionError):
            llm.models.list()
    assert [r.url for r in w.unrouted] == [
        TOOLS + "/refunds",
        "https://api.example.com/v1/anything",
        ENDPOINTS.model_base_url + "/models",
    ]
    unrouted = [e for e in w.exchanges if e.surface == "unrouted"]
    assert [e.call_index for e in unrouted] == [1, 2, 3]
    assert all(e.error is not None and e.status is None for e in unrouted)


def test_an_exhausted_script_is_reported_through_the_sdk(llm: openai.OpenAI) -> None:
    w = world(turns=TURNS[2:])
    with w.active():
        llm.chat.completions.create(model="m", messages=MESSAGES)
        with pytest.raises(openai.InternalServerError, match="no turn left for request 2"):
            llm.chat.completions.create(model="m", messages=MESSAGES)
    assert w.model_exhausted == (2,)
    assert w.exchanges[-1].status == 500


def test_model_faults_insert_and_the_clock_runs_on_slow_streams(llm: openai.OpenAI) -> None:
    w = world(ModelRateLimit(at=Schedule(nth=1)), StreamTrickle(at=Schedule(nth=2)))
    with w.active():
        with pytest.raises(openai.RateLimitError):
            llm.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        chunks = list(llm.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    first = chunks[1].choices[0].delta.tool_calls
    assert first is not None
    assert first[0].function.name == "get_order"  # type: ignore[union-attr]
    events = w.exchanges[1].response_body.split(b"\n\n")[:-2]
    assert w.clock.now() == 1000.0 + 0.5 * len(events)
    assert [f.key for f in w.firings] == ["model_rate_limit", "stream_trickle"]
    assert w.exchanges[1].stream
    assert w.exchanges[1].response_body.endswith(b"data: [DONE]\n\n")
    # the provider error lets SDKs retry (no x-should-retry), after 20 ms of real sleep
    headers = dict(w.exchanges[0].headers)
    assert (headers["retry-after-ms"], headers["retry-after"]) == ("20", "1")
    assert "x-should-retry" not in headers


def test_anthropic_requests_route_below_a_base_without_v1() -> None:
    endpoints = Endpoints("http://model.shakeout.test", TOOLS)
    model = ScriptedModel("anthropic_messages", (ModelAnswer(text="hi"),))
    w = World(endpoints, model, [], [], 1, FakeClock())
    client = anthropic.Anthropic(base_url=endpoints.model_base_url, api_key="k", max_retries=0)
    with w.active():
        got = client.messages.create(model="shakeout-model", max_tokens=8, messages=MESSAGES)
    assert got.content[0].text == "hi"  # type: ignore[union-attr]
    assert w.exchanges[0].request.path == "/v1/messages"


def test_same_seed_same_firings(http: httpx2.Client) -> None:
    def firings(seed: int) -> tuple[int, ...]:
        w = world(ToolHttp503(target="get_order", at=Schedule(probability=0.5)), seed=seed)
        with w.active():
            for _ in range(16):
                http.get(TOOLS + "/orders/A-1")
        return tuple(f.call_index for f in w.firings)

    assert firings(3) == firings(3)
    assert firings(3) != firings(4)  # these two seeds differ within 16 draws


def test_concurrent_calls_get_distinct_indices(http: httpx2.Client) -> None:
    w = world()

    def work() -> None:
        for _ in range(10):
            http.get(TOOLS + "/orders/A-1")

    with w.active():
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(e.call_index for e in w.exchanges) == list(range(1, 41))
    assert [e.seq for e in w.exchanges] == list(range(1, 41))


def test_fault_bugs_are_harness_errors(http: httpx2.Client) -> None:
    w = world(Broken(target="get_order"))
    with w.active(), pytest.raises(KeyError):
        http.get(TOOLS + "/orders/A-1")
    assert [type(e) for e in w.harness_errors] == [KeyError]


def test_large_bodies_are_truncated_in_the_record(http: httpx2.Client) -> None:
    big = HttpResponse(200, (), b"x" * (RECORD_BODY_LIMIT + 10))
    services = [ToolService("big", "GET", Static(big), path="/big")]
    w = World(ENDPOINTS, ScriptedModel("openai_chat", ()), services, [], 1)
    with w.active():
        assert len(http.get(TOOLS + "/big").content) == RECORD_BODY_LIMIT + 10
    assert len(w.exchanges[0].response_body) == RECORD_BODY_LIMIT


def test_refused_attempts_to_leave_are_numbered_events_of_the_log(http: httpx2.Client) -> None:
    w = world()
    with w.active():
        assert http.get(TOOLS + "/orders/A-1").status_code == 200
        w.clock.advance(5.0)
        with pytest.raises(NetworkBlockedError):
            socket.getaddrinfo("leak.example", 443)
        with pytest.raises(SubprocessBlockedError):
            subprocess.run(["true"], check=False)
    blocked = w.log.of(Blocked)
    assert [(b.what, b.target, b.seq, b.t) for b in blocked] == [
        ("getaddrinfo", "leak.example", 2, 1005.0),
        ("subprocess", "true", 3, 1005.0),
    ]
    assert w.blocked == ("leak.example", "true")


def test_a_world_that_allows_subprocesses_lets_them_run() -> None:
    services = [ToolService("get_order", "GET", Static(ORDER), path_regex=r"/orders/[\w-]+")]
    model = ScriptedModel("openai_chat", TURNS)
    w = World(ENDPOINTS, model, services, (), 7, FakeClock(1000.0), allow_subprocess=True)
    with w.active():
        done = subprocess.run(["sh", "-c", "echo ran"], capture_output=True, text=True, check=True)
    assert done.stdout == "ran\n"
    assert w.log.of(Blocked) == ()


def test_two_worlds_cannot_be_active_at_once() -> None:
    with world().active(), pytest.raises(InterceptionError), world().active():
        pass  # pragma: no cover


def test_duplicate_tool_names_are_refused() -> None:
    services = [ToolService("t", "GET", Static(ORDER), path=p) for p in ("/a", "/b")]
    with pytest.raises(ServiceDefinitionError, match=r"duplicates: \['t'\]"):
        World(ENDPOINTS, ScriptedModel("openai_chat", ()), services, [], 1)
