"""A faithful Ollama HTTP test double, standard library only.

Why a double and not mocks: the app talks to Ollama through the real `ollama` client and
`langchain-ollama`. Mocking those clients would only test our guesses about them. This
double serves Ollama's real HTTP API on 127.0.0.1, so the real clients and httpx run
unchanged: NDJSON streaming, error bodies and status codes, errors in the middle of a
stream, dropped connections and client timeouts all behave as they do against Ollama.
The behaviour follows /work/shared/ollama-api.md and Ollama's server source
(`server/routes.go`); where they differ, the comments say which was followed and why.

Use it in tests::

    with OllamaDouble() as ollama:
        ollama.reply("Hello there [a.pdf p.2]")
        ChatOllama(base_url=ollama.url, model="llama3.2").invoke("hi")
        assert ollama.last_chat()["options"]["num_ctx"] == 8192

or as a separate process, for benchmarks and browser tests::

    python -m tests.ollama_double --port 11434 --first-token-delay 0.5
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import re
import socket
import sys
import threading
import time
import traceback
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Union
from urllib.parse import urlsplit

JSON = dict[str, Any]
ToolCallSpec = tuple[str, Mapping[str, Any]]
ReplySource = Union["Reply", str, Callable[[JSON], Union["Reply", str]]]

VERSION = "0.12.0"
DEFAULT_NUM_CTX = 4096  # Ollama 0.12's default context window when num_ctx is not sent
DEFAULT_KEEP_ALIVE = 300.0  # seconds, Ollama's "5m"
QUOTE_CHARS = 60
DEFAULT_THINKING = "Let me look at the question and the context before answering."


# --------------------------------------------------------------------------- models


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/:]*$")


def full_name(name: str) -> str | None:
    """Ollama's fully qualified name (`registry.ollama.ai/library/x:latest`), None if invalid."""
    name = name.strip()
    if not _NAME_RE.match(name):
        return None
    base, tag = name, "latest"
    if ":" in name.rsplit("/", 1)[-1]:
        base, tag = name.rsplit(":", 1)
    parts = base.split("/")
    if len(parts) > 3 or not all(parts) or not tag:
        return None
    defaults = ["registry.ollama.ai", "library"][: 3 - len(parts)]
    return f"{'/'.join(defaults + parts)}:{tag}"


def _key(name: str) -> str:
    """Lookup key: Ollama matches model names case-insensitively."""
    return (short_name(name) or "").lower()


def short_name(name: str) -> str | None:
    """The name /api/tags shows (`llama3.2:latest`; the tag is never dropped)."""
    full = full_name(name)
    if full is None:
        return None
    return full.removeprefix("registry.ollama.ai/").removeprefix("library/")



@dataclass(frozen=True)
class ModelSpec:
    """A model the double has "pulled": what /api/tags, /api/show and the checks report.

    `name` is normalised the way Ollama does (`llama3.2` -> `llama3.2:latest`), so specs
    and requests may use either form.
    """

    name: str
    capabilities: tuple[str, ...] = ("completion",)
    family: str = "llama"
    context_length: int = 8192
    parameter_size: str = "7B"
    quantization_level: str = "Q4_K_M"
    embedding_length: int = 768
    size: int = 4_000_000_000

    def __post_init__(self) -> None:
        short = short_name(self.name)
        if short is None:
            raise ValueError(f"invalid model name: {self.name!r}")
        object.__setattr__(self, "name", short)
        object.__setattr__(self, "capabilities", tuple(self.capabilities))

    @classmethod
    def coerce(cls, model: ModelSpec | str | Mapping[str, Any]) -> ModelSpec:
        """Accept a spec, a bare name (looked up among the defaults) or a dict of fields."""
        if isinstance(model, ModelSpec):
            return model
        if isinstance(model, str):
            return cls.for_name(model)
        return cls(**model)

    @classmethod
    def for_name(cls, name: str) -> ModelSpec:
        """The default spec for `name`, or a plausible guess so any name can be pulled."""
        for spec in DEFAULT_MODELS:
            if _key(spec.name) == _key(name):
                return spec
        if "embed" in name.lower():
            return cls(name, ("embedding",), family="bert", context_length=512, parameter_size="335M")
        return cls(name)

    @property
    def digest(self) -> str:
        """A stable fake sha256 digest, so tags/ps/pull agree with each other; like a real digest it
        differs between two builds of one name (another quantization or embedding length)."""
        weights = f"{self.name}|{self.quantization_level}|{self.embedding_length}|{self.size}"
        return hashlib.sha256(weights.encode()).hexdigest()

    def details(self) -> JSON:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }


# One model per case the app must handle: tools, no tools, thinking, embedding only.
DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("llama3.2:latest", ("completion", "tools"), family="llama", context_length=131072,
              parameter_size="3.2B", embedding_length=3072, size=2_019_393_189),
    ModelSpec("gemma:2b", ("completion",), family="gemma", context_length=8192, parameter_size="3B",
              quantization_level="Q4_0", embedding_length=2048, size=1_678_456_656),
    ModelSpec("qwen3:latest", ("completion", "tools", "thinking"), family="qwen3", context_length=40960,
              parameter_size="8.2B", embedding_length=4096, size=5_225_387_923),
    ModelSpec("nomic-embed-text:latest", ("embedding",), family="nomic-bert", context_length=2048,
              parameter_size="137M", quantization_level="F16", embedding_length=768, size=274_302_450),
)

# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Reply:
    """One scripted model turn for /api/chat or /api/generate.

    `status` other than 200 answers `{"error": error}` with that status. With status 200,
    `cut_after` chunks are streamed and then either an `{"error": ...}` line (`error` set)
    or an abrupt close (`disconnect`). Delays of None fall back to the double's defaults.
    """

    text: str = ""
    thinking: str | None = None
    tool_calls: tuple[ToolCallSpec, ...] = ()
    status: int = 200
    error: str | None = None
    cut_after: int | None = None
    disconnect: bool = False
    first_token_delay: float | None = None
    chunk_delay: float | None = None
    done_reason: str = "stop"
    prompt_eval_count: int | None = None  # report this instead of the estimate (e.g. Ollama truncated to num_ctx)


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the double received it; `headers` keys are lower-case."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    time: float


class _HTTPError(Exception):
    """An Ollama-style `{"error": message}` answer, raised from anywhere in a route."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Disconnect(Exception):
    """Unwinds a handler after the socket was closed on purpose."""


# --------------------------------------------------------------------------- text helpers


def split_chunks(text: str) -> list[str]:
    """Split text into token-like chunks on whitespace, keeping every character."""
    return [part for part in re.split(r"(?<=\s)(?=\S)", text) if part]


def embed_text(text: str, dimensions: int) -> list[float]:
    """A deterministic, L2-normalised embedding from hashed character trigrams.

    Texts sharing many trigrams get close vectors, so retrieval ranks sensibly without a
    model. crc32 (not hash()) keeps vectors stable across processes.
    """
    vector = [0.0] * dimensions
    padded = f"  {text.lower()}  "
    for i in range(len(padded) - 2):
        h = zlib.crc32(padded[i : i + 3].encode())
        vector[h % dimensions] += -1.0 if h & 0x80000000 else 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def estimate_tokens(text: str) -> int:
    """Roughly four characters per token, like the budget the app computes."""
    return max(1, len(text) // 4)


def _q(value: str) -> str:
    """Go's %q for the names that appear in Ollama's error messages."""
    return json.dumps(value, ensure_ascii=False)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_GO_DURATION_PART = r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)"
_GO_DURATION = re.compile(rf"[-+]?(?:{_GO_DURATION_PART})+")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_keep_alive(value: Any) -> float:
    """Seconds to keep a model loaded (inf = forever), parsed exactly as Ollama does.

    A JSON number is seconds; a string must be a Go duration ("5m", "1h30m", "0"), so the
    string "-1" is a 400, a trap for code that copies OLLAMA_KEEP_ALIVE into requests.
    """
    if value is None:
        return DEFAULT_KEEP_ALIVE
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _HTTPError(400, f"Unsupported type: '{type(value).__name__}'")
    if not isinstance(value, str):
        return math.inf if value < 0 else float(int(value))
    if value == "0":
        return 0.0
    if not _GO_DURATION.fullmatch(value):
        kind = "missing unit in" if re.fullmatch(r"[-+]?[\d.]+", value) else "invalid"
        raise _HTTPError(400, f"time: {kind} duration {_q(value)}")
    if value.startswith("-"):
        return math.inf
    return sum(float(n) * _GO_UNITS[unit] for n, unit in re.findall(_GO_DURATION_PART, value))


# --------------------------------------------------------------------------- HTTP plumbing


class _Handler(BaseHTTPRequestHandler):
    """Thin HTTP layer: framing (JSON, chunked NDJSON, plain text) and aborts."""

    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as Ollama's Go server
    server: _Server

    def do_GET(self) -> None:
        self.started = time.monotonic()
        self.streaming = False
        try:
            self.server.double._handle(self)
        except (_Disconnect, OSError):  # on purpose, or the client gave up (timeout)
            self.close_connection = True

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: test output should show failures, not an access log."""

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status: int, payload: Any) -> None:
        self._send(status, "application/json; charset=utf-8", json.dumps(payload).encode())

    def send_text(self, status: int, text: str) -> None:
        self._send(status, "text/plain; charset=utf-8", text.encode())

    def send_error_json(self, status: int, message: str) -> None:
        """Before the stream started: a status + JSON error; after: one more NDJSON line."""
        if self.streaming:
            self.write_line({"error": message})
            self.end_stream()
        else:
            self.send_json(status, {"error": message})

    def write_line(self, payload: JSON) -> None:
        """One NDJSON line as one HTTP chunk; headers go out with the first line, like Go."""
        if not self.streaming:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.streaming = True
        data = json.dumps(payload).encode() + b"\n"
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def disconnect(self) -> None:
        """Close the socket mid-response, as a crashed or killed server would."""
        self.connection.shutdown(socket.SHUT_RDWR)
        raise _Disconnect

    def _send(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    """Tracks open connections so stop() can cut idle keep-alive sockets too."""

    daemon_threads = True
    block_on_close = False  # never join handler threads: one may be sleeping on a delay

    def __init__(self, address: tuple[str, int], double: OllamaDouble) -> None:
        self.double = double
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (OSError, _Disconnect)):
            super().handle_error(request, client_address)


# --------------------------------------------------------------------------- the double


@dataclass
class _Loaded:
    spec: ModelSpec
    expires_at: float
    num_ctx: int


@dataclass
class _State:
    """Everything tests can change or inspect, guarded by OllamaDouble._lock."""

    models: dict[str, ModelSpec] = field(default_factory=dict)
    modified_at: dict[str, float] = field(default_factory=dict)
    loaded: dict[str, _Loaded] = field(default_factory=dict)
    replies: deque[ReplySource] = field(default_factory=deque)
    failures: dict[str, deque[tuple[int, str]]] = field(default_factory=dict)
    log: list[RecordedRequest] = field(default_factory=list)


class OllamaDouble:
    """An Ollama server on 127.0.0.1 with scripted replies and a request log.

    Settings that tests may change at any time: `latency` (seconds before any route
    answers), `first_token_delay` and `chunk_delay` (defaults for chat/generate replies),
    `embed_delay` (seconds per /api/embed batch: a slow embedding model),
    `num_parallel` (answers served at once, as OLLAMA_NUM_PARALLEL; later ones wait; 0: no limit),
    `default_text` (the default responder's answer text), `default_num_ctx`, `pull_delay`.
    """

    def __init__(
        self,
        models: Iterable[ModelSpec | str | Mapping[str, Any]] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        first_token_delay: float = 0.0,
        chunk_delay: float = 0.0,
        default_text: str | None = None,
        pullable: Iterable[ModelSpec | str | Mapping[str, Any]] | None = None,
        default_num_ctx: int = DEFAULT_NUM_CTX,
        version: str = VERSION,
    ) -> None:
        self.latency = latency
        self.first_token_delay = first_token_delay
        self.chunk_delay = chunk_delay
        self.embed_delay = 0.0
        self.num_parallel = 0
        self._serving = 0
        self._slot_free = threading.Condition()
        self.default_text = default_text
        self.default_num_ctx = default_num_ctx
        self.version = version
        self.pull_delay: float | None = None  # seconds between pull progress lines (None: chunk_delay)
        self._host, self._port = host, port
        self._pullable = None if pullable is None else {_key(s.name): s for s in map(ModelSpec.coerce, pullable)}
        self._lock = threading.RLock()
        self._state = _State()
        self._call_ids = itertools.count(1)
        self._server: _Server | None = None
        self._stopping = threading.Event()
        self._routes: dict[tuple[str, str], Callable[[_Handler, Any], None]] = {
            ("GET", "/"): self._root,
            ("HEAD", "/"): self._root,
            ("GET", "/api/version"): self._version,
            ("HEAD", "/api/version"): self._version,
            ("GET", "/api/tags"): self._tags,
            ("HEAD", "/api/tags"): self._tags,
            ("POST", "/api/show"): self._show,
            ("GET", "/api/ps"): self._ps,
            ("POST", "/api/pull"): self._pull,
            ("DELETE", "/api/delete"): self._delete,
            ("POST", "/api/chat"): self._chat,
            ("POST", "/api/generate"): self._generate,
            ("POST", "/api/embed"): self._embed,
            ("POST", "/api/embeddings"): self._embeddings,
        }
        now = time.time()
        for i, model in enumerate(DEFAULT_MODELS if models is None else models):
            self.add_model(model, modified_at=now - 60 * i)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> OllamaDouble:
        """Serve in a daemon thread. After stop(), start() serves again on the same port."""
        if self._server is not None:
            return self
        self._stopping = threading.Event()
        self._server = _Server((self._host, self._port), self)
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop at once: wakes handlers sleeping on delays and cuts open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        self._stopping.set()
        server.server_close()

    def __enter__(self) -> OllamaDouble:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL for `base_url=` / `OLLAMA_HOST`, e.g. http://127.0.0.1:54321."""
        if self._server is None and self._port == 0:
            raise RuntimeError("OllamaDouble is not started")
        return f"http://{self._host}:{self._port}"

    # ---------------------------------------------------------------- models

    @property
    def models(self) -> list[ModelSpec]:
        with self._lock:
            return list(self._state.models.values())

    def add_model(self, model: ModelSpec | str | Mapping[str, Any], *, modified_at: float | None = None) -> ModelSpec:
        """Make a model available, as if pulled. Returns the normalised spec."""
        spec = ModelSpec.coerce(model)
        with self._lock:
            self._state.models[_key(spec.name)] = spec
            self._state.modified_at[_key(spec.name)] = time.time() if modified_at is None else modified_at
        return spec

    def remove_model(self, name: str) -> None:
        """Forget a model, e.g. to test the app's "model not pulled" path."""
        with self._lock:
            spec = self._state.models.pop(_key(name), None)
            if spec is not None:
                self._state.loaded.pop(spec.name, None)

    # ---------------------------------------------------------------- scripting

    def enqueue(self, reply: ReplySource) -> None:
        """Queue a Reply, a text, or a callable `(request_json) -> Reply | str`."""
        with self._lock:
            self._state.replies.append(reply)

    def reply(
        self,
        text: str | Callable[[JSON], Reply | str] = "",
        *,
        thinking: str | None = None,
        tool_calls: Sequence[ToolCallSpec] = (),
        first_token_delay: float | None = None,
        chunk_delay: float | None = None,
        done_reason: str = "stop",
        prompt_eval_count: int | None = None,
    ) -> None:
        """Queue the next chat/generate answer (FIFO). A callable is called per request."""
        self.enqueue(text if callable(text) else Reply(
            text, thinking, tuple(tool_calls), first_token_delay=first_token_delay,
            chunk_delay=chunk_delay, done_reason=done_reason, prompt_eval_count=prompt_eval_count))

    def reply_tool_call(self, name: str, arguments: Mapping[str, Any] | None = None, *, text: str = "",
                        first_token_delay: float | None = None, chunk_delay: float | None = None) -> None:
        """Queue a turn that calls tool `name` (after optional `text`)."""
        self.reply(text, tool_calls=[(name, dict(arguments or {}))],
                   first_token_delay=first_token_delay, chunk_delay=chunk_delay)

    def reply_error(self, status: int, message: str, *, first_token_delay: float | None = None) -> None:
        """Queue an HTTP error answer, e.g. 503 for Ollama's full queue."""
        self.enqueue(Reply(status=status, error=message, first_token_delay=first_token_delay))

    def reply_stream_error_after(self, n_chunks: int, text: str, error: str, *,
                                 first_token_delay: float | None = None, chunk_delay: float | None = None) -> None:
        """Stream `n_chunks` of `text`, then an `{"error": error}` line with status 200.

        With n_chunks=0 Ollama has not written anything yet, so it answers status 500.
        """
        self.enqueue(Reply(text, error=error, cut_after=n_chunks,
                           first_token_delay=first_token_delay, chunk_delay=chunk_delay))

    def reply_disconnect_after(self, n_chunks: int, text: str, *,
                               first_token_delay: float | None = None, chunk_delay: float | None = None) -> None:
        """Stream `n_chunks` of `text`, then close the socket (0: close before any response)."""
        self.enqueue(Reply(text, cut_after=n_chunks, disconnect=True,
                           first_token_delay=first_token_delay, chunk_delay=chunk_delay))

    def fail_next(self, path: str, status: int, message: str, times: int = 1) -> None:
        """Make the next `times` requests to any route (e.g. /api/embed) fail with `status`."""
        with self._lock:
            self._state.failures.setdefault(path, deque()).extend([(status, message)] * times)

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet (assert 0 to prove each was used)."""
        with self._lock:
            return len(self._state.replies)

    # ---------------------------------------------------------------- request log

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._state.log)

    def bodies(self, path: str) -> list[Any]:
        """Parsed JSON bodies of the requests to `path`, oldest first."""
        return [r.body for r in self.requests if r.path == path]

    def chat_requests(self) -> list[JSON]:
        return self.bodies("/api/chat")

    def embed_requests(self) -> list[JSON]:
        return self.bodies("/api/embed")

    def last_chat(self) -> JSON:
        """The last /api/chat body; LookupError (not None) so a test fails clearly."""
        chats = self.chat_requests()
        if not chats:
            raise LookupError("no /api/chat request was recorded")
        return chats[-1]

    def clear(self) -> None:
        """Forget the request log, queued replies and injected failures (models stay)."""
        with self._lock:
            self._state.log.clear()
            self._state.replies.clear()
            self._state.failures.clear()

    # ---------------------------------------------------------------- dispatch

    def _handle(self, ex: _Handler) -> None:
        path = urlsplit(ex.path).path
        body, parse_error = _parse_json(ex.read_body())
        headers = {k.lower(): v for k, v in ex.headers.items()}
        with self._lock:
            self._state.log.append(RecordedRequest(ex.command, path, body, headers, time.time()))
        try:
            self._pause(self.latency)
            route = self._routes.get((ex.command, path))
            if route is None:
                known = any(p == path for _, p in self._routes)
                return ex.send_text(405, "405 method not allowed") if known else ex.send_text(404, "404 page not found")
            self._raise_injected_failure(path)
            if parse_error:
                raise _HTTPError(400, parse_error)
            route(ex, body)
        except _HTTPError as err:
            ex.send_error_json(err.status, err.message)
        except (_Disconnect, OSError):
            raise
        except Exception as err:  # a broken callable reply: answer 500 and show why
            traceback.print_exc()
            ex.send_error_json(500, f"ollama double: {err!r}")

    def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the double stops, and then answer nothing:
        a stopped server must not finish replies (and stop() must never wait for one)."""
        if seconds > 0 and self._stopping.wait(seconds):
            raise _Disconnect

    def _raise_injected_failure(self, path: str) -> None:
        with self._lock:
            queue = self._state.failures.get(path)
            failure = queue.popleft() if queue else None
        if failure:
            raise _HTTPError(*failure)

    def _model(self, name: Any, not_found: str) -> ModelSpec:
        """The spec for a requested name, or Ollama's 400/404 error.

        `not_found` differs per route as in routes.go: chat and embed use the scheduler's
        `model "x" not found, try pulling it first` (the wording in ollama-api.md), show
        and generate `model 'x' not found`. Newer servers use the latter for chat too, so
        app code should rely on the 404 status, not the wording.
        """
        if not isinstance(name, str) or not name:
            raise _HTTPError(400, "model is required")
        with self._lock:
            spec = self._state.models.get(_key(name))
        if spec is None:
            raise _HTTPError(404, not_found.format(q=_q(name), name=name))
        return spec

    def _touch(self, spec: ModelSpec, body: JSON) -> None:
        """Record the model as loaded for /api/ps, honouring keep_alive (0 unloads)."""
        keep_alive = parse_keep_alive(body.get("keep_alive"))
        with self._lock:
            if keep_alive == 0:
                self._state.loaded.pop(spec.name, None)
            else:
                self._state.loaded[spec.name] = _Loaded(spec, time.time() + keep_alive, self._num_ctx(body))

    def _num_ctx(self, body: JSON) -> int:
        return int((body.get("options") or {}).get("num_ctx") or self.default_num_ctx)

    # ---------------------------------------------------------------- simple routes

    def _root(self, ex: _Handler, _body: Any) -> None:
        ex.send_text(200, "Ollama is running")

    def _version(self, ex: _Handler, _body: Any) -> None:
        ex.send_json(200, {"version": self.version})

    def _tags(self, ex: _Handler, _body: Any) -> None:
        with self._lock:
            stamps = dict(self._state.modified_at)
        entries = sorted(self._state.models.values(), key=lambda s: -stamps[_key(s.name)])
        ex.send_json(200, {"models": [
            {"name": s.name, "model": s.name, "modified_at": _iso(stamps[_key(s.name)]), "size": s.size,
             "digest": s.digest, "details": s.details()}
            for s in entries
        ]})

    def _show(self, ex: _Handler, body: Any) -> None:
        body = _require_body(body)
        spec = self._model(body.get("model") or body.get("name"), "model '{name}' not found")
        with self._lock:
            modified = self._state.modified_at[_key(spec.name)]
        template = "{{ if .System }}{{ .System }}{{ end }}"
        template += "{{ if .Tools }}{{ .Tools }}{{ end }}" if "tools" in spec.capabilities else ""
        template += "{{ if .Think }}<think>{{ end }}" if "thinking" in spec.capabilities else ""
        ex.send_json(200, {
            "license": "",
            "modelfile": f"# Modelfile generated by \"ollama show\"\nFROM {spec.name}\n",
            "parameters": 'stop                           "<|end|>"',
            "template": template + "{{ .Prompt }}",
            "details": spec.details(),
            "model_info": {
                "general.architecture": spec.family,
                "general.basename": spec.name.split(":")[0],
                f"{spec.family}.context_length": spec.context_length,
                f"{spec.family}.embedding_length": spec.embedding_length,
            },
            "capabilities": list(spec.capabilities),
            "modified_at": _iso(modified),
        })

    def _ps(self, ex: _Handler, _body: Any) -> None:
        now = time.time()
        with self._lock:
            loaded = [m for m in self._state.loaded.values() if m.expires_at > now]
        loaded.sort(key=lambda m: -m.expires_at)
        forever = (datetime.now(timezone.utc) + timedelta(days=292 * 365)).timestamp()
        ex.send_json(200, {"models": [
            {"name": m.spec.name, "model": m.spec.name, "size": m.spec.size, "digest": m.spec.digest,
             "details": m.spec.details(), "expires_at": _iso(min(m.expires_at, forever)),
             "size_vram": m.spec.size, "context_length": m.num_ctx}
            for m in loaded
        ]})

    def _pull(self, ex: _Handler, body: Any) -> None:
        """Fake download progress, then the model is listed. Unknown names fail like a
        registry miss: an error line after "pulling manifest" (500 when not streaming)."""
        body = _require_body(body)
        name = body.get("model") or body.get("name") or ""
        if short_name(name) is None:
            raise _HTTPError(400, "invalid model name")
        spec = ModelSpec.for_name(name) if self._pullable is None else self._pullable.get(_key(name))
        if body.get("stream") is False:
            if spec is None:
                raise _HTTPError(500, "pull model manifest: file does not exist")
            self.add_model(spec)
            return ex.send_json(200, {"status": "success"})
        ex.write_line({"status": "pulling manifest"})
        if spec is None:
            raise _HTTPError(500, "pull model manifest: file does not exist")
        digest = f"sha256:{spec.digest}"
        for completed in (0, spec.size // 2, spec.size):
            self._pause(self.chunk_delay if self.pull_delay is None else self.pull_delay)
            ex.write_line({"status": f"pulling {spec.digest[:12]}", "digest": digest,
                           "total": spec.size, "completed": completed})
        for status in ("verifying sha256 digest", "writing manifest", "success"):
            ex.write_line({"status": status})
        self.add_model(spec)
        ex.end_stream()

    def _delete(self, ex: _Handler, body: Any) -> None:
        """`DELETE /api/delete {model}`: 200 with an empty body, or 404 like routes.go's DeleteHandler."""
        body = _require_body(body)
        name = body.get("model") or body.get("name") or ""
        spec = self._model(name, "model '{name}' not found")
        self.remove_model(spec.name)
        ex._send(200, "application/json; charset=utf-8", b"")

    # ---------------------------------------------------------------- embeddings

    def _embed(self, ex: _Handler, body: Any) -> None:
        body = _require_body(body)
        texts = _embed_inputs(body.get("input"))
        spec = self._model(body.get("model"), "model {q} not found, try pulling it first")
        self._touch(spec, body)
        started = time.monotonic()
        self._pause(self.embed_delay)
        max_chars = 4 * min(self._num_ctx(body), spec.context_length)
        if body.get("truncate") is False and any(len(t) > max_chars for t in texts):
            raise _HTTPError(400, "the input length exceeds the context length")
        texts = [t[:max_chars] for t in texts]  # Ollama silently truncates by default
        dimensions = body.get("dimensions") or spec.embedding_length
        vectors = [embed_text(t, min(dimensions, spec.embedding_length)) for t in texts]
        ex.send_json(200, {
            "model": body["model"],
            "embeddings": vectors,
            "total_duration": int((time.monotonic() - ex.started) * 1e9),
            "load_duration": int((started - ex.started) * 1e9),
            "prompt_eval_count": sum(estimate_tokens(t) for t in texts),
        })

    def _embeddings(self, ex: _Handler, body: Any) -> None:
        """Legacy endpoint: one `prompt`, answered as `{"embedding": [...]}`."""
        body = _require_body(body)
        spec = self._model(body.get("model"), "model {q} not found, try pulling it first")
        self._touch(spec, body)
        prompt = body.get("prompt") or ""
        ex.send_json(200, {"embedding": embed_text(prompt, spec.embedding_length) if prompt else []})

    # ---------------------------------------------------------------- chat and generate

    def _chat(self, ex: _Handler, body: Any) -> None:
        body = _require_body(body)
        _check_messages(body.get("messages") or [])
        model = body.get("model")
        spec = self._model(model, "model {q} not found, try pulling it first")
        keep_alive = parse_keep_alive(body.get("keep_alive"))
        if not body.get("messages") and keep_alive == 0:
            self._touch(spec, body)
            return ex.send_json(200, _chat_chunk(model, {}, True) | {"done_reason": "unload"})
        think = self._thinking(spec, body)
        self._require_capabilities(spec, model, "chat", ["tools"] if body.get("tools") else [])
        self._touch(spec, body)
        if not body.get("messages"):
            return ex.send_json(200, _chat_chunk(model, {}, True) | {"done_reason": "load"})
        tools = body.get("tools")
        prompt = "".join(str(m.get("content") or "") for m in body["messages"]) + (json.dumps(tools) if tools else "")
        self._serve_turn(ex, body, think, _chat_chunk, prompt, {})

    def _generate(self, ex: _Handler, body: Any) -> None:
        body = _require_body(body)
        model = body.get("model")
        spec = self._model(model, "model '{name}' not found")
        keep_alive = parse_keep_alive(body.get("keep_alive"))
        if not body.get("prompt") and keep_alive == 0:
            self._touch(spec, body)
            return ex.send_json(200, _generate_chunk(model, {}, True) | {"done_reason": "unload"})
        think = self._thinking(spec, body)
        self._require_capabilities(spec, model, "generate", [])
        self._touch(spec, body)
        if not body.get("prompt"):
            return ex.send_json(200, _generate_chunk(model, {}, True) | {"done_reason": "load"})
        prompt = str(body.get("system") or "") + str(body["prompt"])
        self._serve_turn(ex, body, think, _generate_chunk, prompt, {"context": [1, 2, 3]})

    def _thinking(self, spec: ModelSpec, body: JSON) -> bool:
        """Whether the turn thinks. Like Ollama, thinking models think unless `think` is false."""
        think = body.get("think")
        if "thinking" not in spec.capabilities:
            if think:
                raise _HTTPError(400, f"{_q(body['model'])} does not support thinking")
            return False
        if isinstance(think, str) and spec.family not in ("gptoss", "gpt-oss"):
            raise _HTTPError(400, f"think value {_q(think)} is not supported for this model")
        return think is not False

    def _require_capabilities(self, spec: ModelSpec, model: str, verb: str, extra: list[str]) -> None:
        """Ollama's capability errors: `"x" does not support chat` (no completion at all),
        else `registry.ollama.ai/library/x:tag does not support tools` (real wording)."""
        if "completion" not in spec.capabilities:
            raise _HTTPError(400, f"{_q(model)} does not support {verb}")
        missing = [c for c in extra if c not in spec.capabilities]
        if missing:
            raise _HTTPError(400, f"{full_name(spec.name)} does not support {' '.join(missing)}")

    def _next_reply(self, body: JSON) -> Reply:
        with self._lock:
            source = self._state.replies.popleft() if self._state.replies else None
        if source is None:
            return self._default_reply(body)
        if callable(source):
            source = source(body)
        return Reply(source) if isinstance(source, str) else source

    def _default_reply(self, body: JSON) -> Reply:
        """Deterministic stand-in for a model: call the first tool with the user's question,
        otherwise answer quoting the latest tool result or user message."""
        messages = body.get("messages") or [{"role": "user", "content": body.get("prompt") or ""}]
        tools = body.get("tools") or []
        if tools and messages[-1].get("role") == "user":
            tool = tools[0].get("function", {}).get("name", "")
            return Reply(tool_calls=((tool, {"query": messages[-1].get("content") or ""}),))
        if self.default_text is not None:
            return Reply(self.default_text)
        source = next((m for m in reversed(messages) if m.get("role") in ("tool", "user")), {})
        snippet = str(source.get("content") or "")[:QUOTE_CHARS]
        prefix = "According to the documents" if source.get("role") == "tool" else "You asked"
        return Reply(f'{prefix}: "{snippet}"')

    @contextmanager
    def _answer_slot(self) -> Iterator[None]:
        """Ollama's scheduler answers OLLAMA_NUM_PARALLEL requests per model at once; the others
        wait in its queue, sending nothing (a stop drops them unanswered)."""
        with self._slot_free:
            while self.num_parallel and self._serving >= self.num_parallel:
                if self._stopping.is_set():
                    raise _Disconnect
                self._slot_free.wait(0.05)
            self._serving += 1
        try:
            yield
        finally:
            with self._slot_free:
                self._serving -= 1
                self._slot_free.notify()

    def _serve_turn(self, ex: _Handler, body: JSON, think: bool, shape: _Shape, prompt: str, final_extra: JSON) -> None:
        """Deliver one reply (in an answer slot): delays, chunks, then a final chunk, an error line or a cut."""
        with self._answer_slot():
            self._serve_reply(ex, body, think, shape, prompt, final_extra)

    def _serve_reply(self, ex: _Handler, body: JSON, think: bool, shape: _Shape, prompt: str, final_extra: JSON) -> None:
        reply = self._next_reply(body)
        self._pause(self.first_token_delay if reply.first_token_delay is None else reply.first_token_delay)
        if reply.status != 200:
            raise _HTTPError(reply.status, reply.error or "error")
        parts, done_reason = self._parts(body, reply, think)
        streaming = body.get("stream") is not False
        delay = self.chunk_delay if reply.chunk_delay is None else reply.chunk_delay
        first_token = time.monotonic()
        if streaming:
            self._stream_parts(ex, body["model"], parts[: reply.cut_after], shape, delay)
        if reply.disconnect:
            ex.disconnect()
        if reply.error:  # a line after the first chunk; before it Ollama answers 500
            raise _HTTPError(500, reply.error)
        final = shape(body["model"], {} if streaming else _merge(parts), True) | {"done_reason": done_reason}
        final |= self._metrics(ex, body, prompt, len(parts), first_token) | final_extra
        if reply.prompt_eval_count is not None:
            final["prompt_eval_count"] = reply.prompt_eval_count
        if not streaming:
            return ex.send_json(200, final)
        self._pause(delay if parts else 0)
        ex.write_line(final)
        ex.end_stream()

    def _stream_parts(self, ex: _Handler, model: str, parts: list[JSON], shape: _Shape, delay: float) -> None:
        for i, part in enumerate(parts):
            self._pause(delay if i else 0)
            ex.write_line(shape(model, part, False))

    def _parts(self, body: JSON, reply: Reply, think: bool) -> tuple[list[JSON], str]:
        """Split a reply into chunk payloads, honouring `num_predict` (-> done_reason length).

        Tool calls need `tools` in the request: without them a real model can only write
        the call as text, so that is what the double does (it catches unbound tools).
        """
        parts: list[JSON] = []
        if think:
            parts += [{"thinking": t} for t in split_chunks(reply.thinking or DEFAULT_THINKING)]
        text, calls = reply.text, []
        if reply.tool_calls and body.get("tools"):
            calls = [{"id": f"call_{next(self._call_ids):08d}",
                      "function": {"index": i, "name": name, "arguments": dict(args)}}
                     for i, (name, args) in enumerate(reply.tool_calls)]
        elif reply.tool_calls:
            text += "".join(json.dumps({"name": n, "parameters": dict(a)}) for n, a in reply.tool_calls)
        parts += [{"content": t} for t in split_chunks(text)]
        limit = (body.get("options") or {}).get("num_predict")
        if isinstance(limit, int) and 0 <= limit < len(parts) + bool(calls):
            return parts[:limit], "length"
        return parts + ([{"tool_calls": calls}] if calls else []), reply.done_reason

    def _metrics(self, ex: _Handler, body: JSON, prompt: str, eval_count: int, first_token: float) -> JSON:
        """Ollama's final-chunk counters; the prompt count is capped at num_ctx because
        Ollama silently truncates an over-long prompt to fit the context window."""
        now = time.monotonic()
        return {
            "total_duration": int((now - ex.started) * 1e9),
            "load_duration": 1_000_000,
            "prompt_eval_count": min(estimate_tokens(prompt), self._num_ctx(body)),
            "prompt_eval_duration": int(max(first_token - ex.started, 0) * 1e9),
            "eval_count": eval_count,
            "eval_duration": int((now - first_token) * 1e9),
        }


_Shape = Callable[[str, JSON, bool], JSON]


def _chat_chunk(model: str, part: JSON, done: bool) -> JSON:
    message: JSON = {"role": "assistant", "content": part.get("content", "")}
    message |= {k: part[k] for k in ("thinking", "tool_calls") if k in part}
    return {"model": model, "created_at": _iso(time.time()), "message": message, "done": done}


def _generate_chunk(model: str, part: JSON, done: bool) -> JSON:
    chunk: JSON = {"model": model, "created_at": _iso(time.time()), "response": part.get("content", "")}
    chunk |= {"thinking": part["thinking"]} if "thinking" in part else {}
    return chunk | {"done": done}


def _merge(parts: list[JSON]) -> JSON:
    """All chunk payloads as one, for `stream: false`."""
    merged: JSON = {"content": "".join(p.get("content", "") for p in parts)}
    if thinking := "".join(p.get("thinking", "") for p in parts):
        merged["thinking"] = thinking
    if calls := [c for p in parts for c in p.get("tool_calls", [])]:
        merged["tool_calls"] = calls
    return merged


def _parse_json(raw: bytes) -> tuple[Any, str | None]:
    """(body, error message). An empty body is (None, None): routes decide if it is needed."""
    if not raw.strip():
        return None, None
    try:
        body = json.loads(raw)
    except ValueError as err:
        return None, f"invalid character in JSON body: {err}"
    if not isinstance(body, dict):
        return None, f"json: cannot unmarshal {type(body).__name__} into Go value of type api.Request"
    return body, None


def _require_body(body: Any) -> JSON:
    if body is None:
        raise _HTTPError(400, "missing request body")
    return body


def _check_messages(messages: list[Any]) -> None:
    """Go's JSON decoding rejects OpenAI-style content lists and string tool arguments."""
    for message in messages:
        if not isinstance(message, dict):
            raise _HTTPError(400, "json: cannot unmarshal string into Go struct field "
                                  "ChatRequest.messages of type api.Message")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise _HTTPError(400, "json: cannot unmarshal array into Go struct field "
                                  "ChatRequest.messages.content of type string")
        for call in message.get("tool_calls") or []:
            if not isinstance(call.get("function", {}).get("arguments", {}), dict):
                raise _HTTPError(400, "json: cannot unmarshal string into Go struct field "
                                      "ToolCallFunction.messages.tool_calls.function.arguments "
                                      "of type api.ToolCallFunctionArguments")


def _embed_inputs(value: Any) -> list[str]:
    """`input` as a list: "" -> [] like Ollama; non-strings -> 400 invalid input type."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise _HTTPError(400, "invalid input type")


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until Ctrl-C; prints the base URL as the first stdout line for scripts."""
    parser = argparse.ArgumentParser(description="Serve the Ollama test double.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434, help="0 picks a free port")
    parser.add_argument("--models", nargs="+", metavar="NAME", help="models to offer (default: built-in set)")
    parser.add_argument("--first-token-delay", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--chunk-delay", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--num-parallel", type=int, default=0, metavar="N",
                        help="answers served at once (OLLAMA_NUM_PARALLEL); 0: no limit")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS", help="delay before every answer")
    parser.add_argument("--reply-file", type=Path, help="file whose text is the default answer")
    args = parser.parse_args(argv)
    double = OllamaDouble(
        args.models, host=args.host, port=args.port, latency=args.latency,
        first_token_delay=args.first_token_delay, chunk_delay=args.chunk_delay,
        default_text=args.reply_file.read_text(encoding="utf-8") if args.reply_file else None,
    )
    double.num_parallel = args.num_parallel
    with double:
        print(double.url, flush=True)
        names = ", ".join(s.name for s in double.models)
        print(f"Ollama double serving {names}; Ctrl-C to stop", file=sys.stderr, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
