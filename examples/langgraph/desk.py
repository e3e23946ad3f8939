"""The refund desk as a LangGraph graph: look up an order, refund it once a human approves.

Ordinary application code: a model node and a ``ToolNode`` in a loop, the refund tool pausing
the graph with ``interrupt()`` until a reviewer answers ``Command(resume=...)``, the graph state
kept by whatever checkpointer it is compiled with. It never imports shakeout. The refund carries
an ``Idempotency-Key`` made of the run (thread) id and the model's tool call id, stable across
retries and across a resume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool, InjectedToolCallId, tool

from examples.desk_services import call_service
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.runtime import get_runtime
from langgraph.types import interrupt

INSTRUCTIONS = (
    "You are a refund desk. Look up the customer's order with lookup_order, then refund the "
    "order's total with issue_refund when the customer asks for a refund. Answer in one sentence."
)

ORDER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "order_id": str,
    "total": (int, float),
    "currency": str,
}
REFUND_FIELDS: dict[str, type | tuple[type, ...]] = {"refund_id": str, "status": str}


@dataclass(frozen=True)
class DeskContext:
    """The graph's runtime context: the run id, the services' client and the clock.

    Attributes:
        run_id: the run's id, also the checkpointer's thread id.
        http: a client whose base URL is the tool services'.
        sleep: waits this many seconds.
        now: the current time in seconds.
    """

    run_id: str
    http: httpx.Client
    sleep: Callable[[float], None]
    now: Callable[[], float]


@tool
def lookup_order(order_id: str) -> dict[str, Any]:
    """Look up an order: its total and currency.

    Args:
        order_id: the order's id, e.g. O-1001.
    """
    desk = get_runtime(DeskContext).context
    return call_service(
        desk.http, "GET", f"/orders/{order_id}", fields=ORDER_FIELDS, sleep=desk.sleep, now=desk.now
    )


@tool
def issue_refund(
    order_id: str, amount: float, tool_call_id: Annotated[str, InjectedToolCallId]
) -> dict[str, Any]:
    """Refund an order (a human approves this first).

    Args:
        order_id: the order to refund.
        amount: the amount to refund, in the order's currency.
    """
    arguments = {"order_id": order_id, "amount": amount}
    request = {"approval_id": tool_call_id, "tool": "issue_refund", "arguments": arguments}
    decision = interrupt(request)  # the graph pauses here until Command(resume=...)
    if not (isinstance(decision, dict) and decision.get("approved") is True):
        return {"status": "not refunded: the reviewer did not approve"}
    desk = get_runtime(DeskContext).context
    return call_service(
        desk.http,
        "POST",
        "/refunds",
        fields=REFUND_FIELDS,
        sleep=desk.sleep,
        now=desk.now,
        body=arguments,
        idempotency_key=f"{desk.run_id}:{tool_call_id}",
    )


TOOLS: tuple[BaseTool, ...] = (lookup_order, issue_refund)


def build_graph(
    model: BaseChatModel, checkpointer: BaseCheckpointSaver[Any], tools: Sequence[BaseTool] = TOOLS
) -> Any:
    """The desk's graph: ``agent`` (one model call) and ``tools`` in a loop until an answer."""
    llm = model.bind_tools(tools)

    def agent(state: MessagesState) -> dict[str, list[AIMessage | ToolMessage]]:
        answer = llm.invoke([SystemMessage(INSTRUCTIONS), *state["messages"]])
        return {"messages": [answer]}

    graph = StateGraph(MessagesState, context_schema=DeskContext)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=checkpointer)
