"""The OpenAI Agents SDK adapter: its example desk passes the fault and crash matrices, and the
suite catches two planted bugs (a swallowed tool error, a refund without approval)."""

from __future__ import annotations

import json
from collections.abc import Callable

from example_session import ROOT, Session, assert_desk_caught, planted_bug_variants

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

BUGS_CAUGHT = planted_bug_variants("oa")


def test_example_passes_both_matrices_and_the_planted_bugs_are_caught(
    run_example: Callable[..., Session],
) -> None:
    session = run_example(EXAMPLE, bugs_module=BUGS, variants=list(BUGS_CAUGHT), conftest=TRACING)
    assert_desk_caught(session, "oa_refund_approved", BUGS_CAUGHT)
    # the SDK's tracing never started a trace, so it had nothing to export off the machine
    assert json.loads((session.path / "sdk_tracing.json").read_text()) == {"traces": 0, "spans": 0}
