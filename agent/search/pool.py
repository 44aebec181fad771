"""A pool of Ollama servers: per-host health and load, and failover before the first result.

Shared by chat (agent.chat.pool) and embeddings (agent.search.embeddings). Each request
goes to the least busy healthy host that has the model. A host that refuses the
connection or answers an error before the first streamed part is skipped and the request
sent to the next one; once a part has reached the caller, errors propagate as with a
single host (a half answer must not be silently restarted elsewhere).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from agent.config import Settings
from agent.errors import ModelNotFoundError
from agent.search.ollama_lib import ollama

T = TypeVar("T")
HEALTH_TTL = 5.0  # seconds a probe result is trusted
PROBE_TIMEOUT = 1.5  # /api/version and /api/tags answer at once on a live server


@dataclass
class HostState:
    """What the pool knows about one Ollama server."""

    url: str
    healthy: bool = False
    version: str = ""
    digests: dict[str, str] = field(default_factory=dict)  # installed model name -> weights digest
    error: str = ""
    checked: float = float("-inf")
    in_flight: int = 0

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.digests)

    def has(self, model: str) -> bool:
        return self.digest(model) is not None

    def digest(self, model: str) -> str | None:
        """The digest of the host's `model` (a bare name means `:latest`); None when not installed."""
        wanted = model if ":" in model else f"{model}:latest"
        return self.digests.get(model, self.digests.get(wanted))

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
        return [s.url for s in _ranked([self.state(url) for url in urls], model)]

    def claim(self, urls: list[str], model: str, tried: set[str]) -> str | None:
        """The best host not yet tried, counted busy in the same step, so that requests arriving
        together spread over the hosts; None when every host was tried. Pair with `release`."""
        states = [self.state(url) for url in urls if url not in tried]
        with self._lock:
            if not states:
                return None
            best = _ranked(states, model)[0]
            best.in_flight += 1
            return best.url

    def release(self, url: str) -> None:
        with self._lock:
            self._hosts[url].in_flight -= 1

    def mark_down(self, url: str, exc: BaseException) -> None:
        """A failed request makes the host unhealthy until its next probe."""
        host = self.state(url)
        host.healthy, host.error, host.checked = False, str(exc) or type(exc).__name__, self.clock()


def _ranked(states: list[HostState], model: str) -> list[HostState]:
    ready = sorted((s for s in states if s.healthy and s.has(model)), key=lambda s: s.in_flight)
    return ready + [s for s in states if s not in ready]


def fetch_version(url: str, timeout: float) -> str:
    """The server's /api/version; an HTTP error status raises ollama.ResponseError, as the client does."""
    response = httpx.get(f"{url}/api/version", timeout=timeout)
    if response.is_error:
        raise ollama.ResponseError(response.text, response.status_code)
    return str(response.json().get("version", "?"))


def _probe(host: HostState) -> None:
    try:
        version = fetch_version(host.url, PROBE_TIMEOUT)
        tags = httpx.get(f"{host.url}/api/tags", timeout=PROBE_TIMEOUT)
        tags.raise_for_status()
    except (httpx.HTTPError, OSError, ollama.ResponseError) as exc:
        host.healthy, host.error = False, str(exc) or type(exc).__name__
        return
    host.healthy, host.error = True, ""
    host.version = version
    host.digests = {str(m.get("model") or m.get("name")): str(m.get("digest") or "")
                    for m in tags.json().get("models", [])}


POOL = Pool()  # one per process: every session's questions count towards the same load


def host_failed(exc: BaseException) -> bool:
    """Down or broken hosts are marked unhealthy; a 4xx is about the request, not the host."""
    return not isinstance(exc, ollama.ResponseError) or exc.status_code >= 500


def failover(urls: list[str], model: str, open_stream: Callable[[str], Iterator[T]],
             pool: Pool | None = None) -> Iterator[T]:
    """Stream from the best host; before the first part, any failure moves on to the next host."""
    pool = pool or POOL
    last: BaseException | None = None
    tried: set[str] = set()
    while (url := pool.claim(urls, model, tried)) is not None:
        tried.add(url)
        try:
            try:
                stream = open_stream(url)
                first = next(stream)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - the last one is re-raised below
                if host_failed(exc):
                    pool.mark_down(url, exc)
                last = exc
                continue
            yield first
            yield from stream
            return
        finally:
            pool.release(url)
    assert last is not None
    raise last


def first_result(urls: list[str], model: str, call: Callable[[str], T], pool: Pool | None = None) -> T:
    """A one-shot request (embeddings) by the failover rule: retried on the next host until one answers."""
    stream = failover(urls, model, lambda url: iter((call(url),)), pool)
    try:
        return next(stream)
    finally:
        stream.close()  # releases the host now, not when the generator is collected


def check_same_build(urls: list[str], model: str, pool: Pool | None = None) -> None:
    """Refuse a pool whose live hosts hold different builds of `model` (or lack it): their vectors
    would not be comparable, and an index must hold one model's vectors only."""
    pool = pool or POOL
    builds = {s.url: s.digest(model) for s in (pool.state(url) for url in urls) if s.healthy}
    if len(set(builds.values())) < 2:
        return
    listed = ", ".join(f"{url} ({(digest or 'missing')[:12]})" for url, digest in builds.items())
    raise ModelNotFoundError(
        f"The Ollama hosts do not all have the same embedding model {model!r}: {listed}.",
        f"Run `ollama pull {model}` on every host of AGENT_OLLAMA_HOSTS so they hold the same build.",
        code="embedding_pool_mixed", params={"model": model, "hosts": listed})


def host_states(settings: Settings) -> list[HostState]:
    """Every pool host's freshly probed health and models (sidebar, `models`)."""
    return [POOL.state(url, fresh=True) for url in settings.hosts()]
