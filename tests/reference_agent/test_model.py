"""ModelClient and interpret: wire formats, provider errors, and reply validation."""

from __future__ import annotations

import httpx2
import pytest

from reference_agent.errors import ProviderError
from reference_agent.fakes import FakeModel, Turn
from reference_agent.model import ModelClient, ModelExchange, ModelReply, WireToolCall, interpret
from reference_agent.schemas import CLASSIFY_TOOL, ClassifyArgs
from reference_agent.settings import Settings

APIS = ["openai_chat", "openai_responses", "anthropic_messages"]
MESSAGES = [
    {"role": "system", "content": "classify"},
    {"role": "user", "content": "refund O-1 please"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c0", "name": "classify_request", "arguments": "{}"}],
    },
    {"role": "tool", "tool_call_id": "c0", "name": "classify_request", "content": "ok"},
    {"role": "user", "content": "again"},
]


@pytest.fixture(scope="module")
def fake() -> FakeModel:
    return FakeModel()


@pytest.fixture(scope="module")
def client(fake: FakeModel) -> ModelClient:
    return ModelClient(
        Settings(model_base_url="http://m.test/v1", tools_base_url="http://t"), fake.client()
    )


def ask(client: ModelClient, api: str, stream: bool) -> tuple[ModelReply, ModelExchange]:
    exchange = client.exchange(api)  # type: ignore[arg-type]
    reply = client.complete(api, stream, MESSAGES, [CLASSIFY_TOOL], exchange, 0.0)  # type: ignore[arg-type]
    return reply, exchange


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        (
            Turn(tool="classify_request", args={"intent": "refund", "order_id": "O-1"}),
            ModelReply(
                (
                    WireToolCall(
                        "call_1", "classify_request", '{"intent": "refund", "order_id": "O-1"}'
                    ),
                ),
                None,
                "tool_calls",
            ),
        ),
        (Turn(text="hello"), ModelReply((), "hello", "stop")),
    ],
)
def test_replies_normalise_identically_across_apis(
    fake: FakeModel,
    client: ModelClient,
    api: str,
    stream: bool,
    turn: Turn,
    expected: ModelReply,
) -> None:
    fake.script(turn)
    reply, exchange = ask(client, api, stream)
    assert reply == expected
    assert exchange.status == 200


@pytest.mark.parametrize("api", APIS)
def test_request_shapes(fake: FakeModel, client: ModelClient, api: str) -> None:
    fake.script(Turn(text="x"))
    ask(client, api, False)
    body = fake.requests[-1]
    if api == "openai_chat":
        assert body["tool_choice"] == "required"
        assert body["messages"][2]["tool_calls"][0]["function"]["name"] == "classify_request"
        assert body["messages"][3] == {"role": "tool", "tool_call_id": "c0", "content": "ok"}
    elif api == "openai_responses":
        assert body["instructions"] == "classify"
        assert body["input"][2]["type"] == "function_call_output"
    else:
        assert body["tool_choice"] == {"type": "any"}
        roles = [m["role"] for m in body["messages"]]
        assert roles == ["user", "assistant", "user"]  # tool result and text folded together


@pytest.mark.parametrize(
    ("turn", "transient"),
    [
        (Turn(status=429), True),
        (Turn(status=429, error_code="insufficient_quota"), False),
        (Turn(status=500), True),
        (Turn(status=503), True),
        (Turn(status=529), True),
        (Turn(status=400), False),
    ],
)
@pytest.mark.parametrize("api", ["openai_chat", "anthropic_messages"])
def test_provider_errors(
    fake: FakeModel, client: ModelClient, api: str, turn: Turn, transient: bool
) -> None:
    fake.script(turn)
    with pytest.raises(ProviderError) as info:
        ask(client, api, False)
    assert info.value.transient is transient
    assert info.value.category == "model"


def test_raw_transport_error_is_transient() -> None:
    def boom(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadError("reset mid-stream")

    client = ModelClient(
        Settings(model_base_url="http://m.test/v1", tools_base_url="http://t"),
        httpx2.Client(transport=httpx2.MockTransport(boom)),
    )
    with pytest.raises(ProviderError) as info:
        ask(client, "openai_chat", True)
    assert info.value.transient


OFFERED = {"classify_request": ClassifyArgs}


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (ModelReply(empty=True), "EmptyAnswer"),
        (ModelReply(refusal="no"), "Refusal"),
        (ModelReply(finish="content_filter"), "Refusal"),
        (
            ModelReply((WireToolCall("c", "classify_request", "{}"),), finish="length"),
            "TruncatedOutput",
        ),
        (ModelReply(text="hi", finish="stop"), "SchemaViolation"),
        (ModelReply((WireToolCall(None, "classify_request", "{}"),)), "MissingToolCallId"),
        (ModelReply((WireToolCall("c", "other", "{}"),)), "UnknownTool"),
        (ModelReply((WireToolCall("c", "classify_request", "{x"),)), "InvalidJSON"),
        (ModelReply((WireToolCall("c", "classify_request", "[1]"),)), "InvalidJSON"),
        (ModelReply((WireToolCall("c", "classify_request", '{"intent": 3}'),)), "SchemaViolation"),
        (
            ModelReply((WireToolCall("c", "classify_request", '{"intent": "refund", "y": 1}'),)),
            "SchemaViolation",
        ),
    ],
)
def test_interpret_names_the_model_error(reply: ModelReply, kind: str) -> None:
    with pytest.raises(Exception) as info:  # noqa: PT011 - the class name is the assertion
        interpret(reply, OFFERED)
    assert type(info.value).__name__ == kind
    assert getattr(info.value, "category", None) == "model"


def test_interpret_accepts_a_valid_call() -> None:
    reply = ModelReply((WireToolCall("c", "classify_request", '{"intent": "other"}'),))
    inv = interpret(reply, OFFERED)
    assert inv.arguments == ClassifyArgs(intent="other")


def test_close_closes_the_clients_it_built_and_never_a_given_one() -> None:
    settings = Settings(model_base_url="http://m.test/v1", tools_base_url="http://t")
    built = ModelClient(settings)
    built.prepare("anthropic_messages")
    built.close()
    assert built._openai.is_closed()
    assert built._anthropic.is_closed()
    given = httpx2.Client(transport=httpx2.MockTransport(lambda r: httpx2.Response(204)))
    client = ModelClient(settings, given)
    client.prepare("anthropic_messages")
    client.close()
    assert not given.is_closed
    given.close()
