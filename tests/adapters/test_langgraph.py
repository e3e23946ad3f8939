"""The LangGraph adapter: its example desk passes the fault and crash matrices, and the suite
catches two planted bugs (a swallowed tool error, a refund without approval)."""

from __future__ import annotations

from collections.abc import Callable

from example_session import ROOT, Session, assert_desk_caught, planted_bug_variants

EXAMPLE = ROOT / "examples" / "langgraph" / "scenarios" / "refund_approved.yaml"

BUGS = '''
from langchain_core.tools import InjectedToolCallId, tool
from langgraph.runtime import get_runtime
from typing import Annotated

from examples.desk_services import ServiceError, call_service
from examples.langgraph import desk
from examples.langgraph.shakeout_adapter import desk_context
from shakeout_adapters.langgraph import LangGraphAdapter


@tool
def lookup_order(order_id: str) -> dict:
    """Look up an order: its total and currency."""
    d = get_runtime(desk.DeskContext).context
    try:
        return call_service(
            d.http, "GET", f"/orders/{order_id}", fields=desk.ORDER_FIELDS, sleep=d.sleep, now=d.now
        )
    except ServiceError:  # the planted bug: the failure becomes a made-up order
        return {"order_id": order_id, "total": 49.99, "currency": "EUR"}


@tool
def issue_refund(
    order_id: str, amount: float, tool_call_id: Annotated[str, InjectedToolCallId]
) -> dict:
    """Refund an order."""
    d = get_runtime(desk.DeskContext).context  # the planted bug: no interrupt() before it
    return call_service(
        d.http, "POST", "/refunds", fields=desk.REFUND_FIELDS, sleep=d.sleep, now=d.now,
        body={"order_id": order_id, "amount": amount},
        idempotency_key=f"{d.run_id}:{tool_call_id}",
    )


def swallowed_tool_error(endpoints):
    def build(model, saver):
        return desk.build_graph(model, saver, tools=(lookup_order, desk.issue_refund))

    return LangGraphAdapter(build, endpoints, context=desk_context)


def skipped_approval(endpoints):
    def build(model, saver):
        return desk.build_graph(model, saver, tools=(desk.lookup_order, issue_refund))

    return LangGraphAdapter(build, endpoints, context=desk_context)
'''

BUGS_CAUGHT = planted_bug_variants("lg")


def test_example_passes_both_matrices_and_the_planted_bugs_are_caught(
    run_example: Callable[..., Session],
) -> None:
    session = run_example(EXAMPLE, bugs_module=BUGS, variants=list(BUGS_CAUGHT))
    assert_desk_caught(session, "lg_refund_approved", BUGS_CAUGHT)
