"""The OpenAI Agents SDK adapter: its example desk passes the fault and crash matrices, and the
suite catches two planted bugs (a swallowed tool error, a refund without approval)."""

from __future__ import annotations

import json
from collections.abc import Callable

from example_session import ROOT, Session, Variant

EXAMPLE = ROOT / "examples" / "openai_agents" / "scenarios" / "refund_approved.yaml"

BUGS = '''
import dataclasses

from agents import RunContextWrapper, function_tool

from examples.desk_services import ServiceError, call_service
from examples.openai_agents import desk
from examples.openai_agents.shakeout_adapter import desk_context
from shakeout_adapters.openai_agents import OpenAIAgentsAdapter


@function_tool(failure_error_function=None)
def lookup_order(ctx: RunContextWrapper[desk.DeskContext], order_id: str) -> dict:
    """Look up an order: its total and currency."""
    d = ctx.context
    try:
        return call_service(
            d.http, "GET", f"/orders/{order_id}", fields=desk.ORDER_FIELDS, sleep=d.sleep, now=d.now
        )
    except ServiceError:  # the planted bug: the failure becomes a made-up order
        return {"order_id": order_id, "total": 49.99, "currency": "EUR"}


def swallowed_tool_error(endpoints):
    agent = desk.build_agent().clone(tools=[lookup_order, desk.issue_refund])
    return OpenAIAgentsAdapter(agent, endpoints, context=desk_context)


def skipped_approval(endpoints):
    unchecked = dataclasses.replace(desk.issue_refund, needs_approval=False)  # the planted bug
    agent = desk.build_agent().clone(tools=[desk.lookup_order, unchecked])
    return OpenAIAgentsAdapter(agent, endpoints, context=desk_context)
'''

TRACING = """
import json
from pathlib import Path

from agents import add_trace_processor
from agents.tracing import TracingProcessor


class Recorder(TracingProcessor):
    \"\"\"Counts the SDK traces and spans started: each would be exported to a remote server.\"\"\"

    def __init__(self):
        self.traces = 0
        self.spans = 0

    def on_trace_start(self, trace):
        self.traces += 1

    def on_trace_end(self, trace):
        pass

    def on_span_start(self, span):
        self.spans += 1

    def on_span_end(self, span):
        pass

    def shutdown(self):
        pass

    def force_flush(self):
        pass


RECORDER = Recorder()
add_trace_processor(RECORDER)


def pytest_sessionfinish(session):
    counts = {"traces": RECORDER.traces, "spans": RECORDER.spans}
    Path("sdk_tracing.json").write_text(json.dumps(counts))
"""

SWALLOWED = Variant(
    "oa_bug_swallowed_tool_error",
    "planted_bugs:swallowed_tool_error",
    faults=[{"tool_http_404": {"target": "lookup_order"}}],
    expect={"state": "failed", "category": "tool"},
)
SKIPPED = Variant("oa_bug_skipped_approval", "planted_bugs:skipped_approval")


def test_example_passes_both_matrices_and_the_planted_bugs_are_caught(
    run_example: Callable[..., Session],
) -> None:
    session = run_example(
        EXAMPLE, bugs_module=BUGS, variants=[SWALLOWED, SKIPPED], conftest=TRACING
    )
    example = session.of("oa_refund_approved")
    fired = {f["key"] for i in example for f in i["faults_fired"]}
    # the matrices really ran: every crash point, the approval faults and the tool faults
    assert {
        "crash_before_step",
        "crash_after_checkpoint",
        "crash_after_effect",
        "crash_while_parked",
        "crash_terminal_write",
        "approval_deny",
        "approval_never",
        "approval_late",
        "approval_changed_args",
        "tool_http_503",
        "tool_http_404",
        "tool_timeout_after_commit",
    } <= fired
    assert len(example) > 60
    bad = {i["nodeid"]: sorted(Session.failed_checks(i)) for i in example if i["verdict"] != "pass"}
    assert not bad, session.stdout[-6000:]
    # the fault-free run committed one refund, with a key, after one approval
    (clean,) = [i for i in example if i["variant"] == "base"]
    assert [e["tool"] for e in clean["effects"]] == ["issue_refund"]
    assert clean["effects"][0]["idempotency_key"].startswith("run-")
    assert [a["decision"] for a in clean["approvals"]] == ["approve"]
    assert all(c["passed"] is not False for c in clean["checks"])
    assert "network_contained" in {c["name"] for c in clean["checks"] if c["passed"]}

    (swallowed,) = session.of(SWALLOWED.name)
    assert swallowed["verdict"] == "fail"
    assert {"expected_state", "stopped_after_failure"} <= Session.failed_checks(swallowed)

    (skipped,) = session.of(SKIPPED.name)
    assert skipped["verdict"] == "fail"
    assert {"unapproved_effects", "expected_approvals"} <= Session.failed_checks(skipped)
    assert session.ret == 1
    # the SDK's tracing never started a trace, so it had nothing to export off the machine
    assert json.loads((session.path / "sdk_tracing.json").read_text()) == {"traces": 0, "spans": 0}
