"""Windowed conversation memory with a token budget.

Two limits apply to what the model sees: the last N user/assistant turns, and a token
budget so that system prompt + history + retrieved context + question + the answer's
room all fit in `num_ctx`. Ollama silently cuts the *front* of an over-long prompt,
which is where the system prompt sits, so the budget is enforced here, on our side,
by dropping the oldest turns first (a turn's tool messages go with it).

In agent mode this runs as `create_agent` middleware (`WindowMiddleware`) before every
model call, so tool results gathered during the current turn are budgeted too; the
always-retrieve chain calls `fit_messages` directly. The stored conversation is never
modified: trimming only shapes the request.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import (
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from agent._cjk import DENSE_SCRIPTS
from agent.errors import AgentError

TokenCounter = Callable[[str], int]
_CJK_RE = re.compile(f"[{DENSE_SCRIPTS}]")
MESSAGE_OVERHEAD = 8  # role markers and separators a chat template adds per message
MIN_TOOL_TEXT = 200  # characters of a tool result kept when shrinking it


def approx_tokens(text: str) -> int:
    """A deliberately pessimistic token estimate: CJK ~1 token per char, others ~1 per 3 chars.

    Real tokenizers (Llama 3, Qwen) give about 4 chars/token for English and 0.7-1.5
    tokens per Chinese character; over-estimating only costs a little history.
    """
    cjk = len(_CJK_RE.findall(text))
    return cjk + math.ceil((len(text) - cjk) / 3)


def message_tokens(message: BaseMessage, count: TokenCounter = approx_tokens) -> int:
    text = message.content if isinstance(message.content, str) else str(message.content)
    calls = getattr(message, "tool_calls", None) or []
    return count(text) + sum(count(str(c.get("args", ""))) + 10 for c in calls) + MESSAGE_OVERHEAD


def split_turns(messages: Sequence[BaseMessage]) -> list[list[BaseMessage]]:
    """Group messages into turns, each starting at a HumanMessage (leading others form a turn)."""
    turns: list[list[BaseMessage]] = []
    for message in messages:
        if isinstance(message, HumanMessage) or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


def window(messages: Sequence[BaseMessage], turns: int) -> list[BaseMessage]:
    """The last `turns` past turns plus the current one (the last HumanMessage onward).

    The current turn is the one being answered, so it is always kept; `turns` counts the
    completed turns of memory before it.
    """
    grouped = split_turns([m for m in messages if not isinstance(m, SystemMessage)])
    kept = grouped[-(turns + 1):] if grouped else []
    return [m for turn in kept for m in turn]


def budget_for(num_ctx: int, num_predict: int) -> int:
    """Prompt tokens available: the context minus the answer's room (at most half the context)."""
    return num_ctx - min(num_predict, num_ctx // 2)


def fit_messages(system: SystemMessage | None, messages: Sequence[BaseMessage], *, turns: int,
                 budget: int, count: TokenCounter = approx_tokens) -> list[BaseMessage]:
    """Window the history, then drop the oldest turns until everything fits `budget`.

    If the current turn alone is too big, its tool results are shortened (they are the
    retrieved excerpts, least relevant last); if it still does not fit, AgentError says
    so: the system prompt is never the thing that gets cut.
    """
    fixed = message_tokens(system, count) if system is not None else 0
    grouped = split_turns(window(messages, turns))
    while grouped and fixed + _tokens(grouped, count) > budget and len(grouped) > 1:
        grouped.pop(0)
    current = grouped[-1] if grouped else []
    if current and fixed + _tokens(grouped, count) > budget:
        grouped[-1] = _shrink_tool_results(current, budget - fixed, count)
    if fixed + _tokens(grouped, count) > budget:
        raise AgentError(
            f"The question and its context need more than the model's context window "
            f"({budget} tokens after reserving room for the answer).",
            "Shorten the question, or raise num_ctx in Settings.", code="context_too_small", params={"budget": budget})
    return [m for turn in grouped for m in turn]


def _tokens(grouped: list[list[BaseMessage]], count: TokenCounter) -> int:
    return sum(message_tokens(m, count) for turn in grouped for m in turn)


def _shrink_tool_results(turn: list[BaseMessage], budget: int, count: TokenCounter) -> list[BaseMessage]:
    """Cut tool message text from the end until the turn fits (keeping a stub of each)."""
    turn = list(turn)
    overflow = sum(message_tokens(m, count) for m in turn) - budget
    for i in range(len(turn) - 1, -1, -1):
        message = turn[i]
        if overflow <= 0 or not isinstance(message, ToolMessage) or not isinstance(message.content, str):
            continue
        text = message.content
        keep = max(MIN_TOOL_TEXT, len(text) - overflow * 3 - 50)
        if keep < len(text):
            shorter = text[:keep] + "\n[... excerpts shortened to fit the context window]"
            overflow -= count(text) - count(shorter)
            turn[i] = message.model_copy(update={"content": shorter})
    return turn


class WindowMiddleware(AgentMiddleware):
    """`create_agent` middleware: window and budget the messages before every model call."""

    def __init__(self, *, turns: int, budget: int, count: TokenCounter = approx_tokens) -> None:
        super().__init__()
        self.turns = turns
        self.budget = budget
        self.count = count

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]) -> Any:
        trimmed = fit_messages(request.system_message, request.messages, turns=self.turns,
                               budget=self.budget, count=self.count)
        return handler(request.override(messages=trimmed))
