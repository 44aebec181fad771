"""The sidebar's Ollama status line, the pool's host lines and the model picker."""

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


@dataclass(frozen=True)
class HostHealth:
    """One pool host as the sidebar shows it."""

    url: str
    healthy: bool
    version: str = ""
    models: tuple[str, ...] = ()
    error: str = ""


def ollama_status(settings: Settings) -> OllamaStatus:
    """One quick probe of the server (with a pool: its best host; no retries, short timeout),
    for the sidebar status line."""
    from agent.chat.llm import server_version
    from agent.chat.pool import pooled

    quick = pooled(settings).model_copy(update={"connect_retries": 1})
    try:
        return OllamaStatus(True, quick.ollama_host, version=server_version(quick, PROBE_TIMEOUT))
    except AgentError as err:
        return OllamaStatus(False, quick.ollama_host, error=err)


def pool_health(settings: Settings) -> list[HostHealth]:
    """Each pool host's health and models, freshly probed; empty without a pool (one host)."""
    from agent.search.pool import host_states

    if len(settings.hosts()) < 2:
        return []
    return [HostHealth(h.url, h.healthy, h.version, h.models, h.error) for h in host_states(settings)]


def chat_model_names(models: list[Any]) -> list[str]:
    """Names of the models that can chat (embedding-only models left out)."""
    return [m.name for m in models if not m.capabilities or "completion" in m.capabilities]
