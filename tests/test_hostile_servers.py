"""Misbehaving settings and Ollama servers (issue 14, items 7 and 9-14): clear errors, no crash, no hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.chat.llm import list_models, show_model
from agent.config import read_settings, update_settings
from agent.errors import AgentError
from tests.ollama_double import ModelSpec, Reply
from tests.support import DEVSET_PDFS, ROOT, double_environ, engine_for, rss_mb, run_cli

BAD_HOSTS = ["http://127.0.0.1:99999", "http://[::1", "javascript:alert(1)"]


def read_turns(data_dir, conversation_id):
    from agent.workspace import Workspace

    return Workspace(read_settings(data_dir, environ={})[0]).conversations.get(conversation_id).turns


# ---- 13: malformed settings


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_malformed_ollama_host_is_a_clear_error_in_the_cli(host, tmp_path):
    result = run_cli(["models"], {"OLLAMA_HOST": host, "AGENT_DATA_DIR": str(tmp_path)}, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "OLLAMA_HOST" in result.stderr or "ollama_host" in result.stderr


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_the_app_modules_import_with_a_malformed_ollama_host(host):
    """What every web page imports: `import ollama` used to crash on the variable."""
    env = {**os.environ, "OLLAMA_HOST": host}
    code = "import agent.app.jobs, agent.chat.engine, agent.chat.models, agent.search.embeddings"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("page", [None, "pages/documents.py", "pages/settings.py"])
def test_every_web_page_starts_and_says_the_ollama_host_is_malformed(data_dir, monkeypatch, page):
    from tests.support import run_app

    monkeypatch.setenv("OLLAMA_HOST", "http://[::1")
    at = run_app(page)
    assert any("ollama\\_host" in e.value and "malformed" in e.value for e in at.error), [e.value for e in at.error]


def test_deeply_nested_settings_file_is_a_problem_not_a_recursion_error(tmp_path):
    (tmp_path / "settings.json").write_text("[" * 100_000 + "]" * 100_000)
    settings, problems = read_settings(tmp_path, environ={})
    assert settings.chat_model == "llama3.2"
    assert len(problems) == 1 and "nested" in str(problems[0])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_as_settings_file_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "settings.json")
    result = run_cli(["models", "--json"], {"AGENT_DATA_DIR": str(tmp_path), "OLLAMA_HOST": "http://127.0.0.1:9"},
                     timeout=60)
    assert "Traceback" not in result.stderr
    _, problems = read_settings(tmp_path, environ={})
    assert "not a regular file" in str(problems[0])


# ---- 14: bogus replies


@contextmanager
def raw_server(routes: dict[str, bytes]) -> Iterator[str]:
    """A server on 127.0.0.1 answering each path with fixed bytes (status 200): not Ollama's API."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            if self.command == "POST":
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = routes.get(self.path, b"{}")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # the client hanging up on a hostile reply is expected

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("bogus", [True, -5, 100])
def test_bogus_context_length_is_ignored(settings, ollama, bogus):
    ollama.add_model(ModelSpec("bogus:latest", ("completion", "tools"), family="llama", context_length=bogus))
    assert show_model(settings, "bogus:latest").context_length is None


def test_show_reply_without_model_info_is_a_clear_message(settings):
    with raw_server({"/api/show": b'{"capabilities": ["completion"]}'}) as url, pytest.raises(AgentError) as caught:
        show_model(update_settings(settings, ollama_host=url, connect_retries=1), "x")
    assert caught.value.code == "ollama_malformed" and "validation error" not in str(caught.value)


def test_malformed_tags_reply_is_a_clear_message(settings):
    with raw_server({"/api/tags": b'{"models": "not a list"}'}) as url, pytest.raises(AgentError) as caught:
        list_models(update_settings(settings, ollama_host=url, connect_retries=1))
    assert caught.value.code == "ollama_malformed"
    assert "validation error" not in str(caught.value) and "pydantic" not in str(caught.value)


def test_tool_call_with_invalid_json_is_a_clear_message(workspace, ollama):
    line = {"model": "llama3.2", "message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "search_documents", "arguments": "{not json"}}]}, "done": False}
    done = {"model": "llama3.2", "message": {"role": "assistant", "content": ""}, "done": True,
            "done_reason": "stop"}
    chat = (json.dumps(line) + "\n" + json.dumps(done) + "\n").encode()
    engine = engine_for(workspace)
    engine.backend()  # discovered on the double; then the chat goes to the bogus server
    with raw_server({"/api/chat": chat}) as url:
        engine.workspace.settings = update_settings(engine.settings, ollama_host=url)
        answer = engine.ask("What do rocks do?")
    assert answer.error and "validation error" not in answer.error and "num_ctx" not in answer.error
    assert answer.error_code == "ollama_malformed"


@pytest.mark.parametrize("thinking", [None, "Let me think about rocks."])
def test_a_model_that_returns_no_text_says_so_and_the_turn_is_stored(workspace, ollama, thinking):
    ollama.reply("", thinking=thinking)
    answer = engine_for(workspace).ask("What do rocks do?", "empty1")
    assert answer.error_code == "empty_answer" and "returned no answer" in answer.error
    assert [t.question for t in workspace.conversations.get("empty1").turns] == ["What do rocks do?"]


# ---- 12: embedding failures name the embedding model and host


PDF = str(DEVSET_PDFS / "squad_Geology.pdf")


def _breaks(ollama, how: str) -> None:
    if how == "not pulled":
        ollama.remove_model("nomic-embed-text")
    else:
        ollama.fail_next("/api/embed", 500, "embedding exploded", times=50)


@pytest.mark.parametrize("how", ["not pulled", "HTTP 500"])
def test_embedding_failure_in_ingest_names_the_embedding_model(ollama, tmp_path, how):
    env = double_environ(ollama, AGENT_DATA_DIR=str(tmp_path / "data"), AGENT_CONNECT_RETRIES="1")
    _breaks(ollama, how)
    result = run_cli(["ingest", PDF], env)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    out = result.stdout + result.stderr
    assert "nomic-embed-text" in out and "Cannot read" not in out


def test_embedding_server_down_in_ingest_names_the_host(tmp_path):
    env = {"OLLAMA_HOST": "http://127.0.0.1:9", "AGENT_EMBEDDING": "ollama:nomic-embed-text",
           "AGENT_DATA_DIR": str(tmp_path), "AGENT_CONNECT_RETRIES": "1"}
    result = run_cli(["ingest", PDF], env)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in out
    assert "127.0.0.1:9" in out and "nomic-embed-text" in out and "Cannot read" not in out


@pytest.mark.parametrize("how", ["not pulled", "HTTP 500"])
def test_embedding_failure_in_retrieve_reindex_and_ask(ollama, tmp_path, how):
    env = double_environ(ollama, AGENT_DATA_DIR=str(tmp_path / "data"), AGENT_CONNECT_RETRIES="1",
                         AGENT_MODE="always_retrieve")
    assert run_cli(["ingest", PDF], env).returncode == 0
    _breaks(ollama, how)
    for args in (["retrieve", "What is geology?"], ["reindex"], ["ask", "What is geology?"]):
        result = run_cli(args, env)
        out = result.stdout + result.stderr
        assert result.returncode != 0 and "Traceback" not in out, (args, out)
        assert "nomic-embed-text" in out and "llama3.2" not in out.split("error:")[-1], (args, out)


# ---- 9: searches per answer are capped


@pytest.fixture
def indexed(workspace):
    from tests.support import add_library

    add_library(workspace)
    return workspace


def test_a_model_that_searches_forever_is_made_to_answer(indexed, ollama):
    def reply(request):
        if request.get("tools"):
            return Reply(tool_calls=(("search_documents", {"query": "rocks again"}),))
        return "Rocks form from magma [1]."

    for _ in range(20):  # bounded: without a cap the model would search 20 times
        ollama.reply(reply)
    answer = engine_for(indexed, mode="agent", max_searches=3).ask("How do rocks form?")
    searches = [r for r in ollama.chat_requests() if r.get("tools")]
    assert len(searches) == 3 and len(ollama.chat_requests()) == 4
    assert answer.text == "Rocks form from magma [1]." and answer.sources and not answer.error


def test_an_unknown_tool_gets_a_clear_note(indexed, ollama):
    ollama.reply_tool_call("delete_everything", {"path": "/"})
    ollama.reply("Rocks form from magma [1].")
    answer = engine_for(indexed, mode="agent").ask("How do rocks form?")
    assert [n for n in answer.notes if n["code"] == "unknown_tool"] == [
        {"code": "unknown_tool", "params": {"name": "delete_everything"}}]
    assert "num_ctx" not in answer.error and answer.text == "Rocks form from magma [1]."


# ---- 7: answer size


def test_a_long_answer_is_cut_with_a_note_and_stored_cut(workspace, ollama):
    ollama.reply("rock " * 1000)  # 5000 characters
    answer = engine_for(workspace, max_answer_chars=1000).ask("Tell me about rocks", "long1")
    assert len(answer.text) <= 1000 and {"code": "answer_too_long", "params": {"chars": 1000}} in answer.notes
    assert len(workspace.conversations.get("long1").turns[0].answer) <= 1000


def test_a_huge_ndjson_line_is_refused_before_it_is_read_whole(workspace, ollama):
    start = {"model": "llama3.2", "message": {"role": "assistant", "content": "Rocks "}, "done": False}
    huge = json.dumps(start).encode() + b"\n" + b'{"model": "llama3.2", "message": {"content": "' + b"x" * (30 << 20)
    engine = engine_for(workspace, max_answer_chars=1000, mode="always_retrieve")
    engine.backend()  # discovered on the double; the chat goes to the hostile server
    before = rss_mb()
    with raw_server({"/api/chat": huge}) as url:
        engine.workspace.settings = update_settings(engine.settings, ollama_host=url)
        answer = engine.ask("Tell me about rocks", "huge1")
    assert answer.error_code == "line_too_long" and answer.text.strip() == "Rocks"
    assert rss_mb() - before < 60  # the 30 MB line is not held (the server's copy is already counted)
    assert workspace.conversations.get("huge1").turns[0].answer.strip() == "Rocks"


# ---- 10: Stop and the answer deadline end a request at once


def test_stop_ends_the_answer_within_a_second_while_the_server_is_silent(workspace, ollama):
    import time

    ollama.reply("Rocks form from magma.", first_token_delay=30)  # the server says nothing for 30 s
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    started = time.monotonic()
    events = list(engine_for(workspace, mode="always_retrieve").stream("How do rocks form?", "stop1", stop))
    assert time.monotonic() - started < 2.5  # Stop at 1 s, ended within a second of it
    answer = events[-1].answer
    assert answer.error_code == "stopped"


def test_a_trickling_server_is_cut_at_the_answer_deadline(workspace, ollama):
    import time

    ollama.reply("rock " * 200, chunk_delay=0.5)  # a token every 0.5 s: 100 s in all
    started = time.monotonic()
    answer = engine_for(workspace, mode="always_retrieve", answer_timeout_s=5).ask("How do rocks form?", "slow1")
    assert time.monotonic() - started < 7
    assert answer.error_code == "answer_deadline" and answer.text.startswith("rock")
    assert workspace.conversations.get("slow1").turns[0].answer == answer.text


# ---- 11: Ctrl-C in `chat` stops the answer, a second one at the prompt leaves


def _read_until(process: subprocess.Popen, marker: str, seconds: float) -> str:
    """Output of `process` up to `marker` (bounded by `seconds`: a hang fails the test)."""
    import selectors
    import time

    seen, deadline = "", time.monotonic() + seconds
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while marker not in seen and time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                chunk = os.read(process.stdout.fileno(), 4096).decode()
                if not chunk:
                    break
                seen += chunk
    assert marker in seen, seen
    return seen


def test_ctrl_c_in_chat_stops_the_answer_and_returns_to_the_prompt(ollama, tmp_path):
    import signal

    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "OLLAMA_"))},
           **double_environ(ollama, AGENT_DATA_DIR=str(tmp_path / "data"), AGENT_MODE="always_retrieve")}
    ollama.reply("Rocks form " + "slowly " * 100, chunk_delay=0.3)
    process = subprocess.Popen([sys.executable, "-m", "agent", "chat", "--conversation", "int1"], cwd=ROOT,
                               env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _read_until(process, ">>> ", 60)
        process.stdin.write(b"How do rocks form?\n")
        process.stdin.flush()
        _read_until(process, "Rocks form", 30)
        process.send_signal(signal.SIGINT)
        shown = _read_until(process, ">>> ", 5)  # back at the prompt, well before the 30 s answer ends
        assert "Stopped" in shown and "Traceback" not in shown
        process.send_signal(signal.SIGINT)
        _read_until(process, "Ctrl-C again", 5)
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    turns = read_turns(tmp_path / "data", "int1")
    assert len(turns) == 1 and turns[0].answer.startswith("Rocks form") and turns[0].incomplete
