"""Windowed memory and token budgeting."""

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from agent.chat.memory import (
    approx_tokens,
    budget_for,
    fit_messages,
    split_turns,
    window,
)
from agent.errors import AgentError


def conversation(turns: int, answer: str = "answer") -> list:
    messages = []
    for i in range(turns):
        messages += [HumanMessage(f"question {i}"), AIMessage(f"{answer} {i}")]
    return messages


def test_window_keeps_last_n_turns_plus_current():
    messages = conversation(6) + [HumanMessage("question 6")]
    kept = window(messages, 5)
    assert [m.content for m in kept if isinstance(m, HumanMessage)] == [f"question {i}" for i in range(1, 7)]


def test_tool_messages_go_with_their_turn():
    old = [HumanMessage("q0"), AIMessage("", tool_calls=[{"name": "s", "args": {"query": "x"}, "id": "1"}]),
           ToolMessage("excerpt", tool_call_id="1"), AIMessage("a0")]
    messages = old + conversation(2) + [HumanMessage("now")]
    kept = window(messages, 2)
    assert not any(isinstance(m, ToolMessage) for m in kept)
    assert kept[0].content == "question 0"


def test_split_turns_starts_each_turn_at_a_user_message():
    turns = split_turns(conversation(3))
    assert len(turns) == 3 and all(isinstance(t[0], HumanMessage) for t in turns)


def test_budget_drops_oldest_turns_but_keeps_system_prompt():
    system = SystemMessage("RULES " * 50)
    messages = conversation(5, answer="long answer " * 100) + [HumanMessage("final question")]
    fitted = fit_messages(system, messages, turns=5, budget=800)
    assert fitted[-1].content == "final question"
    total = approx_tokens(system.content) + sum(approx_tokens(m.content) + 8 for m in fitted) + 8
    assert total <= 800
    assert len(fitted) < len(messages)
    assert fitted[0].content.startswith("question")  # whole turns dropped, never half of one


def test_current_turn_tool_results_are_shortened_when_too_big():
    system = SystemMessage("rules")
    call = AIMessage("", tool_calls=[{"name": "s", "args": {"query": "x"}, "id": "1"}])
    messages = [HumanMessage("q"), call, ToolMessage("excerpt " * 2000, tool_call_id="1")]
    fitted = fit_messages(system, messages, turns=5, budget=1000)
    assert "shortened" in fitted[-1].content
    assert len(fitted) == 3


def test_question_too_long_for_context_is_a_clear_error():
    with pytest.raises(AgentError, match="context window"):
        fit_messages(SystemMessage("rules"), [HumanMessage("word " * 100_000)], turns=5, budget=4000)


def test_cjk_is_counted_per_character():
    assert approx_tokens("文档中没有提到") == 7
    assert approx_tokens("abcdef") == 2


def test_budget_reserves_room_for_the_answer():
    assert budget_for(8192, 1024) == 7168
    assert budget_for(2048, 4096) == 1024  # never more than half the context for the answer
