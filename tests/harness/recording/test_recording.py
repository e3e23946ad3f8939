"""Tests for harness.recording.recorder, harness.recording.cassette and
harness.recording.cassette_import: record a live session with vcrpy, read the cassette back and
turn it into a scenario.

The live session is made local: a loopback HTTP server answers like an OpenAI-compatible model
and like the refund tools, and the real reference agent runs against it with a real API key in
its headers. The converted scenario then runs through the harness, with and without a fault.
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from faults.surfaces import ModelAnswer, ToolCallSpec
from harness.adapter import Decision
from harness.cli import main as cli_main
from harness.plugin.session import RunResult, judge
from harness.recording.cassette import CassetteError
from harness.recording.cassette_import import (
    cassette_to_scenario,
    import_cassette_main,
    scenario_yaml,
)
from harness.recording.recorder import DEFAULT_SCRUB, REDACTED, record_session
from harness.run.runner import AdapterCache, endpoints_of, run_variant
from harness.scenario.loader import SCHEMA_LINE, load_scenario
from harness.scenario.matrix import base_variant
from harness.scenario.reading import MAX_FILE_BYTES
from harness.scenario.spec import Scenario
from harness.world.wire import encoder_for
from reference_agent import RefundDesk, RefundDeskAdapter, Settings

SECRET = "sk-live-secret"
INPUT = {
    "ticket_id": "T-1001",
    "customer_id": "C-42",
    "message": "Hello, order O-1001 arrived broken. I would like a refund please.",
}
CLASSIFY = {"intent": "refund", "order_id": "O-1001"}
PROPOSE = {"amount": 49.99, "reason": "The item arrived broken; refund the full price."}
TOOL_ANSWERS: dict[tuple[str, str], tuple[int, Any]] = {
    ("GET", "/orders/O-1001"): (
        200,
        {
            "order_id": "O-1001",
            "customer_id": "C-42",
            "total": 49.99,
            "currency": "EUR",
            "placed_at": "2025-12-20",
            "refunded_amount": 0,
        },
    ),
    ("GET", "/customers/C-42"): (
        200,
        {"customer_id": "C-42", "email": "customer1@example.com", "name": "Customer 1"},
    ),
    ("GET", "/policy/refunds"): (200, {"window_days": 30, "max_refund": 500}),
    ("POST", "/refunds"): (201, {"refund_id": "R-5001", "status": "issued"}),
    ("POST", "/emails"): (202, {"message_id": "M-9001"}),
    ("PATCH", "/tickets/T-1001"): (200, {"ticket_id": "T-1001", "status": "closed"}),
}
MAX_REQUESTS = 20  # a full run makes 8; the server refuses to serve past this bound
AGENT = "reference_agent:build_adapter"


# --------------------------------------------------------------------------- the live side


@dataclass
class Seen:
    """One request the loopback server answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class _Handler(http.server.BaseHTTPRequestHandler):
    # one write per response and no Nagle: otherwise each answer waits ~40 ms on delayed ACK
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.0"
    server: _LiveServer

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.seen.append(Seen(self.command, self.path, headers, body))
        extra = [("x-echoed-key", headers.get("authorization", ""))]
        if self.path == "/v1/chat/completions":
            # a provider that sets a session cookie and echoes the key: both must be scrubbed
            extra.append(("set-cookie", f"session={SECRET}-cookie; Path=/"))
            status, ctype, payload = _model_answer(body)
        elif (self.command, self.path) in TOOL_ANSWERS:
            status, answer = TOOL_ANSWERS[(self.command, self.path)]
            ctype, payload = "application/json", json.dumps(answer).encode()
        else:
            status, ctype = 404, "application/json"
            payload = json.dumps({"error": f"no route {self.command} {self.path}"}).encode()
        head = [f"HTTP/1.0 {status} {self.responses[status][0]}"]
        head += [f"content-type: {ctype}", f"content-length: {len(payload)}"]
        head += [f"{k}: {v}" for k, v in extra]
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)


def _model_answer(body: Any) -> tuple[int, str, bytes]:
    offered = [t["function"]["name"] for t in body.get("tools", [])]
    if "classify_request" in offered:
        call = ToolCallSpec("classify_request", json.dumps(CLASSIFY), "call_live_1")
    elif "propose_refund" in offered:
        call = ToolCallSpec("propose_refund", json.dumps(PROPOSE), "call_live_2")
    else:
        error = {"error": {"message": f"unexpected tools {offered}", "type": "invalid_request"}}
        return 400, "application/json", json.dumps(error).encode()
    answer = ModelAnswer(tool_calls=(call,))
    encoder = encoder_for("openai_chat")
    if body.get("stream"):
        plan = encoder.stream(answer, model="live-model", seq=1, created=1_765_000_000)
        return 200, "text/event-stream", b"".join(plan.events) + plan.terminator
    response = encoder.response(answer, model="live-model", seq=1, created=1_765_000_000)
    return 200, "application/json", response.body


class _LiveServer(http.server.HTTPServer):
    seen: list[Seen]


@dataclass
class LiveServer:
    """The loopback model + tools server, serving at most ``MAX_REQUESTS`` requests."""

    server: _LiveServer
    thread: threading.Thread
    stop: threading.Event

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def seen(self) -> list[Seen]:
        return self.server.seen


@pytest.fixture
def live() -> Iterator[LiveServer]:
    """A loopback server on 127.0.0.1, shut down in teardown."""
    server = _LiveServer(("127.0.0.1", 0), _Handler)
    server.seen = []
    server.timeout = 0.05  # handle_request returns this often to see the stop flag
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set() and len(server.seen) < MAX_REQUESTS:
            server.handle_request()

    thread = threading.Thread(target=serve, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(server, thread, stop)
    finally:
        stop.set()
        thread.join(timeout=5)
        server.server_close()


@dataclass
class _Clock:
    t: float = 1_765_000_000.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


@dataclass(frozen=True)
class _World:
    state_dir: Path
    clock: _Clock
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 7

    def boundary(self, point: str, step: str) -> None:
        """No crash points in a live session."""


def _live_session(live: LiveServer, tmp: Path, *, stream: bool) -> tuple[Any, Any]:
    """Run the real reference agent against the server, approving its one approval."""
    settings_ = Settings(
        model_base_url=f"{live.base}/v1",
        tools_base_url=live.base,
        api_key=SECRET,
        model="live-model",
    )
    agent = RefundDeskAdapter(RefundDesk(settings_))
    agent.begin(_World(tmp / "state", _Clock(), {"stream": stream}))
    first = agent.start(INPUT)
    pending = first.pending_approval
    assert pending is not None, f"the agent did not park on an approval: {first}"
    decision = Decision(pending.approval_id, True, pending.tool, pending.arguments, "live-test")
    return first, agent.resume(first.run_id, decision)


@dataclass
class Recorded:
    """A recorded live session: the cassette, the server's view, the agent's outcomes."""

    cassette: Path
    live: LiveServer
    first: Any
    final: Any


def _record(live: LiveServer, tmp: Path, *, stream: bool = False) -> Recorded:
    (tmp / "state").mkdir(parents=True)
    cassette = tmp / "session.yaml"
    outcomes: list[Any] = []
    record_session(cassette, lambda: outcomes.extend(_live_session(live, tmp, stream=stream)))
    return Recorded(cassette, live, *outcomes)


@pytest.fixture
def recorded(live: LiveServer, tmp_path: Path) -> Recorded:
    """The refund session recorded once, non-streamed."""
    return _record(live, tmp_path)


def _judge(scenario: Scenario) -> RunResult:
    variant = base_variant(scenario)
    adapter = AdapterCache().get(AGENT, endpoints_of(scenario))
    record = run_variant(variant, adapter, seed=11, wall_s=30.0)
    return judge(variant, record, "test_recording")


def _effects_seen(live: LiveServer) -> dict[str, Any]:
    return {
        f"{s.method} {s.path}": s.body
        for s in live.seen
        if s.method in ("POST", "PATCH") and not s.path.startswith("/v1/")
    }


# --------------------------------------------------------------------------- record_session


def test_recording_is_live_and_the_cassette_holds_no_secret(recorded: Recorded) -> None:
    assert recorded.final.state == "completed", recorded.final.error
    seen = recorded.live.seen
    assert len(seen) == 8
    assert seen[0].headers["authorization"] == f"Bearer {SECRET}"  # the key really went out
    text = recorded.cassette.read_text()
    assert SECRET not in text
    assert REDACTED in text
    data = yaml.safe_load(text)
    assert len(data["interactions"]) == 8
    first = data["interactions"][0]
    assert first["request"]["headers"]["authorization"] == [REDACTED]
    assert first["response"]["headers"]["set-cookie"] == [REDACTED]
    assert first["response"]["headers"]["x-echoed-key"] == [REDACTED]
    # bodies are kept: they are what the scenario is built from
    assert "classify_request" in first["request"]["body"]
    assert "classify_request" in first["response"]["body"]["string"]


def test_record_session_scrubs_the_headers_it_is_given(live: LiveServer, tmp_path: Path) -> None:
    import httpx

    cassette = tmp_path / "c.yaml"

    def session() -> None:
        with httpx.Client() as client:
            client.get(f"{live.base}/policy/refunds", headers={"x-tools-token": "tok-123456"})

    record_session(cassette, session, scrub=("x-tools-token",))
    text = cassette.read_text()
    assert "tok-123456" not in text
    assert "x-tools-token" in text
    assert "authorization" in DEFAULT_SCRUB


def test_record_session_writes_the_cassette_afresh(live: LiveServer, tmp_path: Path) -> None:
    import httpx

    cassette = tmp_path / "c.yaml"
    for path in ("/orders/O-1001", "/customers/C-42"):
        record_session(cassette, functools.partial(httpx.get, f"{live.base}{path}"))
    uris = [i["request"]["uri"] for i in yaml.safe_load(cassette.read_text())["interactions"]]
    assert uris == [f"{live.base}/customers/C-42"]


def test_record_session_keeps_what_was_recorded_when_the_session_raises(
    live: LiveServer, tmp_path: Path
) -> None:
    import httpx

    cassette = tmp_path / "c.yaml"

    def session() -> None:
        httpx.get(f"{live.base}/orders/O-1001")
        raise RuntimeError("the session broke")

    with pytest.raises(RuntimeError, match="the session broke"):
        record_session(cassette, session)
    assert len(yaml.safe_load(cassette.read_text())["interactions"]) == 1


# --------------------------------------------------------------------------- conversion


def test_converted_scenario_validates_and_mirrors_the_session(
    recorded: Recorded, tmp_path: Path
) -> None:
    base = recorded.live.base
    mapping = cassette_to_scenario(
        recorded.cassette,
        name="refund_recorded",
        input=INPUT,
        model_base_url=f"{base}/v1",
        tools_base_url=base,
    )
    inferred = cassette_to_scenario(recorded.cassette, name="refund_recorded", input=INPUT)
    assert inferred == mapping
    assert mapping["model"]["turns"] == [
        {"tool_call": {"name": "classify_request", "arguments": CLASSIFY}},
        {"tool_call": {"name": "propose_refund", "arguments": PROPOSE}},
    ]
    services = mapping["tools"]["services"]
    assert list(services) == [
        "get_order",
        "get_customer",
        "get_policy_refunds",
        "post_refunds",
        "post_emails",
        "patch_ticket",
    ]
    assert services["get_order"] == {
        "path": "/orders/O-1001",
        "respond": {"json": TOOL_ANSWERS[("GET", "/orders/O-1001")][1]},
    }
    assert services["post_refunds"] == {
        "method": "POST",
        "path": "/refunds",
        "ledger": {"status": 201, "json": {"refund_id": "R-5001", "status": "issued"}},
    }
    assert mapping["expect"] == {
        "state": "completed",
        "effects": {"post_refunds": 1, "post_emails": 1, "patch_ticket": 1},
        "calls_made": list(services),
    }
    out = tmp_path / "refund_recorded.yaml"
    out.write_text(scenario_yaml(mapping, source="session.yaml"))
    assert out.read_text().startswith(SCHEMA_LINE + "\n# Imported from the vcrpy cassette")
    assert load_scenario(out).name == "refund_recorded"


def test_replayed_scenario_passes_with_the_recorded_effects(recorded: Recorded) -> None:
    scenario = Scenario.model_validate(
        cassette_to_scenario(recorded.cassette, name="refund_recorded", input=INPUT)
    )
    result = _judge(scenario)
    assert result.verdict == "pass", result.explain()
    replayed = {e.tool: e.body for e in result.record.effects}
    live = _effects_seen(recorded.live)
    assert replayed == {
        "post_refunds": live["POST /refunds"],
        "post_emails": live["POST /emails"],
        "patch_ticket": live["PATCH /tickets/T-1001"],
    }
    assert SECRET not in repr(result.record.exchanges)


def test_a_spliced_transient_fault_is_recovered(recorded: Recorded) -> None:
    mapping = cassette_to_scenario(recorded.cassette, name="refund_recorded", input=INPUT)
    mapping["faults"] = [{"tool_http_503": {"target": "get_order"}}]
    result = _judge(Scenario.model_validate(mapping))
    assert result.verdict == "pass", result.explain()
    assert [f.key for f in result.record.firings] == ["tool_http_503"]
    assert sorted(e.tool for e in result.record.effects) == [
        "patch_ticket",
        "post_emails",
        "post_refunds",
    ]


def test_a_streamed_session_converts_to_a_streamed_scenario(
    live: LiveServer, tmp_path: Path
) -> None:
    rec = _record(live, tmp_path, stream=True)
    assert rec.final.state == "completed", rec.final.error
    assert "text/event-stream" in rec.cassette.read_text()
    mapping = cassette_to_scenario(
        rec.cassette, name="refund_streamed", input=INPUT, agent_config={"stream": True}
    )
    assert mapping["model"]["stream"] is True
    assert mapping["agent_config"] == {"stream": True}
    assert mapping["model"]["turns"][1] == {
        "tool_call": {"name": "propose_refund", "arguments": PROPOSE}
    }
    result = _judge(Scenario.model_validate(mapping))
    assert result.verdict == "pass", result.explain()


# --------------------------------------------------------------------------- wire formats


def _cassette(path: Path, interactions: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "interactions": interactions}))
    return path


def _interaction(
    method: str,
    uri: str,
    *,
    body: Any = None,
    status: int = 200,
    response: bytes | str = b"",
    ctype: str = "application/json",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    text = response.decode() if isinstance(response, bytes) else response
    return {
        "request": {
            "method": method,
            "uri": uri,
            "body": None if body is None else json.dumps(body),
            "headers": {k: [v] for k, v in (headers or {}).items()},
        },
        "response": {
            "status": {"code": status, "message": "OK"},
            "headers": {"content-type": [ctype]},
            "body": {"string": text},
        },
    }


PATHS = {
    "openai_chat": "/v1/chat/completions",
    "openai_responses": "/v1/responses",
    "anthropic_messages": "/v1/messages",
}
_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
_args = st.dictionaries(
    st.text("abcdefgh", min_size=1, max_size=4),
    st.integers(-5, 5) | st.text("xyz ", max_size=4) | st.booleans(),
    max_size=3,
)
_calls = st.lists(
    st.tuples(st.sampled_from(["get_order", "propose_refund", "classify"]), _args),
    min_size=1,
    max_size=3,
)
_answers = st.one_of(
    _text.map(lambda t: ModelAnswer(text=t)),
    _text.map(lambda t: ModelAnswer(refusal=t)),
    st.tuples(st.none() | _text, _calls).map(
        lambda tc: ModelAnswer(
            text=tc[0],
            tool_calls=tuple(
                ToolCallSpec(name, json.dumps(args, separators=(",", ":")), f"call_{i}")
                for i, (name, args) in enumerate(tc[1], 1)
            ),
        )
    ),
)


@settings(max_examples=40, deadline=None)
@given(
    answers=st.lists(_answers, min_size=1, max_size=3),
    wire=st.sampled_from(sorted(PATHS)),
    stream=st.booleans(),
)
def test_model_answers_round_trip_through_a_cassette(
    answers: list[ModelAnswer], wire: str, stream: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Whatever the harness serves, in any wire format, converts back to the same answers."""
    encoder = encoder_for(wire)  # type: ignore[arg-type]
    interactions = []
    for seq, answer in enumerate(answers, 1):
        request = {"model": "m", "messages": [], "stream": stream}
        if stream:
            plan = encoder.stream(answer, model="m", seq=seq, created=1)
            body, ctype = b"".join(plan.events) + plan.terminator, "text/event-stream"
        else:
            body, ctype = encoder.response(answer, model="m", seq=seq, created=1).body, "json"
        interactions.append(
            _interaction(
                "POST",
                f"https://api.example.com{PATHS[wire]}",
                body=request,
                response=body,
                ctype=ctype,
            )
        )
    path = _cassette(tmp_path_factory.mktemp("c") / "c.yaml", interactions)
    mapping = cassette_to_scenario(path, name="roundtrip", input={"x": 1})
    scenario = Scenario.model_validate(mapping)
    assert scenario.model.format == wire
    assert scenario.model.stream is stream

    def without_ids(a: ModelAnswer) -> ModelAnswer:
        calls = tuple(ToolCallSpec(c.name, c.arguments, None) for c in a.tool_calls)
        return ModelAnswer(a.text, calls, a.finish, a.refusal, a.empty)

    assert [without_ids(a) for a in scenario.model_answers()] == [without_ids(a) for a in answers]


@pytest.mark.parametrize("wire", sorted(PATHS))
def test_truncated_and_empty_answers_keep_their_finish(wire: str, tmp_path: Path) -> None:
    encoder = encoder_for(wire)  # type: ignore[arg-type]
    cut = ModelAnswer(text="half an answ", finish="length")
    empty = ModelAnswer(empty=True)
    interactions = [
        _interaction(
            "POST",
            f"https://api.example.com{PATHS[wire]}",
            body={"model": "m", "messages": []},
            response=encoder.response(a, model="m", seq=1, created=1).body,
        )
        for a in (cut, empty)
    ]
    mapping = cassette_to_scenario(_cassette(tmp_path / "c.yaml", interactions), name="x")
    assert mapping["model"]["turns"] == [
        {"answer": {"text": "half an answ", "finish": "length"}},
        {"answer": {"empty": True}},
    ]


# --------------------------------------------------------------------------- tool services


def test_tool_services_respond_sequence_and_ledger(tmp_path: Path) -> None:
    tools = "https://tools.example.com/api"
    chat = encoder_for("openai_chat").response(
        ModelAnswer(text="done"), model="m", seq=1, created=1
    )
    interactions = [
        _interaction("GET", f"{tools}/orders/O-7?expand=1", status=503, response='{"e": 1}'),
        _interaction("GET", f"{tools}/orders/O-7?expand=1", response='{"order_id": "O-7"}'),
        _interaction("GET", f"{tools}/health", response="ok", ctype="text/plain"),
        _interaction("GET", f"{tools}/health", response="ok", ctype="text/plain"),
        _interaction(
            "POST",
            f"{tools}/refunds",
            body={"a": 1},
            status=503,
            response="{}",
            headers={"Idempotency-Key": "k1"},
        ),
        _interaction(
            "POST",
            f"{tools}/refunds",
            body={"a": 1},
            status=201,
            response='{"id": "R"}',
            headers={"Idempotency-Key": "k1"},
        ),
        _interaction(
            "POST",
            f"{tools}/refunds",
            body={"a": 2},
            status=201,
            response='{"id": "R2"}',
            headers={"Idempotency-Key": "k2"},
        ),
        _interaction("POST", f"{tools}/notes", body={"n": 1}, response='{"ok": true}'),
        _interaction(
            "POST",
            "https://llm.example.com/v1/chat/completions",
            body={"model": "m", "messages": []},
            response=chat.body,
        ),
    ]
    cassette = _cassette(tmp_path / "c.yaml", interactions)
    mapping = cassette_to_scenario(
        cassette, name="tools", model_base_url="https://llm.example.com/v1", tools_base_url=tools
    )
    services = mapping["tools"]["services"]
    assert services["get_order"] == {
        "path": "/orders/O-7",
        "sequence": [{"status": 503, "json": {"e": 1}}, {"json": {"order_id": "O-7"}}],
    }
    assert services["get_health"] == {"path": "/health", "respond": {"body": "ok"}}
    assert services["post_refunds"]["ledger"] == {"status": 201, "json": {"id": "R"}}
    assert services["post_notes"] == {
        "method": "POST",
        "path": "/notes",
        "respond": {"json": {"ok": True}},
    }
    assert mapping["model"]["turns"] == [{"text": "done"}]
    assert mapping["expect"]["effects"] == {"post_refunds": 2}
    assert mapping["reviewer"] == ["approve", "approve"]
    Scenario.model_validate(mapping)


def test_several_tool_hosts_need_a_tools_base_url(tmp_path: Path) -> None:
    interactions = [
        _interaction("GET", "https://a.example.com/x", response="{}"),
        _interaction("GET", "https://b.example.com/y", response="{}"),
    ]
    cassette = _cassette(tmp_path / "c.yaml", interactions)
    with pytest.raises(CassetteError, match=r"several hosts .*--tools-base-url"):
        cassette_to_scenario(cassette, name="x")
    mapping = cassette_to_scenario(cassette, name="x", tools_base_url="https://a.example.com")
    assert list(mapping["tools"]["services"]) == ["get_x"]


def test_a_failing_last_request_pre_fills_a_failed_expectation(tmp_path: Path) -> None:
    interactions = [_interaction("GET", "https://t.example.com/orders/O-1", status=404)]
    mapping = cassette_to_scenario(_cassette(tmp_path / "c.yaml", interactions), name="x")
    assert mapping["expect"]["state"] == "failed"
    assert mapping["expect"]["category"] == "tool"
    Scenario.model_validate(mapping)


# --------------------------------------------------------------------------- the command


def test_import_cassette_command_writes_a_loadable_scenario(
    recorded: Recorded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = tmp_path / "input.json"
    payload.write_text(json.dumps(INPUT))
    out = tmp_path / "refund_recorded.yaml"
    argv = ["import-cassette", str(recorded.cassette), "--name", "refund_recorded"]
    code = cli_main([*argv, "--input", str(payload), "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    assert f"wrote {out}" in capsys.readouterr().err
    scenario = load_scenario(out)
    assert scenario.input == INPUT
    assert len(scenario.model.turns) == 2


def test_import_cassette_prints_without_output_and_notes_a_missing_input(
    recorded: Recorded,
) -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = import_cassette_main(str(recorded.cassette), name="x", stdout=stdout, stderr=stderr)
    assert code == 0, stderr.getvalue()
    text = stdout.getvalue()
    assert text.startswith(SCHEMA_LINE)
    assert "# NOTE: input: fill in the payload" in text
    assert yaml.safe_load(text)["input"] == {}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ("interactions: [\n", "is not valid YAML"),
        ("just: a mapping\n", "has no 'interactions' list"),
        ("interactions:\n- request: {}\n", "interaction 0 is malformed"),
    ],
)
def test_import_cassette_refuses_a_missing_or_malformed_cassette(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    cassette = tmp_path / "broken.yaml"
    if content is not None:
        cassette.write_text(content)
    stderr = io.StringIO()
    assert import_cassette_main(str(cassette), name="x", stderr=stderr) == 2
    message = stderr.getvalue()
    assert str(cassette) in message
    assert expected in message


def test_a_response_body_over_the_scenario_file_limit_is_refused_by_name(tmp_path: Path) -> None:
    big = json.dumps({"blob": "x" * MAX_FILE_BYTES})  # over the limit by the JSON around it
    interactions = [
        _interaction("GET", "https://t.example.com/orders/O-1", response="{}"),
        _interaction("GET", "https://t.example.com/exports/E-1", response=big),
    ]
    cassette = _cassette(tmp_path / "c.yaml", interactions)
    with pytest.raises(CassetteError) as caught:
        cassette_to_scenario(cassette, name="x")
    message = str(caught.value)
    assert "interaction 1 (GET https://t.example.com/exports/E-1)" in message
    assert f"response body of {len(big):,} bytes, over the 512 KiB (524,288 bytes)" in message
    assert "delete that interaction from the cassette" in message
    at_limit = json.dumps({"blob": "x" * (MAX_FILE_BYTES - 12)})
    assert len(at_limit) == MAX_FILE_BYTES
    interactions[1] = _interaction("GET", "https://t.example.com/exports/E-1", response=at_limit)
    mapping = cassette_to_scenario(_cassette(tmp_path / "c.yaml", interactions), name="x")
    assert mapping["tools"]["services"]["get_export"]["respond"]["json"] == json.loads(at_limit)


def test_import_cassette_refuses_answers_that_together_overflow_a_scenario_file(
    tmp_path: Path,
) -> None:
    third = json.dumps({"blob": "y" * (MAX_FILE_BYTES // 3)})
    interactions = [
        _interaction("GET", f"https://t.example.com/exports/E-{i}/{name}", response=third)
        for i, name in enumerate(["a", "b", "c", "d"])
    ]
    cassette = _cassette(tmp_path / "c.yaml", interactions)
    out = tmp_path / "x.yaml"
    stderr = io.StringIO()
    assert import_cassette_main(str(cassette), name="x", out=str(out), stderr=stderr) == 2
    message = stderr.getvalue()
    assert "would be" in message
    assert "over the 512 KiB (524,288 bytes) a scenario file may hold" in message
    assert not out.exists()
    one = _cassette(tmp_path / "one.yaml", interactions[:1])
    assert import_cassette_main(str(one), name="x", out=str(out), stderr=io.StringIO()) == 0
    assert load_scenario(out).tools.services


def test_import_cassette_refuses_a_bad_name_or_input(tmp_path: Path) -> None:
    cassette = _cassette(tmp_path / "c.yaml", [])
    stderr = io.StringIO()
    assert import_cassette_main(str(cassette), name="Bad-Name", stderr=stderr) == 2
    assert "is not a scenario name" in stderr.getvalue()
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    stderr = io.StringIO()
    assert import_cassette_main(str(cassette), name="x", input_file=str(listed), stderr=stderr) == 2
    assert "must be a JSON object" in stderr.getvalue()


def test_what_cannot_become_a_turn_is_noted_in_the_header(tmp_path: Path) -> None:
    chat = "https://llm.example.com/v1/chat/completions"
    ask = {"model": "m", "messages": []}
    done = encoder_for("openai_chat").response(ModelAnswer(text="ok"), model="m", seq=1, created=1)
    interactions = [
        _interaction("POST", chat, body=ask, status=429, response='{"error": {}}'),
        _interaction("POST", chat, body=ask, response="<html>proxy error</html>"),
        _interaction("POST", chat, body=ask, response=done.body),
        _interaction("GET", "https://telemetry.example.com/ping", response="{}"),
        _interaction("GET", "https://tools.example.com/orders/O-1", response='{"id": 1}'),
        _interaction("GET", "https://tools.example.com/orders/O-2", response='{"id": 2}'),
    ]
    cassette = _cassette(tmp_path / "c.yaml", interactions)
    stdout, stderr = io.StringIO(), io.StringIO()
    code = import_cassette_main(
        str(cassette),
        name="noted",
        tools_base_url="https://tools.example.com",
        stdout=stdout,
        stderr=stderr,
    )
    assert code == 0, stderr.getvalue()
    text = stdout.getvalue()
    assert "# NOTE: model request 1 was answered HTTP 429: not a turn" in text
    assert "# NOTE: model request 2 (openai_chat) was not converted: its body is not JSON" in text
    assert "# NOTE: interaction 3 (GET https://telemetry.example.com/ping) is below neither" in text
    mapping = yaml.safe_load(text)
    assert mapping["model"]["turns"] == [{"text": "ok"}]
    assert list(mapping["tools"]["services"]) == ["get_order", "get_order_2"]


def test_json_cassettes_are_read_and_bad_arguments_refused(tmp_path: Path) -> None:
    responses = encoder_for("openai_responses").response(
        ModelAnswer(text="hi"), model="m", seq=1, created=1
    )
    messages = encoder_for("anthropic_messages").response(
        ModelAnswer(text="hi"), model="m", seq=1, created=1
    )
    ask = {"model": "m", "input": "hi"}
    one = _interaction(
        "POST", "https://x.example.com/v1/responses", body=ask, response=responses.body
    )
    cassette = tmp_path / "c.json"
    cassette.write_text(json.dumps({"version": 1, "interactions": [one]}))
    mapping = cassette_to_scenario(cassette, name="x")
    assert mapping["model"] == {"format": "openai_responses", "turns": [{"text": "hi"}]}
    with pytest.raises(CassetteError, match="is not an http"):
        cassette_to_scenario(cassette, name="x", model_base_url="x.example.com/v1")
    two = _interaction(
        "POST",
        "https://x.example.com/v1/messages",
        body={**ask, "messages": []},
        response=messages.body,
    )
    mixed = _cassette(tmp_path / "mixed.yaml", [one, two])
    with pytest.raises(CassetteError, match="mixes model wire formats"):
        cassette_to_scenario(mixed, name="x")
    stderr = io.StringIO()
    out = tmp_path / "missing-dir" / "x.yaml"
    assert import_cassette_main(str(cassette), name="x", out=str(out), stderr=stderr) == 2
    assert f"cannot write the scenario file {out}: directory {out.parent} does not exist" in (
        stderr.getvalue()
    )
