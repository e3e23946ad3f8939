"""The LangGraph adapter: its example desk passes the fault and crash matrices, and the suite
catches two planted bugs (a swallowed tool error, a refund without approval)."""

from __future__ import annotations

from collections.abc import Callable

from example_session import ROOT, Session, Variant

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

SWALLOWED = Variant(
    "lg_bug_swallowed_tool_error",
    "planted_bugs:swallowed_tool_error",
    faults=[{"tool_http_404": {"target": "lookup_order"}}],
    expect={"state": "failed", "category": "tool"},
)
SKIPPED = Variant("lg_bug_skipped_approval", "planted_bugs:skipped_approval")


def test_example_passes_both_matrices_and_the_planted_bugs_are_caught(
    run_example: Callable[..., Session],
) -> None:
    session = run_example(EXAMPLE, bugs_module=BUGS, variants=[SWALLOWED, SKIPPED])
    example = session.of("lg_refund_approved")
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
