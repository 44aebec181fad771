"""Misbehaving settings and Ollama servers (issue 14, items 7 and 9-14): clear errors, no crash, no hang."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agent.config import read_settings
from tests.support import ROOT, run_cli

BAD_HOSTS = ["http://127.0.0.1:99999", "http://[::1", "javascript:alert(1)"]


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
