"""End-to-end tests of the refund desk: stages, recovery, the gate, the queue, crashes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from refund_world import (
    TICKET,
    Boundary,
    Crash,
    DeskFactory,
    FakeClock,
    World,
    approve,
    refund_script,
)

from reference_agent import ConfigError, RefundDesk, Settings, UnknownRunError, run_id_for
from reference_agent.fakes import FakeModel, FakeTools, Turn


def kinds(desk: RefundDesk, run_id: str, kind: str) -> list[dict[str, Any]]:
    trace = desk.trace(run_id)
    assert trace is not None
    return [r for r in trace.records if r["kind"] == kind]


# --------------------------------------------------------------------------- stages


@pytest.mark.parametrize("api", ["openai_chat", "openai_responses", "anthropic_messages"])
@pytest.mark.parametrize("stream", [False, True])
def test_refund_runs_end_to_end_on_every_api(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools, api: str, stream: bool
) -> None:
    model.script(*refund_script())
    desk = make_desk(config={"api": api, "stream": stream})
    parked = desk.start(TICKET)
    assert parked.state == "awaiting_approval"
    assert parked.pending_approval is not None
    assert parked.pending_approval.arguments == {
        "order_id": "O-1001",
        "amount": 40.0,
        "currency": "EUR",
        "reason": "broken",
    }
    assert tools.effects_of("issue_refund") == []
    done = desk.resume(parked.run_id, approve(parked))
    assert (done.state, done.category, done.decision) == ("completed", None, "refunded")
    assert [t for t, _, _ in tools.effects] == ["issue_refund", "send_email", "close_ticket"]
    assert tools.effects_of("send_email")[0]["template"] == "refund_issued"
    assert tools.effects_of("close_ticket") == [{"status": "closed", "resolution": "refunded"}]
    path = {"openai_chat": "/v1/chat/completions", "openai_responses": "/v1/responses"}
    assert set(model.paths) == {path.get(api, "/v1/v1/messages")}
    calls = kinds(desk, done.run_id, "model_call")
    assert [c["step"] for c in calls] == ["classify", "decide"]
    assert all(c["url"].startswith("http://model.test/v1/") for c in calls)
    assert all(r["stream"] is stream for r in calls)


def test_every_request_has_one_trace_record(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools
) -> None:
    model.script(*refund_script())
    desk = make_desk()
    parked = desk.start(TICKET)
    done = desk.resume(parked.run_id, approve(parked))
    trace = desk.trace(done.run_id)
    assert trace is not None
    assert trace.kept_in_full
    tool_records = [r for r in trace.records if r["kind"] == "tool_call"]
    assert len(tool_records) == len(tools.calls)
    assert len([r for r in trace.records if r["kind"] == "model_call"]) == len(model.requests)
    for r in tool_records:
        assert {"method", "url", "status", "attempt", "step", "duration_s", "arguments"} <= set(r)
    keys = {r["tool"]: r["idempotency_key"] for r in tool_records}
    assert keys["issue_refund"] == f"{done.run_id}:act"
    assert keys["get_order"] is None


def test_run_id_is_deterministic_and_start_returns_the_existing_run(
    make_desk: DeskFactory, model: FakeModel
) -> None:
    model.script(*refund_script())
    desk = make_desk()
    first = desk.start(TICKET)
    again = desk.start(TICKET)
    assert first.run_id == again.run_id == run_id_for(TICKET)
    assert again.state == "awaiting_approval"
    assert len(model.requests) == 2


@pytest.mark.parametrize(
    "payload",
    [
        {**TICKET, "ticket_id": "T-x"},
        {**TICKET, "customer_id": "C-"},
        {**TICKET, "message": "   "},
        {**TICKET, "message": "a" * 4001},
        {**TICKET, "message": "hi\u202eevil"},
        {**TICKET, "message": "bell\x07"},
        {**TICKET, "extra": 1},
        {"ticket_id": "T-1"},
    ],
)
def test_bad_input_fails_with_category_input_and_no_request(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools, payload: dict[str, Any]
) -> None:
    outcome = make_desk().start(payload)
    assert (outcome.state, outcome.category) == ("failed", "input")
    assert outcome.error is not None
    assert "InputError" in outcome.error
    assert model.requests == []
    assert tools.calls == []


@pytest.mark.parametrize(
    ("turn", "decision"),
    [
        (Turn(tool="classify_request", args={"intent": "other", "order_id": None}), "escalated"),
        (Turn(tool="classify_request", args={"intent": "ambiguous"}), "escalated"),
        (Turn(tool="classify_request", args={"intent": "refund", "order_id": None}), "escalated"),
    ],
)
def test_non_refund_intents_escalate(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools, turn: Turn, decision: str
) -> None:
    model.script(turn)
    outcome = make_desk().start(TICKET)
    assert (outcome.state, outcome.decision, outcome.category) == ("escalated", decision, None)
    assert tools.calls == []


def test_order_of_another_customer_is_a_logic_error(
    make_desk: DeskFactory, model: FakeModel
) -> None:
    model.script(Turn(tool="classify_request", args={"intent": "refund", "order_id": "O-2"}))
    outcome = make_desk().start(TICKET)
    assert (outcome.state, outcome.category) == ("failed", "logic")
    assert "PreconditionViolated" in (outcome.error or "")


def test_missing_order_fails_as_tool_error_without_retry(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools
) -> None:
    model.script(Turn(tool="classify_request", args={"intent": "refund", "order_id": "O-404"}))
    outcome = make_desk().start(TICKET)
    assert (outcome.state, outcome.category) == ("failed", "tool")
    assert tools.count("get_order") == 1


@pytest.mark.parametrize(
    ("order", "why"),
    [
        ({"placed_at": "2026-08-01"}, "outside the 30-day"),
        ({"refunded_amount": 80.0}, "already fully refunded"),
    ],
)
def test_policy_declines_send_the_decline_template_and_close(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools, order: dict[str, Any], why: str
) -> None:
    tools.orders["O-1001"].update(order)
    model.script(*refund_script())
    outcome = make_desk().start(TICKET)
    assert (outcome.state, outcome.decision, outcome.approvals) == ("completed", "declined", ())
    assert tools.effects_of("issue_refund") == []
    email = tools.effects_of("send_email")[0]
    assert email["template"] == "refund_declined"
    assert why in email["body"]
    assert tools.effects_of("close_ticket") == [{"status": "closed", "resolution": "declined"}]


def test_escalate_tool_in_decide_ends_escalated(make_desk: DeskFactory, model: FakeModel) -> None:
    model.script(
        refund_script()[0], Turn(tool="escalate", args={"reason": "needs a human"}, call_id="c2")
    )
    outcome = make_desk().start(TICKET)
    assert (outcome.state, outcome.decision) == ("escalated", "escalated")


def test_unknown_config_key_is_a_clear_error(make_desk: DeskFactory) -> None:
    with pytest.raises(ConfigError, match=r"max_model_cals.*Valid keys are"):
        make_desk(config={"max_model_cals": 3})


def test_resume_of_unknown_run_raises(make_desk: DeskFactory) -> None:
    desk = make_desk()
    with pytest.raises(UnknownRunError, match="no run 'run-nope'"):
        desk.resume("run-nope")
    assert desk.trace("run-nope") is None


# --------------------------------------------------------------------------- model errors


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        (Turn(tool="classify_request", args="{not json"), "InvalidJSON"),
        (Turn(tool="delete_everything", args={}), "UnknownTool"),
        (Turn(tool="classify_request", args={"intent": "refund", "x": 1}), "SchemaViolation"),
        (Turn(text="I think it is a refund"), "SchemaViolation"),
        (Turn(refusal="I can't help with that"), "Refusal"),
        (Turn(tool="classify_request", args={"intent": "refund"}, finish="length"), "Truncated"),
        (Turn(empty=True), "EmptyAnswer"),
        (Turn(tool="classify_request", args={"intent": "refund"}, call_id=None), "MissingTool"),
    ],
)
@pytest.mark.parametrize("api", ["openai_chat", "anthropic_messages"])
def test_one_model_error_gets_a_corrective_reask_carrying_the_error(
    make_desk: DeskFactory, model: FakeModel, bad: Turn, kind: str, api: str
) -> None:
    model.script(bad, *refund_script())
    outcome = make_desk(config={"api": api}).start(TICKET)
    assert outcome.state == "awaiting_approval", outcome.error
    reask = model.requests[1]
    wire = reask.get("messages") or reask.get("input")
    assert kind in str(wire)


def test_second_model_error_fails_the_run_as_model(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools
) -> None:
    model.script(Turn(tool="classify_request", args="{"), Turn(empty=True))
    outcome = make_desk().start(TICKET)
    assert (outcome.state, outcome.category) == ("failed", "model")
    assert "EmptyAnswer" in (outcome.error or "")
    assert len(model.requests) == 2
    assert tools.calls == []


def test_amount_over_the_remainder_is_reasked_then_accepted(
    make_desk: DeskFactory, model: FakeModel
) -> None:
    model.script(
        *refund_script(amount=500.0),
        Turn(tool="propose_refund", args={"amount": 80.0, "reason": "broken"}, call_id="c3"),
    )
    outcome = make_desk().start(TICKET)
    assert outcome.pending_approval is not None
    assert outcome.pending_approval.arguments["amount"] == 80.0
    assert "amount exceeds the refundable remainder" in str(model.requests[2]["messages"][-1])


def test_repeated_tool_call_is_no_progress_without_reask(
    make_desk: DeskFactory, model: FakeModel
) -> None:
    lookup = Turn(tool="lookup_order", args={"order_id": "O-1001"}, call_id="c2")
    model.script(refund_script()[0], lookup, Turn(**{**lookup.__dict__, "call_id": "c3"}))
    outcome = make_desk().start(TICKET)
    assert (outcome.state, outcome.category) == ("failed", "logic")
    assert "NoProgress" in (outcome.error or "")
    assert len(model.requests) == 3


def test_model_call_budget_is_a_logic_failure(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools
) -> None:
    for i in range(10):
        tools.orders[f"O-{i}"] = {**tools.orders["O-1001"], "order_id": f"O-{i}"}
    model.script(refund_script()[0])
    model.script(
        *[
            Turn(tool="lookup_order", args={"order_id": f"O-{i}"}, call_id=f"c{i}")
            for i in range(10)
        ]
    )
    outcome = make_desk(config={"max_model_calls": 4}).start(TICKET)
    assert (outcome.state, outcome.category) == ("failed", "logic")
    assert "model calls exhausted" in (outcome.error or "")
    assert len(model.requests) == 4


def test_tool_call_budget_is_a_logic_failure(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools
) -> None:
    model.script(*refund_script())
    outcome = make_desk(config={"max_tool_calls": 2}).start(TICKET)
    assert (outcome.state, outcome.category) == ("failed", "logic")
    assert "tool calls exhausted" in (outcome.error or "")
    assert len(tools.calls) == 2


def test_run_seconds_budget_counts_backoff_sleeps(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools, clock: FakeClock
) -> None:
    model.script(*refund_script())
    tools.inject("get_order", httpx.Response(503, json={}), httpx.Response(503, json={}))
    outcome = make_desk(config={"max_run_seconds": 1.0}).start(TICKET)
    assert (outcome.state, outcome.category) == ("failed", "logic")
    assert "run seconds exhausted" in (outcome.error or "")


# --------------------------------------------------------------------------- retries


def test_transient_tool_errors_back_off_exponentially(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools, clock: FakeClock
) -> None:
    model.script(*refund_script())
    tools.inject("get_order", httpx.Response(502, json={}), httpx.ReadTimeout("slow"))
    outcome = make_desk().start(TICKET)
    assert outcome.state == "awaiting_approval"
    assert clock.sleeps == [0.5, 1.0]
    attempts = [r["attempt"] for r in kinds(make_desk(), outcome.run_id, "tool_call")]
    assert attempts[:3] == [1, 2, 3]


def test_retry_after_is_honoured_in_seconds_and_http_date(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools, clock: FakeClock
) -> None:
    model.script(*refund_script())
    date = "Mon, 26 Oct 2026 07:33:40 GMT"  # START + 20 s
    tools.inject(
        "get_customer",
        httpx.Response(429, headers={"retry-after": "7"}, json={}),
        httpx.Response(429, headers={"retry-after": date}, json={}),
    )
    outcome = make_desk(config={"max_attempts": 3}).start(TICKET)
    assert outcome.state == "awaiting_approval"
    assert clock.sleeps[0] == 7.0
    assert clock.sleeps[1] == pytest.approx(13.0)


def test_exhausted_retries_fail_with_the_tool_category(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools, clock: FakeClock
) -> None:
    model.script(*refund_script())
    tools.inject("get_refund_policy", *[httpx.Response(500, json={}) for _ in range(3)])
    outcome = make_desk().start(TICKET)
    assert (outcome.state, outcome.category) == ("failed", "tool")
    assert "gave up after 3 attempts" in (outcome.error or "")
    assert tools.count("get_refund_policy") == 3
    assert clock.sleeps == [0.5, 1.0]


def test_retry_after_over_sixty_seconds_gives_up(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools, clock: FakeClock
) -> None:
    model.script(*refund_script())
    tools.inject("get_order", httpx.Response(429, headers={"retry-after": "120"}, json={}))
    outcome = make_desk().start(TICKET)
    assert (outcome.state, outcome.category) == ("failed", "tool")
    assert "exceeds the 60 s limit" in (outcome.error or "")
    assert clock.sleeps == []


def test_provider_errors_are_retried_and_quota_is_not(
    make_desk: DeskFactory, model: FakeModel, clock: FakeClock
) -> None:
    model.script(Turn(status=429, headers={"retry-after": "2"}), Turn(status=529), *refund_script())
    desk = make_desk()
    assert desk.start(TICKET).state == "awaiting_approval"
    assert clock.sleeps == [2.0, 1.0]
    model.script(Turn(status=429, error_code="insufficient_quota"))
    outcome = desk.start({**TICKET, "ticket_id": "T-2"})
    assert (outcome.state, outcome.category) == ("failed", "model")
    assert "quota" in (outcome.error or "")
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize("api", ["openai_chat", "openai_responses", "anthropic_messages"])
def test_cut_stream_is_a_transient_provider_error(
    make_desk: DeskFactory, model: FakeModel, clock: FakeClock, api: str
) -> None:
    first = refund_script()[0]
    model.script(Turn(**{**first.__dict__, "cut": True}), *refund_script())
    outcome = make_desk(config={"api": api, "stream": True}).start(TICKET)
    assert outcome.state == "awaiting_approval", outcome.error
    assert clock.sleeps == [0.5]


# --------------------------------------------------------------------------- gate


def test_deny_ends_rejected_with_no_effect(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools
) -> None:
    model.script(*refund_script())
    desk = make_desk()
    parked = desk.start(TICKET)
    outcome = desk.resume(parked.run_id, approve(parked, approved=False))
    assert (outcome.state, outcome.category) == ("rejected", None)
    assert tools.effects == []


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ({"approval_id": "apr-other"}, "waits on"),
        (
            {"arguments": {"order_id": "O-1001", "amount": 80.0, "currency": "EUR", "reason": "x"}},
            "bound to",
        ),
        ({"tool": "send_email"}, "bound to"),
    ],
)
def test_mismatched_decisions_are_refused_and_the_run_stays_parked(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools, override: dict[str, Any], why: str
) -> None:
    model.script(*refund_script())
    desk = make_desk()
    parked = desk.start(TICKET)
    refused = desk.resume(parked.run_id, approve(parked, **override))
    assert refused.state == "awaiting_approval"
    assert refused.error is not None
    assert why in refused.error
    assert tools.effects == []
    assert kinds(desk, parked.run_id, "approval_refused")
    assert desk.resume(parked.run_id, approve(parked)).state == "completed"


def test_approval_expires(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools, clock: FakeClock
) -> None:
    model.script(*refund_script())
    desk = make_desk(config={"approval_sla_s": 60})
    parked = desk.start(TICKET)
    assert parked.pending_approval is not None
    assert parked.pending_approval.expires_at == clock.now() + 60
    assert desk.resume(parked.run_id).state == "awaiting_approval"
    clock.sleep(61)
    late = desk.resume(parked.run_id, approve(parked))
    assert late.state == "awaiting_approval"
    assert "expired" in (late.error or "")
    assert desk.resume(parked.run_id).state == "expired"
    assert tools.effects == []


def test_a_duplicate_approval_applies_once(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools
) -> None:
    model.script(*refund_script())
    desk = make_desk()
    parked = desk.start(TICKET)
    decision = approve(parked)
    assert desk.resume(parked.run_id, decision).state == "completed"
    again = desk.resume(parked.run_id, decision)
    assert again.state == "completed"
    assert "already completed" in (again.error or "")
    assert len(tools.effects_of("issue_refund")) == 1
    assert tools.count("issue_refund") == 1


def test_concurrent_double_resume_refunds_once(
    model: FakeModel, tools: FakeTools, clock: FakeClock, tmp_path: Path
) -> None:
    model.script(*refund_script())
    settings_args = {
        "model_base_url": "http://model.test/v1",
        "tools_base_url": "http://tools.test",
    }
    from reference_agent import Settings

    desks = [
        RefundDesk(
            Settings(**settings_args),
            model_http_client=model.client(),
            tools_http_client=tools.client(),
        )
        for _ in range(2)
    ]
    for desk in desks:
        desk.begin(World(tmp_path, clock))
    parked = desks[0].start(TICKET)
    decision = approve(parked)
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def deliver(desk: RefundDesk) -> None:
        barrier.wait()
        results.append(desk.resume(parked.run_id, decision))

    threads = [threading.Thread(target=deliver, args=(d,)) for d in desks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tools.count("issue_refund") == 1
    assert len(tools.effects_of("issue_refund")) == 1
    outcomes = [(r.state, r.error) for r in results]
    assert sorted(r.error is None for r in results) == [False, True], outcomes
    for desk in desks:
        desk.close()


def test_a_run_held_by_another_instance_refuses_the_decision_without_acting(
    model: FakeModel, tools: FakeTools, clock: FakeClock, tmp_path: Path
) -> None:
    from reference_agent import Settings
    from reference_agent.desk import BUSY
    from reference_agent.lock import run_lock

    model.script(*refund_script())
    settings = Settings(model_base_url="http://model.test/v1", tools_base_url="http://tools.test")
    holder, other = (
        RefundDesk(settings, model_http_client=model.client(), tools_http_client=tools.client())
        for _ in range(2)
    )
    holder.begin(World(tmp_path, clock))
    other.begin(World(tmp_path, clock))
    parked = holder.start(TICKET)
    with run_lock(tmp_path, parked.run_id) as mine:
        assert mine
        refused = other.resume(parked.run_id, approve(parked))
    assert refused.error == BUSY
    assert refused.state == "awaiting_approval"
    assert tools.count("issue_refund") == 0
    done = other.resume(parked.run_id, approve(parked))  # the lock is free again
    assert done.state == "completed"
    assert tools.count("issue_refund") == 1


# --------------------------------------------------------------------------- queue


def test_full_review_queue_throttles_intake(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools, clock: FakeClock
) -> None:
    desk = make_desk(config={"review_queue_capacity": 2})
    for n in (1, 2):
        model.script(*refund_script())
        assert desk.start({**TICKET, "ticket_id": f"T-{n}"}).state == "awaiting_approval"
    requests = len(model.requests)
    throttled = desk.start({**TICKET, "ticket_id": "T-3"})
    assert (throttled.state, throttled.category) == ("throttled", None)
    assert "review queue is full" in (throttled.error or "")
    assert len(model.requests) == requests
    first = desk.start({**TICKET, "ticket_id": "T-1"})
    clock.sleep(30)
    desk.resume(first.run_id, approve(first))
    model.script(*refund_script())
    assert desk.start({**TICKET, "ticket_id": "T-3"}).state == "awaiting_approval"
    stats = desk.review_stats()
    assert (stats.decided, stats.pending, stats.p50, stats.sla_breaches) == (1, 2, 30.0, 0)


# --------------------------------------------------------------------------- crash + resume

BOUNDARIES = [
    ("before_step", "intake"),
    ("after_checkpoint", "intake"),
    ("before_step", "classify"),
    ("after_checkpoint", "classify"),
    ("before_step", "gather"),
    ("after_checkpoint", "gather"),
    ("before_step", "decide"),
    ("after_checkpoint", "decide"),
    ("before_step", "approve"),
    ("after_checkpoint", "approve"),
    ("before_step", "act"),
    ("after_checkpoint", "act"),
    ("before_step", "notify"),
    ("after_checkpoint", "notify"),
    ("before_step", "close"),
    ("after_checkpoint", "close"),
    ("terminal_write", "completed"),
]


@pytest.mark.parametrize("crash_at", BOUNDARIES, ids=lambda b: f"{b[0]}:{b[1]}")
def test_crash_at_each_boundary_resumes_without_repeating_work(
    make_desk: DeskFactory,
    model: FakeModel,
    tools: FakeTools,
    clock: FakeClock,
    tmp_path: Path,
    crash_at: tuple[str, str],
) -> None:
    model.script(*refund_script())
    state = tmp_path / "crash"
    desk = make_desk(boundary=Boundary(crash_at=crash_at), state=state)
    run_id = run_id_for(TICKET)
    outcome: Any = None
    try:
        outcome = desk.start(TICKET)
        if outcome.state == "awaiting_approval":
            outcome = desk.resume(run_id, approve(outcome))
    except Crash:
        pass
    else:
        pytest.fail(f"no crash at {crash_at}: {outcome}")
    desk.begin(World(state, clock))  # a fresh process over the same state dir
    outcome = desk.start(TICKET) if crash_at == ("before_step", "intake") else desk.resume(run_id)
    if outcome.state == "awaiting_approval":
        outcome = desk.resume(run_id, approve(outcome))
    assert outcome.state == "completed", outcome.error
    assert len(tools.effects_of("issue_refund")) == 1
    assert len(model.requests) == 2, "a completed model step was asked again"
    reads = [t for t, _, _ in tools.calls if t.startswith("get_")]
    assert len(reads) == 3, f"completed gather re-ran: {reads}"
    for effect in ("issue_refund", "send_email", "close_ticket"):
        keys = {k for t, _, k in tools.calls if t == effect}
        assert keys == {
            f"{run_id}:{ {'issue_refund': 'act', 'send_email': 'notify'}.get(effect, 'close') }"
        }
        assert len(tools.effects_of(effect)) == 1


def test_crash_inside_a_started_step_reexecutes_it_with_the_same_key(
    make_desk: DeskFactory, model: FakeModel, tools: FakeTools, clock: FakeClock, tmp_path: Path
) -> None:
    model.script(*refund_script())
    desk = make_desk(state=tmp_path / "s")
    parked = desk.start(TICKET)

    def crash_after_effect(request: httpx.Request) -> httpx.Response:
        tools.handle(request)  # the service commits the effect...
        raise Crash("...and the agent dies before recording it")

    tools_client = httpx.Client(transport=httpx.MockTransport(crash_after_effect))
    crashing = RefundDesk(
        desk.settings, model_http_client=model.client(), tools_http_client=tools_client
    )
    crashing.begin(World(tmp_path / "s", clock))
    with pytest.raises(Crash):
        crashing.resume(parked.run_id, approve(parked))
    crashing.close()
    desk.begin(World(tmp_path / "s", clock))
    done = desk.resume(parked.run_id)
    assert done.state == "completed"
    assert done.refund_id == "re_1"
    keys = [k for t, _, k in tools.calls if t == "issue_refund"]
    assert keys == [f"{parked.run_id}:act"] * 2
    assert len(tools.effects_of("issue_refund")) == 1


def test_terminal_write_crash_leaves_the_state_unwritten(
    make_desk: DeskFactory, model: FakeModel, clock: FakeClock, tmp_path: Path
) -> None:
    model.script(Turn(tool="classify_request", args={"intent": "other"}))
    desk = make_desk(
        boundary=Boundary(crash_at=("terminal_write", "escalated")), state=tmp_path / "t"
    )
    with pytest.raises(Crash):
        desk.start(TICKET)
    desk.begin(World(tmp_path / "t", clock))
    assert desk.resume(run_id_for(TICKET)).state == "escalated"
    assert len(model.requests) == 1


def test_close_closes_the_model_clients_the_desk_built() -> None:
    desk = RefundDesk(
        Settings(model_base_url="http://model.test/v1", tools_base_url="http://tools.test")
    )
    desk.close()
    assert desk._model._openai.is_closed()
