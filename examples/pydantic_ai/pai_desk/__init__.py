"""A support desk on pydantic-ai: look an order up, refund it after a human approves."""

from pai_desk.agent import build_adapter, build_agent

__all__ = ["build_adapter", "build_agent"]
