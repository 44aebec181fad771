"""Ollama discovery and the errors users meet, against the test double over real HTTP."""

import socket

import pytest

from agent.chat.llm import (
    build_chat_model,
    find_model,
    list_models,
    resolve_backend,
    server_version,
    show_model,
    with_retry,
)
from agent.config import load_settings
from agent.errors import (
    ModelNotFoundError,
    OllamaBusyError,
    OllamaTimeoutError,
    OllamaUnreachableError,
)
from tests.support import double_environ


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_list_models_reports_capabilities(settings):
    models = list_models(settings)
    llama = find_model(models, "llama3.2")
    gemma = find_model(models, "gemma:2b")
    assert llama.tools and llama.context_length == 131072
    assert not gemma.tools
    assert find_model(models, "qwen3").thinking


def test_unreachable_server_names_the_fix(tmp_path):
    settings = load_settings(tmp_path, environ={"OLLAMA_HOST": closed_port_url(), "AGENT_CONNECT_RETRIES": "2"})
    with pytest.raises(OllamaUnreachableError) as err:
        server_version(settings)
    assert "ollama serve" in err.value.fix and settings.ollama_host in err.value.message


def test_model_not_pulled_names_the_pull_command(settings, ollama):
    ollama.remove_model("llama3.2")
    with pytest.raises(ModelNotFoundError) as err:
        show_model(settings, "llama3.2")
    assert "ollama pull llama3.2" in str(err.value)


def test_connection_retries_back_off_then_succeed(settings, ollama):
    ollama.fail_next("/api/show", 503, "server busy", times=1)
    delays = []
    info = with_retry(lambda: show_model(settings, "gemma:2b"), settings, sleep=delays.append)
    assert info.name == "gemma:2b"
    assert len([r for r in ollama.requests if r.path == "/api/show"]) == 2


def test_retries_are_bounded(settings, ollama):
    ollama.fail_next("/api/version", 503, "server busy", times=5)
    with pytest.raises(OllamaBusyError):
        server_version(settings)
    assert len([r for r in ollama.requests if r.path == "/api/version"]) == settings.connect_retries


def test_backoff_is_exponential(settings):
    calls, delays = [], []

    def failing():
        calls.append(1)
        raise ConnectionError("down")

    with pytest.raises(OllamaUnreachableError):
        with_retry(failing, settings.model_copy(update={"connect_retries": 4}), sleep=delays.append)
    assert len(calls) == 4 and delays == [0.25, 0.5, 1.0]


def test_chat_model_is_configured_from_settings(settings, ollama):
    backend = resolve_backend(settings)
    model = build_chat_model(settings.model_copy(update={"keep_alive": "-1", "num_ctx": 4096}), backend)
    model.invoke("hello")
    body = ollama.last_chat()
    assert body["model"] == "llama3.2"
    assert body["options"]["num_ctx"] == 4096 and body["options"]["temperature"] == settings.temperature
    assert body["options"]["repeat_penalty"] == settings.repeat_penalty
    assert body["keep_alive"] == -1


def test_timeout_is_reported_with_the_fix(settings, ollama):
    from agent.chat.llm import translate_error

    slow = settings.model_copy(update={"request_timeout": 0.3})
    ollama.reply("late", first_token_delay=2)
    model = build_chat_model(slow, resolve_backend(slow))
    with pytest.raises(Exception) as raw:
        model.invoke("hi")
    err = translate_error(raw.value, slow)
    assert isinstance(err, OllamaTimeoutError) and "timeout" in err.fix.lower()


def test_auto_backend_uses_ollama_when_it_answers(tmp_path, ollama):
    settings = load_settings(tmp_path, environ=double_environ(ollama, AGENT_BACKEND="auto"))
    backend = resolve_backend(settings)
    assert backend.kind == "ollama" and backend.tools and backend.notice == ""


def test_forced_ollama_backend_does_not_fall_back(tmp_path):
    settings = load_settings(tmp_path, environ={"OLLAMA_HOST": closed_port_url(), "AGENT_BACKEND": "ollama",
                                                "AGENT_CONNECT_RETRIES": "1"})
    with pytest.raises(OllamaUnreachableError):
        resolve_backend(settings)
