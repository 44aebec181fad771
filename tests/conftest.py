"""Shared fixtures: the Ollama test double, a settings object pointing at it, a workspace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import ENV_VARS, Settings, load_settings
from agent.workspace import Workspace
from tests.ollama_double import OllamaDouble
from tests.support import double_environ


@pytest.fixture
def ollama() -> Iterator[OllamaDouble]:
    with OllamaDouble() as double:
        yield double


@pytest.fixture
def settings(tmp_path: Path, ollama: OllamaDouble) -> Settings:
    return load_settings(tmp_path / "data", environ=double_environ(ollama))


@pytest.fixture
def workspace(settings: Settings) -> Workspace:
    return Workspace(settings)


@pytest.fixture
def double():
    with OllamaDouble() as server:
        yield server


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, double: OllamaDouble) -> Path:
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OLLAMA_HOST", double.url)
    monkeypatch.setenv("AGENT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AGENT_EMBEDDING", "ollama:nomic-embed-text")
    return tmp_path / "data"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """One real PostgreSQL (pgvector) for the whole test session."""
    from agent._pg import close_all  # noqa: PLC0415
    from tests.pg_support import postgres_server  # noqa: PLC0415  (only sessions that need it start it)

    with postgres_server() as uri:
        yield uri
        close_all()  # the app's pools first: the server then stops at once


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A fresh database on the session's server."""
    from tests.pg_support import fresh_database  # noqa: PLC0415

    return fresh_database(pg_server)
