"""Chat through the Ollama pool (agent.search.pool): failover before the first token."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from langchain_core.messages import BaseMessage

from agent.config import Settings
from agent.search import pool as core
from agent.search.ollama_lib import ollama  # before langchain_ollama, which imports ollama

# isort: split
from langchain_ollama import ChatOllama


def pooled(settings: Settings) -> Settings:
    """Settings aimed at the best host of the pool, for one-host calls (model discovery)."""
    hosts = settings.hosts()
    if hosts == [settings.ollama_host]:
        return settings
    return settings.model_copy(update={"ollama_host": core.POOL.order(hosts, settings.chat_model)[0]})


class PooledChatOllama(ChatOllama):
    """ChatOllama whose every request goes through the pool of `hosts`."""

    hosts: list[str] = []

    def _create_chat_stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                            **kwargs: Any) -> Iterator[Mapping[str, Any] | str]:
        params = self._chat_params(messages, stop, **kwargs)

        def open_stream(url: str) -> Iterator[Mapping[str, Any] | str]:
            client = ollama.Client(host=url, **{**(self.client_kwargs or {}), **(self.sync_client_kwargs or {})})
            if params["stream"]:
                yield from client.chat(**params)
            else:
                yield client.chat(**params)

        yield from core.failover(self.hosts, self.model, open_stream)
