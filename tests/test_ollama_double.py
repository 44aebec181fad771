"""Tests of the Ollama test double, driven through the real clients.

The double is only worth having if the real `ChatOllama`, `OllamaEmbeddings` and
`ollama.Client` see what they would see from Ollama, so every test goes through them
(or through raw httpx where a client hides the wire format).
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import ollama
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_ollama import ChatOllama, OllamaEmbeddings

from tests.ollama_double import OllamaDouble, Reply

ROOT = Path(__file__).resolve().parent.parent


@tool
def search_documents(query: str) -> str:
    """Search the indexed PDFs."""
    return query


@pytest.fixture
def double() -> Iterator[OllamaDouble]:
    with OllamaDouble() as server:
        yield server


def chat(double: OllamaDouble, model: str = "llama3.2", **kwargs: object) -> ChatOllama:
    return ChatOllama(base_url=double.url, model=model, **kwargs)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


# ---------------------------------------------------------------- streaming chat


def test_stream_yields_scripted_text_in_several_chunks(double: OllamaDouble) -> None:
    double.reply("Hello there [a.pdf p.2]")
    chunks = list(chat(double).stream("hi"))
    texts = [c.content for c in chunks if c.content]
    assert len(texts) >= 3
    assert "".join(texts) == "Hello there [a.pdf p.2]"
    assert double.pending == 0


def test_usage_metadata_and_done_reason_reach_langchain(double: OllamaDouble) -> None:
    double.reply("one two three")
    message = chat(double).invoke("x" * 400)
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 100
    assert message.usage_metadata["output_tokens"] == 3
    assert message.response_metadata["done_reason"] == "stop"


def test_num_predict_cuts_the_answer_with_done_reason_length(double: OllamaDouble) -> None:
    double.reply("a b c d e f")
    message = chat(double, num_predict=2).invoke("hi")
    assert message.content == "a b "
    assert message.response_metadata["done_reason"] == "length"


def test_default_responder_quotes_the_last_user_message(double: OllamaDouble) -> None:
    question = "What does the annual report say about revenue growth in the second half?"
    answer = chat(double).invoke(question).content
    assert question[:60] in answer
    assert question[:61] not in answer


def test_callable_reply_sees_the_request(double: OllamaDouble) -> None:
    double.reply(lambda body: f"model={body['model']} turns={len(body['messages'])}")
    assert chat(double).invoke("hi").content == "model=llama3.2 turns=1"


def test_stream_false_answers_one_json_object(double: OllamaDouble) -> None:
    double.reply("whole answer")
    response = httpx.post(f"{double.url}/api/chat", json={
        "model": "llama3.2", "stream": False, "messages": [{"role": "user", "content": "hi"}]})
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["message"]["content"] == "whole answer"
    assert body["done"] is True and isinstance(body["eval_duration"], int)


# ---------------------------------------------------------------- tools and thinking


def test_scripted_tool_call_becomes_langchain_tool_call(double: OllamaDouble) -> None:
    double.reply_tool_call("search_documents", {"query": "budget 2024"})
    message = chat(double).bind_tools([search_documents]).invoke("What was the budget?")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("search_documents", {"query": "budget 2024"})]
    assert double.last_chat()["tools"][0]["function"]["name"] == "search_documents"


def test_default_responder_calls_first_tool_then_quotes_tool_result(double: OllamaDouble) -> None:
    llm = chat(double).bind_tools([search_documents])
    first = llm.invoke("revenue 2024")
    assert first.tool_calls[0]["args"] == {"query": "revenue 2024"}
    result = "Revenue grew 12% in 2024 [report.pdf p.3]"
    second = llm.invoke([
        HumanMessage("revenue 2024"),
        AIMessage("", tool_calls=first.tool_calls),
        ToolMessage(result, tool_call_id=first.tool_calls[0]["id"]),
    ])
    assert not second.tool_calls
    assert result in second.content
    assert double.last_chat()["messages"][-1]["role"] == "tool"


def test_tool_call_without_bound_tools_arrives_as_text(double: OllamaDouble) -> None:
    double.reply_tool_call("search_documents", {"query": "q"})
    message = chat(double).invoke("hi")
    assert not message.tool_calls
    assert '"search_documents"' in message.content


def test_model_without_tools_refuses_bound_tools(double: OllamaDouble) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        chat(double, "gemma:2b").bind_tools([search_documents]).invoke("hi")
    assert caught.value.status_code == 400
    assert "does not support tools" in caught.value.error


def test_thinking_model_sends_reasoning_content(double: OllamaDouble) -> None:
    double.reply("42", thinking="Adding up the numbers.")
    message = chat(double, "qwen3", reasoning=True).invoke("sum?")
    assert message.content == "42"
    assert message.additional_kwargs["reasoning_content"] == "Adding up the numbers."
    assert double.last_chat()["think"] is True


def test_think_on_a_model_without_thinking_is_refused(double: OllamaDouble) -> None:
    with pytest.raises(ollama.ResponseError, match="does not support thinking"):
        chat(double, reasoning=True).invoke("hi")


# ---------------------------------------------------------------- errors and failures


def test_unknown_model_is_404_not_found(double: OllamaDouble) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        chat(double, "mistral").invoke("hi")
    assert caught.value.status_code == 404
    assert caught.value.error == 'model "mistral" not found, try pulling it first'


def test_removed_model_is_not_found_and_restart_keeps_the_url(double: OllamaDouble) -> None:
    double.remove_model("llama3.2:latest")
    with pytest.raises(ollama.ResponseError, match="not found"):
        chat(double).invoke("hi")
    url = double.url
    double.stop()
    double.start()
    assert double.url == url and httpx.get(url).text == "Ollama is running"


def test_chat_with_embedding_model_is_refused(double: OllamaDouble) -> None:
    with pytest.raises(ollama.ResponseError, match="does not support chat"):
        chat(double, "nomic-embed-text").invoke("hi")


def test_missing_model_is_400(double: OllamaDouble) -> None:
    response = httpx.post(f"{double.url}/api/chat", json={"messages": []})
    assert (response.status_code, response.json()) == (400, {"error": "model is required"})


def test_scripted_503_raises_response_error(double: OllamaDouble) -> None:
    double.reply_error(503, "server busy")
    with pytest.raises(ollama.ResponseError) as caught:
        chat(double).invoke("hi")
    assert (caught.value.status_code, caught.value.error) == (503, "server busy")


def test_error_line_mid_stream_raises_after_first_chunks(double: OllamaDouble) -> None:
    double.reply_stream_error_after(2, "one two three four", "model runner crashed")
    received: list[str] = []
    with pytest.raises(ollama.ResponseError, match="model runner crashed"):
        for chunk in chat(double).stream("hi"):
            received.append(chunk.content)
    assert received == ["one ", "two "]


def test_disconnect_mid_stream_raises_httpx_error(double: OllamaDouble) -> None:
    double.reply_disconnect_after(2, "one two three four")
    received: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        for chunk in chat(double).stream("hi"):
            received.append(chunk.content)
    assert received == ["one ", "two "]


def test_client_timeout_fires_before_a_slow_first_token(double: OllamaDouble) -> None:
    double.reply("late", first_token_delay=2)
    started = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        chat(double, client_kwargs={"timeout": 0.5}).invoke("hi")
    assert time.monotonic() - started < 1.5


def test_fail_next_injects_an_error_on_any_route(double: OllamaDouble) -> None:
    double.fail_next("/api/embed", 503, "server busy")
    embeddings = OllamaEmbeddings(base_url=double.url, model="nomic-embed-text")
    with pytest.raises(ollama.ResponseError, match="server busy"):
        embeddings.embed_query("x")
    assert len(embeddings.embed_query("x")) == 768


def test_keep_alive_string_minus_one_is_rejected_like_ollama(double: OllamaDouble) -> None:
    with pytest.raises(ollama.ResponseError, match="missing unit"):
        chat(double, keep_alive="-1").invoke("hi")


def test_stop_returns_quickly_while_a_handler_sleeps_and_server_is_gone() -> None:
    server = OllamaDouble().start()
    server.reply("never", first_token_delay=30)
    client = ollama.Client(host=server.url, timeout=5)
    errors: list[BaseException] = []
    messages = [{"role": "user", "content": "hi"}]
    caller = threading.Thread(target=_collect, args=(errors, lambda: client.chat("llama3.2", messages=messages)))
    caller.start()
    time.sleep(0.2)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.0
    caller.join(2)
    assert not caller.is_alive() and errors
    with pytest.raises(ConnectionError):
        ollama.Client(host=server.url).list()


def _collect(errors: list[BaseException], call: Callable[[], object]) -> None:
    try:
        call()
    except Exception as err:  # the test inspects it
        errors.append(err)


# ---------------------------------------------------------------- embeddings


def test_embeddings_are_deterministic_normalised_and_similarity_aware(double: OllamaDouble) -> None:
    embeddings = OllamaEmbeddings(base_url=double.url, model="nomic-embed-text")
    a, same, near, far = embeddings.embed_documents([
        "The invoice total is 420 euros.", "The invoice total is 420 euros.",
        "The invoice total was 430 euros.", "Photosynthesis happens in chloroplasts.",
    ])
    assert len(a) == 768 and a == same
    assert math.isclose(math.sqrt(cosine(a, a)), 1.0, rel_tol=1e-9)
    assert cosine(a, near) > cosine(a, far) + 0.3
    assert double.embed_requests()[-1]["input"][0] == "The invoice total is 420 euros."


def test_embed_input_rules_match_ollama(double: OllamaDouble) -> None:
    client = ollama.Client(host=double.url)
    assert client.embed("nomic-embed-text", "").embeddings == []
    assert len(client.embed("llama3.2", "chat models embed too").embeddings[0]) == 3072
    response = httpx.post(f"{double.url}/api/embed", json={"model": "nomic-embed-text", "input": [1]})
    assert (response.status_code, response.json()) == (400, {"error": "invalid input type"})
    assert len(client.embeddings("nomic-embed-text", "legacy").embedding) == 768


# ---------------------------------------------------------------- model management


def test_root_version_and_head(double: OllamaDouble) -> None:
    assert httpx.get(double.url).text == "Ollama is running"
    head = httpx.head(double.url)
    assert head.status_code == 200 and head.content == b""
    assert httpx.get(f"{double.url}/api/version").json() == {"version": "0.12.0"}
    assert httpx.get(f"{double.url}/api/nope").status_code == 404


def test_tags_and_show_describe_the_models(double: OllamaDouble) -> None:
    client = ollama.Client(host=double.url)
    names = [m.model for m in client.list().models]
    assert names == ["llama3.2:latest", "gemma:2b", "qwen3:latest", "nomic-embed-text:latest"]
    llama = client.show("llama3.2")
    assert llama.capabilities == ["completion", "tools"]
    assert llama.modelinfo["llama.context_length"] == 131072
    assert llama.details.family == "llama" and llama.modified_at is not None
    assert client.show("gemma:2b").capabilities == ["completion"]
    assert client.show("nomic-embed-text").capabilities == ["embedding"]
    with pytest.raises(ollama.ResponseError) as caught:
        client.show("missing")
    assert caught.value.status_code == 404


def test_validate_model_on_init_accepts_name_without_tag(double: OllamaDouble) -> None:
    chat(double, validate_model_on_init=True)
    with pytest.raises(ValueError, match="not found"):
        chat(double, "mistral", validate_model_on_init=True)


def test_pull_streams_progress_and_adds_the_model(double: OllamaDouble) -> None:
    client = ollama.Client(host=double.url)
    statuses = [p.status for p in client.pull("mistral", stream=True)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert "mistral:latest" in [m.model for m in client.list().models]
    chat(double, "mistral").invoke("hi")


def test_pull_of_an_unknown_name_fails_with_an_error_line() -> None:
    with OllamaDouble(pullable=["llama3.2"]) as server:
        with pytest.raises(ollama.ResponseError, match="file does not exist"):
            list(ollama.Client(host=server.url).pull("nosuchmodel", stream=True))


def test_ps_lists_loaded_models_and_keep_alive_zero_unloads(double: OllamaDouble) -> None:
    client = ollama.Client(host=double.url)
    assert client.ps().models == []
    chat(double, num_ctx=8192).invoke("hi")
    (loaded,) = client.ps().models
    assert (loaded.model, loaded.context_length) == ("llama3.2:latest", 8192)
    client.chat("llama3.2", messages=[], keep_alive=0)
    assert client.ps().models == []


# ---------------------------------------------------------------- request log


def test_request_log_records_what_chatollama_sends(double: OllamaDouble) -> None:
    llm = chat(double, num_ctx=8192, temperature=0.1, keep_alive="10m").bind_tools([search_documents])
    llm.invoke("hello")
    body = double.last_chat()
    assert body["options"] == {"num_ctx": 8192, "temperature": 0.1}
    assert body["keep_alive"] == "10m"
    assert body["tools"][0]["function"]["parameters"]["properties"]["query"]["type"] == "string"
    assert double.requests[-1].headers["user-agent"].startswith("ollama-python/")
    double.clear()
    assert double.requests == [] and double.pending == 0
    with pytest.raises(LookupError):
        double.last_chat()


def test_reply_objects_and_generate_endpoint(double: OllamaDouble) -> None:
    double.enqueue(Reply("generated text", done_reason="length"))
    parts = list(ollama.Client(host=double.url).generate("llama3.2", "prompt", stream=True))
    assert "".join(p.response for p in parts) == "generated text"
    assert parts[-1].done_reason == "length" and parts[-1].context


# ---------------------------------------------------------------- CLI


def test_cli_serves_on_the_printed_url(tmp_path: Path) -> None:
    reply_file = tmp_path / "answer.txt"
    reply_file.write_text("Canned benchmark answer.", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.ollama_double", "--port", "0", "--reply-file", str(reply_file)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        url = process.stdout.readline().strip()  # type: ignore[union-attr]
        assert httpx.get(url).text == "Ollama is running"
        assert ChatOllama(base_url=url, model="llama3.2").invoke("hi").content == "Canned benchmark answer."
    finally:
        process.terminate()
        process.wait(5)


def test_num_parallel_makes_later_answers_wait_their_turn():
    with OllamaDouble(default_text="one two three", first_token_delay=0.3) as server:
        server.num_parallel = 1
        done: list[float] = []

        def ask() -> None:
            httpx.post(f"{server.url}/api/chat", json={"model": "llama3.2", "stream": False,
                                                        "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
            done.append(time.monotonic())

        started = time.monotonic()
        threads = [threading.Thread(target=ask) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert sorted(t - started for t in done)[1] >= 0.6  # the second waited for the first
