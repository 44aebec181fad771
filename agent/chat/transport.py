"""The HTTP transport of the chat model: a cap on one NDJSON line from the server.

httpx collects a whole line before the `ollama` client parses it, so a server that sends a
300 MB line without a newline took 1.5 GB of memory (issue 14.7). This transport counts
the bytes since the last newline as they arrive and ends the reply past the cap.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from agent.errors import OllamaResponseError


def max_line_bytes(max_answer_chars: int) -> int:
    """Room for a whole answer in one line, JSON-escaped (up to 6 bytes a character), plus 1 MiB."""
    return 6 * max_answer_chars + (1 << 20)


class LineCappedTransport(httpx.HTTPTransport):
    """An httpx transport whose responses fail once a line grows past `max_line` bytes."""

    def __init__(self, max_line: int) -> None:
        super().__init__()
        self.max_line = max_line

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        response.stream = _CappedStream(response.stream, self.max_line, request.url.host)
        return response


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
