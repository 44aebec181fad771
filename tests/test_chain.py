"""The conversational chain against the Ollama double: memory, modes, tools, sources, errors."""

import pytest

from agent.chat.engine import ChatEngine, Done, Token
from agent.config import load_settings
from agent.workspace import Workspace
from tests.support import add_library, double_environ, engine_for, rows_read, seed_turns, user_messages


@pytest.fixture
def indexed(workspace):
    return add_library(workspace)


def test_agent_mode_calls_the_tool_and_answers_with_sources(indexed, ollama):
    ollama.reply_tool_call("search_documents", {"query": "how do igneous rocks form"})
    ollama.reply("Igneous rocks form from magma [geology.pdf p.2].")
    events = list(engine_for(indexed).stream("How do igneous rocks form?", "c1"))
    answer = events[-1].answer
    assert answer.mode == "agent" and not answer.error
    cited = [s for s in answer.sources if s.get("cited")]
    assert [(s["file"], s["page"]) for s in cited] == [("geology.pdf", 2)]  # the file-and-page citation ...
    assert answer.text == f"Igneous rocks form from magma [{cited[0]['number']}]."  # ... became its number
    assert len([e for e in events if isinstance(e, Token)]) > 1  # streamed token by token
    first, second = ollama.chat_requests()
    assert [t["function"]["name"] for t in first["tools"]] == ["search_documents"]
    assert "magma" in user_messages(first)[-1]  # searched before the first model call
    tool_msg = [m for m in second["messages"] if m["role"] == "tool"][0]
    assert 'source="geology.pdf p.2"' in tool_msg["content"] and "magma" in tool_msg["content"]


def test_seventh_turn_carries_only_the_last_five_turns(indexed, ollama):
    engine = engine_for(indexed, chat_model="gemma:2b")  # no tools: one request per turn plus a rewrite
    for turn in range(1, 8):
        if turn > 1:
            ollama.reply(f"query {turn}")  # the rewrite of the follow-up
        ollama.reply(f"answer {turn}")
        assert engine.ask(f"question {turn}", "c7").text == f"answer {turn}"
    body = ollama.last_chat()
    users = user_messages(body)
    assert len(users) == 6  # 5 remembered turns + the current question
    assert users[0] == "question 2" and "question 7" in users[-1]
    assert body["messages"][0]["role"] == "system"
    assert [m["content"] for m in body["messages"] if m["role"] == "assistant"] == [f"answer {i}" for i in range(2, 7)]


def test_ask_in_a_long_conversation_reads_only_the_memory_window(indexed, ollama):
    seed_turns(indexed.conversations, "long", 3000)
    ollama.reply("rocks")  # the rewrite of the follow-up
    ollama.reply("The answer.")
    with rows_read() as rows:
        assert engine_for(indexed, chat_model="gemma:2b").ask("And then?", "long").text == "The answer."
    users = user_messages(ollama.last_chat())
    assert users[0] == "Question 2995?" and len(users) == 6  # memory_turns = 5, then the question
    assert rows[0] < 50, rows  # the whole history was 3000 rows


def test_token_budget_trims_history_but_keeps_the_system_prompt(indexed, ollama):
    engine = engine_for(indexed, chat_model="gemma:2b", num_ctx=1500, num_predict=256)
    for turn in range(1, 4):
        if turn > 1:
            ollama.reply("rocks")
        ollama.reply(" ".join(f"long{i}" for i in range(300)) + str(turn))  # long, but no loop to cut
        engine.ask(f"question {turn}", "budget")
    body = ollama.last_chat()
    assert body["messages"][0]["role"] == "system"
    assert body["messages"][0]["content"].startswith("You are a careful assistant")
    assert body["options"]["num_ctx"] == 1500
    assert len(user_messages(body)) < 3  # older turns dropped to fit
    assert "question 3" in user_messages(body)[-1]


def test_follow_up_is_rewritten_before_retrieval(indexed, ollama):
    engine = engine_for(indexed, chat_model="gemma:2b")
    ollama.reply("There are igneous and sedimentary rocks [geology.pdf p.2].")
    engine.ask("What kinds of rocks are there?", "f1")
    ollama.reply("How does bread rise with yeast?")  # the rewritten standalone query
    ollama.reply("Yeast makes carbon dioxide [cooking.pdf p.2].")
    answer = engine.ask("and what about the second one?", "f1")
    rewrite_request, answer_request = ollama.chat_requests()[-2:]
    rewrite_prompt = user_messages(rewrite_request)[-1]
    assert "What kinds of rocks are there?" in rewrite_prompt and "and what about the second one?" in rewrite_prompt
    assert answer.query == "How does bread rise with yeast?"
    assert answer.sources[0]["file"] == "cooking.pdf" and answer.sources[0]["page"] == 2
    assert "carbon dioxide" in user_messages(answer_request)[-1]


def test_model_without_tools_uses_always_retrieve(indexed, ollama):
    ollama.reply("Plate tectonics [geology.pdf p.3].")
    answer = engine_for(indexed, chat_model="gemma:2b").ask("What explains earthquakes?")
    assert answer.mode == "always_retrieve"
    body = ollama.last_chat()
    assert "tools" not in body or not body["tools"]
    assert "Plate tectonics explains earthquakes" in user_messages(body)[-1]
    assert (answer.sources[0]["file"], answer.sources[0]["page"]) == ("geology.pdf", 3)


def test_forcing_agent_mode_on_a_model_without_tools_is_refused(indexed, ollama):
    answer = engine_for(indexed, chat_model="gemma:2b", mode="agent").ask("anything")
    assert "does not support tool calling" in answer.error and "always_retrieve" in answer.error
    assert ollama.chat_requests() == []


def test_model_not_pulled_gives_the_pull_command(indexed, ollama):
    answer = engine_for(indexed, chat_model="mistral").ask("hi")
    assert "ollama pull mistral" in answer.error and answer.text == ""


def test_unreachable_server_is_a_message_not_a_traceback(indexed, ollama):
    engine = engine_for(indexed)
    ollama.stop()
    answer = engine.ask("hi")
    assert "Cannot reach Ollama" in answer.error and "ollama serve" in answer.error


def test_timeout_keeps_what_was_said(indexed, ollama):
    engine = engine_for(indexed, chat_model="gemma:2b", request_timeout=0.5)
    ollama.reply("slow", first_token_delay=3)
    answer = engine.ask("hi", "t1")
    assert answer.incomplete and "did not answer within 0.5 s" in answer.error


def test_broken_stream_keeps_partial_answer_and_next_turn_works(indexed, ollama):
    engine = engine_for(indexed, chat_model="gemma:2b")
    ollama.reply_stream_error_after(3, "one two three four five six", "model crashed")
    first = engine.ask("first question", "s1")
    assert first.incomplete and first.text.startswith("one") and "model crashed" in first.error
    ollama.reply("fine now")
    second = engine.ask("second question", "s1")
    assert second.text == "fine now" and not second.error
    assert len(user_messages(ollama.last_chat())) == 1  # the broken turn is not replayed to the model
    stored = indexed.conversations.get("s1").turns
    assert [t.incomplete for t in stored] == [True, False]


def test_empty_question_is_refused_before_any_request(indexed, ollama):
    answer = engine_for(indexed).ask(" \x00\x07 ")
    assert "empty" in answer.error and ollama.chat_requests() == []


def test_conversation_history_comes_from_the_persistent_store(indexed, ollama, settings):
    ollama.reply("Rocks are great.")
    engine_for(indexed, chat_model="gemma:2b").ask("Tell me about rocks", "p1")
    fresh = ChatEngine(Workspace(load_settings(settings.data_dir, environ=double_environ(ollama,
                                                                                       AGENT_CHAT_MODEL="gemma:2b"))))
    ollama.reply("rocks again")
    ollama.reply("More rocks.")
    fresh.ask("more?", "p1")
    assert "Tell me about rocks" in user_messages(ollama.chat_requests()[-2])[-1]  # the rewrite saw the history
    assert user_messages(ollama.last_chat())[0] == "Tell me about rocks"


@pytest.mark.parametrize("model", ["llama3.2", "gemma:2b"])
def test_stop_ends_the_answer_early_and_keeps_it(indexed, ollama, model):
    import threading

    words = " ".join(f"word{i}" for i in range(60))
    if model == "llama3.2":
        ollama.reply_tool_call("search_documents", {"query": "rocks"})
    ollama.reply(words, chunk_delay=0.1)  # 6 s to stream in full
    stop = threading.Event()
    answer = None
    for event in engine_for(indexed, chat_model=model).stream("Tell me about rocks", "stop1", stop=stop):
        if isinstance(event, Token):
            stop.set()
        if isinstance(event, Done):
            answer = event.answer
    assert answer.error == "Stopped by the user." and answer.incomplete
    assert answer.text.startswith("word0") and len(answer.text) < len(words) / 2
    assert indexed.conversations.get("stop1").turns[0].incomplete
