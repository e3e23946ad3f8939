"""A support desk written straight on the openai or anthropic SDK: a plain tool loop."""

from loop_desk.agent import build_adapter, build_anthropic_adapter

__all__ = ["build_adapter", "build_anthropic_adapter"]
