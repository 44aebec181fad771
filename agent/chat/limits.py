"""Bounds on one agent-mode answer: a capped number of searches, then the model must answer.

A model that calls the search tool every turn would otherwise loop up to LangGraph's
recursion limit (issue 14.9: 870 calls in 120 s). LangChain's `ToolCallLimitMiddleware`
counts the calls (unknown tool names included) and blocks the extra ones;
`AnswerAfterSearches` then calls the model without tools, so it answers from the excerpts
found so far; `ModelCallLimitMiddleware` ends the run if a server sends tool calls anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain.agents.middleware import (
    AgentMiddleware,
    ModelCallLimitMiddleware,
    ModelRequest,
    ModelResponse,
    ToolCallLimitMiddleware,
)


class AnswerAfterSearches(AgentMiddleware):
    """Once `limit` tool calls were made in this run, the model is called without tools."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]) -> Any:
        calls = (request.state.get("run_tool_call_count") or {}).get("__all__", 0)
        return handler(request.override(tools=[]) if calls >= self.limit else request)


def search_limits(limit: int) -> list[AgentMiddleware]:
    """The middleware that caps one answer at `limit` searches (see the module docstring)."""
    return [ToolCallLimitMiddleware(run_limit=limit, exit_behavior="continue"),
            AnswerAfterSearches(limit),
            ModelCallLimitMiddleware(run_limit=limit + 2, exit_behavior="end")]
