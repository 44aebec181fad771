"""The sidebar's Ollama status line and model picker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.config import Settings
from agent.errors import AgentError


@dataclass(frozen=True)
class OllamaStatus:
    reachable: bool
    host: str
    version: str = ""
    error: AgentError | None = None  # why it is not reachable


PROBE_TIMEOUT = 2.0  # seconds: the status line is re-probed often, and must not hang a page


def ollama_status(settings: Settings) -> OllamaStatus:
    """One quick probe of the server (no retries, short timeout), for the sidebar status line."""
    from agent.chat.llm import server_version

    quick = settings.model_copy(update={"connect_retries": 1})
    try:
        return OllamaStatus(True, settings.ollama_host, version=server_version(quick, PROBE_TIMEOUT))
    except AgentError as err:
        return OllamaStatus(False, settings.ollama_host, error=err)


def chat_model_names(models: list[Any]) -> list[str]:
    """Names of the models that can chat (embedding-only models left out)."""
    return [m.name for m in models if not m.capabilities or "completion" in m.capabilities]
