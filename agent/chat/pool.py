"""A pool of Ollama servers: per-host health and load, and failover before the first token.

Each question goes to the least busy healthy host that has the chat model. A host that
refuses the connection or answers an error before the first streamed part is skipped and
the question sent to the next one; once a part has reached the user, errors propagate as
with a single host (a half answer must not be silently restarted elsewhere).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from langchain_core.messages import BaseMessage

from agent.config import Settings
from agent.search.ollama_lib import ollama  # before langchain_ollama, which imports ollama

# isort: split
from langchain_ollama import ChatOllama

T = TypeVar("T")
HEALTH_TTL = 5.0  # seconds a probe result is trusted
PROBE_TIMEOUT = 1.5  # /api/version and /api/tags answer at once on a live server


@dataclass
class HostState:
    """What the pool knows about one Ollama server."""

    url: str
    healthy: bool = False
    version: str = ""
    models: tuple[str, ...] = ()
    error: str = ""
    checked: float = float("-inf")
    in_flight: int = 0

    def has(self, model: str) -> bool:
        wanted = model if ":" in model else f"{model}:latest"
        return model in self.models or wanted in self.models

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "healthy": self.healthy, "version": self.version,
                "models": list(self.models), "error": self.error, "in_flight": self.in_flight}


@dataclass
class Pool:
    """Health (probed, cached HEALTH_TTL s) and in-flight counts of every host seen."""

    clock: Callable[[], float] = time.monotonic
    _hosts: dict[str, HostState] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def state(self, url: str, *, fresh: bool = False) -> HostState:
        """The host's state, probing it when the cached result is stale."""
        with self._lock:
            host = self._hosts.setdefault(url, HostState(url))
            stale = fresh or self.clock() - host.checked > HEALTH_TTL
        if stale:
            _probe(host)
            host.checked = self.clock()
        return host

    def order(self, urls: list[str], model: str) -> list[str]:
        """Hosts to try, best first: healthy with the model, least busy; the others after, as a last resort."""
        states = [self.state(url) for url in urls]
        ready = sorted((s for s in states if s.healthy and s.has(model)), key=lambda s: s.in_flight)
        return [s.url for s in ready] + [s.url for s in states if s not in ready]

    def mark_down(self, url: str, exc: BaseException) -> None:
        """A failed request makes the host unhealthy until its next probe."""
        host = self.state(url)
        host.healthy, host.error, host.checked = False, str(exc) or type(exc).__name__, self.clock()

    @contextmanager
    def busy(self, url: str) -> Iterator[None]:
        host = self.state(url)
        with self._lock:
            host.in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                host.in_flight -= 1


def _probe(host: HostState) -> None:
    try:
        version = httpx.get(f"{host.url}/api/version", timeout=PROBE_TIMEOUT)
        tags = httpx.get(f"{host.url}/api/tags", timeout=PROBE_TIMEOUT)
        version.raise_for_status()
        tags.raise_for_status()
    except (httpx.HTTPError, OSError) as exc:
        host.healthy, host.error = False, str(exc) or type(exc).__name__
        return
    host.healthy, host.error = True, ""
    host.version = str(version.json().get("version", "?"))
    host.models = tuple(str(m.get("model") or m.get("name")) for m in tags.json().get("models", []))


POOL = Pool()  # one per process: every session's questions count towards the same load


def _host_failed(exc: BaseException) -> bool:
    """Down or broken hosts are marked unhealthy; a 4xx is about the request, not the host."""
    return not isinstance(exc, ollama.ResponseError) or exc.status_code >= 500


def failover(urls: list[str], model: str, open_stream: Callable[[str], Iterator[T]],
             pool: Pool | None = None) -> Iterator[T]:
    """Stream from the best host; before the first part, any failure moves on to the next host."""
    pool = pool or POOL
    last: BaseException | None = None
    for url in pool.order(urls, model):
        with pool.busy(url):
            stream = open_stream(url)
            try:
                first = next(stream)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - the last one is re-raised below
                if _host_failed(exc):
                    pool.mark_down(url, exc)
                last = exc
                continue
            yield first
            yield from stream
            return
    assert last is not None
    raise last


def pooled(settings: Settings) -> Settings:
    """Settings aimed at the best host of the pool, for one-host calls (model discovery)."""
    hosts = settings.hosts()
    if len(hosts) < 2:
        return settings
    return settings.model_copy(update={"ollama_host": POOL.order(hosts, settings.chat_model)[0]})


def host_states(settings: Settings) -> list[HostState]:
    """Every pool host's freshly probed health and models (sidebar, `models`)."""
    return [POOL.state(url, fresh=True) for url in settings.hosts()]


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

        yield from failover(self.hosts, self.model, open_stream)
