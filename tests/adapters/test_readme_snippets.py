"""The README's adapter snippets run: each builds an adapter over the example desk's agent."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from harness.adapter import AgentAdapter, Endpoints

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
SNIPPETS = [b for b in BLOCK.findall((ROOT / "README.md").read_text()) if "shakeout_adapters" in b]


ADAPTERS = ["PydanticAIAdapter", "ToolLoopAdapter", "OpenAIAgentsAdapter", "LangGraphAdapter"]


def test_the_readme_shows_one_snippet_per_adapter() -> None:
    assert len(SNIPPETS) == len(ADAPTERS)
    for snippet, adapter in zip(SNIPPETS, ADAPTERS, strict=True):
        assert adapter in snippet


@pytest.mark.parametrize(
    "snippet", SNIPPETS, ids=["pydantic_ai", "tool_loop", "openai_agents", "langgraph"]
)
def test_a_snippet_builds_an_adapter(snippet: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for example in ("pydantic_ai", "tool_loop"):
        monkeypatch.syspath_prepend(str(ROOT / "examples" / example))
    namespace: dict[str, object] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    build = namespace["build_adapter"]
    assert callable(build)
    adapter = build(Endpoints("http://model.shakeout.test/v1", "http://tools.shakeout.test"))
    assert isinstance(adapter, AgentAdapter)
    for name in ("pai_desk", "loop_desk"):
        for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            monkeypatch.delitem(sys.modules, module)
