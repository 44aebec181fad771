"""The HTTP transport of the chat model: a cap on one NDJSON line, and Stop or a deadline
that end the request at once.

httpx collects a whole line before the `ollama` client parses it, so a server that sends a
300 MB line without a newline took 1.5 GB of memory (issue 14.7). This transport counts
the bytes since the last newline as they arrive and ends the reply past the cap.

A read blocked on a silent server only returned with the server's next byte (issue 14.10):
`watch_answer` shuts the answer's sockets from a watchdog thread when Stop is pressed or
the answer's deadline passes, which wakes the read at once.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field

import httpx

from agent.errors import OllamaResponseError


def max_line_bytes(max_answer_chars: int) -> int:
    """Room for a whole answer in one line, JSON-escaped (up to 6 bytes a character), plus 1 MiB."""
    return 6 * max_answer_chars + (1 << 20)


class LineCappedTransport(httpx.HTTPTransport):
    """An httpx transport whose responses fail once a line grows past `max_line` bytes."""

    def __init__(self, max_line: int) -> None:
        # no keep-alive: each request opens its connection, so the watch sees every socket
        # before the server answers (a chat request is seconds; a local connect, microseconds)
        super().__init__(limits=httpx.Limits(max_keepalive_connections=0))
        self.max_line = max_line

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        watch = _WATCH.get(None)
        if watch is not None:
            if watch.reason:
                raise httpx.ReadError(f"answer {watch.reason}")
            request.extensions = {**request.extensions, "trace": watch.trace}
        response = super().handle_request(request)
        response.stream = _CappedStream(response.stream, self.max_line, request.url.host)
        return response


@dataclass
class Watch:
    """One answer's open sockets; `reason` is "stopped" or "deadline" once they were shut."""

    sockets: set[socket.socket] = field(default_factory=set)
    reason: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.add(sock)
            if self.reason:
                _shut(sock)

    def trace(self, event: str, info: dict) -> None:
        """httpcore's trace hook: keep the socket as soon as it is connected."""
        if event.endswith("connect_tcp.complete") and info.get("return_value") is not None:
            sock = info["return_value"].get_extra_info("socket")
            if sock is not None:
                self.add(sock)

    def shut(self, reason: str) -> None:
        with self.lock:
            self.reason = reason
            for sock in self.sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a recv() blocked in another thread; close() does not
    except OSError:
        pass  # already closed


_WATCH: ContextVar[Watch | None] = ContextVar("answer_watch", default=None)


@contextmanager
def watch_answer(stop: threading.Event | None, seconds: float) -> Iterator[Watch]:
    """Requests made inside end within a moment of `stop` being set or `seconds` passing."""
    watch, done = Watch(), threading.Event()
    stop = stop or threading.Event()

    def watchdog() -> None:
        deadline = time.monotonic() + seconds
        while not done.is_set():
            if stop.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
                return watch.shut("stopped")
            if time.monotonic() >= deadline:
                return watch.shut("deadline")
        return None

    thread = threading.Thread(target=watchdog, name="answer-watchdog", daemon=True)
    token = _WATCH.set(watch)
    thread.start()
    try:
        yield watch
    finally:
        done.set()
        with suppress(ValueError):  # a generator resumed in another context: nothing to reset there
            _WATCH.reset(token)


class _CappedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, max_line: int, host: str) -> None:
        self.inner, self.max_line, self.host = inner, max_line, host

    def __iter__(self) -> Iterator[bytes]:
        run = 0
        for chunk in self.inner:
            newline = chunk.rfind(b"\n")
            run = len(chunk) - newline - 1 if newline >= 0 else run + len(chunk)
            if run > self.max_line:
                raise OllamaResponseError(
                    f"The server at {self.host} sent a reply line over {self.max_line // (1 << 20)} MB; "
                    "the answer was cut there.", "Check the server: Ollama's lines are a few hundred bytes.",
                    code="line_too_long", params={"host": self.host, "mb": self.max_line // (1 << 20)})
            yield chunk

    def close(self) -> None:
        self.inner.close()
