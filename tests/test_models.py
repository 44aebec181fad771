"""Model management (agent/chat/models.py) and `python -m agent models`, against the Ollama double."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from agent.chat.llm import ModelInfo, list_models
from agent.chat.models import (
    PullJob,
    PullProgress,
    context_exceeds,
    delete_model,
    loaded_models,
    prompt_truncated,
    pull_model,
)
from agent.cli_models import _PullBar
from agent.config import Settings, load_settings
from agent.errors import AgentError, ModelNotFoundError, OllamaUnreachableError
from tests.ollama_double import OllamaDouble
from tests.support import double_environ, run_cli


def names(settings: Settings) -> set[str]:
    return {m.name for m in list_models(settings)}


def test_pull_reports_growing_progress_and_installs_the_model(settings: Settings, ollama: OllamaDouble) -> None:
    seen: list[PullProgress] = []
    assert pull_model(settings, "mistral", seen.append)
    assert "mistral:latest" in names(settings)
    assert [p.stage for p in seen][0] == "manifest" and seen[-1].stage == "done"
    downloads = [p for p in seen if p.stage == "download"]
    assert downloads and downloads[-1].fraction == 1.0 and downloads[-1].total > 0
    fractions = [p.fraction for p in downloads]
    assert fractions == sorted(fractions) and fractions[0] < 1.0, "progress only grows"


def test_pull_of_an_unknown_name_says_so(tmp_path: Path) -> None:
    with OllamaDouble(pullable=["llama3.2"]) as double:
        settings = load_settings(tmp_path, environ=double_environ(double))
        with pytest.raises(ModelNotFoundError) as caught:
            pull_model(settings, "nosuchmodel")
    assert caught.value.code == "pull_unknown" and caught.value.params == {"model": "nosuchmodel"}


def test_pull_with_nothing_listening_is_unreachable(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={"OLLAMA_HOST": "http://127.0.0.1:9", "AGENT_CONNECT_RETRIES": "1"})
    with pytest.raises(OllamaUnreachableError) as caught:
        pull_model(settings, "llama3.2")
    assert caught.value.code == "ollama_unreachable"
    with pytest.raises(AgentError) as caught:
        pull_model(settings, "  ")
    assert caught.value.code == "pull_no_name"


def test_pull_job_runs_in_the_background_and_can_be_cancelled(settings: Settings, ollama: OllamaDouble) -> None:
    ollama.pull_delay = 0.3
    job = PullJob(settings, "phi3").start()
    assert not job.finished
    job.cancel()
    assert job.wait(10) and job.cancelled and not job.ok and job.error is None
    ollama.pull_delay = 0.0
    job = PullJob(settings, "phi3").start()
    assert job.wait(10) and job.ok and job.progress.stage == "done"
    assert "phi3:latest" in names(settings)


def test_delete_removes_the_model_and_a_missing_one_is_not_found(settings: Settings, ollama: OllamaDouble) -> None:
    delete_model(settings, "gemma:2b")
    assert "gemma:2b" not in names(settings)
    with pytest.raises(ModelNotFoundError) as caught:
        delete_model(settings, "gemma:2b")
    assert caught.value.params["model"] == "gemma:2b"


def test_loaded_models_come_from_ps_with_their_context(settings: Settings, ollama: OllamaDouble) -> None:
    from langchain_ollama import ChatOllama

    assert loaded_models(settings) == []
    ChatOllama(model="llama3.2", base_url=ollama.url, num_ctx=4096).invoke("hi")
    loaded = loaded_models(settings)
    assert [(m.name, m.context_length) for m in loaded] == [("llama3.2:latest", 4096)]
    assert loaded[0].expires_at is not None


def test_context_and_truncation_checks() -> None:
    small = ModelInfo("gemma:2b", ("completion",), context_length=8192)
    assert context_exceeds(16384, small) and not context_exceeds(8192, small)
    assert not context_exceeds(16384, None) and not context_exceeds(16384, ModelInfo("x"))
    assert prompt_truncated(8192, 8192) and prompt_truncated(8180, 8192)
    assert not prompt_truncated(4000, 8192) and not prompt_truncated(None, 8192)


def test_engine_notes_when_ollama_truncated_the_prompt(workspace, ollama: OllamaDouble) -> None:
    """Ollama reports prompt_eval_count == num_ctx when it cut the prompt's start: the answer says so."""
    from agent.chat.engine import ChatEngine

    ollama.reply_tool_call("search_documents", {"query": "x"})
    ollama.reply("An answer.", prompt_eval_count=workspace.settings.num_ctx)
    answer = ChatEngine(workspace).ask("Question?")
    nothing = {"code": "nothing_found", "params": {}}  # the workspace holds no documents
    assert answer.notes == [{"code": "prompt_truncated", "params": {"evaluated": 8192, "window": 8192}}, nothing]
    stored = workspace.conversations.get(answer.conversation).turns[-1]
    assert stored.notes == answer.notes, "kept with the turn"
    ollama.reply_tool_call("search_documents", {"query": "y"})
    ollama.reply("Another answer.")
    assert ChatEngine(workspace).ask("Question?").notes == [nothing]


def test_cli_models_pull_rm_ps(tmp_path: Path, ollama: OllamaDouble) -> None:
    env = {**double_environ(ollama), "AGENT_DATA_DIR": str(tmp_path / "data")}
    pulled = run_cli(["models", "pull", "mistral"], env)
    assert pulled.returncode == 0, pulled.stderr
    assert "Pulled mistral." in pulled.stdout
    assert "mistral: download" in pulled.stderr and "mistral: done" in pulled.stderr  # no terminal: one line a stage
    listed = run_cli(["models"], env)
    assert "mistral:latest" in listed.stdout
    removed = run_cli(["models", "rm", "mistral"], env)
    assert removed.returncode == 0 and "Deleted mistral." in removed.stdout
    assert "mistral" not in run_cli(["models"], env).stdout
    assert run_cli(["models", "ps"], env).stdout.strip() == "No model is loaded."
    missing = run_cli(["models", "pull"], env)
    assert missing.returncode == 1 and "needs a model name" in missing.stderr


def test_pull_bar_draws_a_terminal_progress_bar() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    bar = _PullBar("qwen3", out)
    bar(PullProgress("pulling manifest"))
    bar(PullProgress("pulling abc", completed=512 * 1024 * 1024, total=1024 * 1024 * 1024))
    bar(PullProgress("success", completed=1024 * 1024 * 1024, total=1024 * 1024 * 1024))
    bar.close()
    text = out.getvalue()
    assert "qwen3" in text and "50%" in text and "100%" in text and "1.00G" in text


def test_pull_job_reports_an_error_instead_of_dying(settings: Settings) -> None:
    broken = settings.model_copy(update={"ollama_host": "http://127.0.0.1:9", "connect_retries": 1})
    job = PullJob(broken, "llama3.2").start()
    assert job.wait(10) and job.error is not None and job.error.code == "ollama_unreachable"
    assert not job.ok and threading.active_count() < 50
