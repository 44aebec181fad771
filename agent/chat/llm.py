"""The chat model: Ollama discovery, model construction and error translation.

Ollama is reached through two clients: the official `ollama` client for model
discovery (`/api/tags`, `/api/show`) and `ChatOllama` for generation. Both raise
low-level exceptions (httpx errors, `ollama.ResponseError`, ConnectionError); this
module turns every one of them into an `AgentError` that names the fix, so neither
the CLI nor the UI ever shows a stack trace for an Ollama problem.

The backend is chosen here too: Ollama when it answers, otherwise the embedded
offline model (`agent.embedded`), which the user is told plainly about.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pydantic
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel

from agent.chat.cleanup import PROMPT_STOPS
from agent.chat.pool import PooledChatOllama, pooled
from agent.chat.transport import LineCappedTransport, max_line_bytes
from agent.config import Settings
from agent.errors import (
    AgentError,
    ModelCapabilityError,
    ModelNotFoundError,
    OllamaBusyError,
    OllamaError,
    OllamaResponseError,
    OllamaTimeoutError,
    OllamaUnreachableError,
)
from agent.search.ollama_lib import ollama
from agent.search.pool import fetch_version

T = TypeVar("T")
DISCOVERY_TIMEOUT = 10.0  # /api/tags and /api/show answer at once on a healthy server
_BACKOFF_BASE = 0.25
MIN_CONTEXT = 512  # smallest real context window (and the lowest num_ctx setting)
# A small window keeps the embedded model's first token within seconds on a laptop CPU.
EMBEDDED_CONTEXT = 2048
# The embedded model's answer is a short summary under the quotes: longer ones loop and take minutes.
EMBEDDED_ANSWER_TOKENS = 200


@dataclass(frozen=True)
class ModelInfo:
    """What the app needs to know about one installed model."""

    name: str
    capabilities: tuple[str, ...] = ()
    context_length: int | None = None
    family: str = ""
    parameter_size: str = ""
    size: int = 0

    @property
    def tools(self) -> bool:
        return "tools" in self.capabilities

    @property
    def thinking(self) -> bool:
        return "thinking" in self.capabilities

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "capabilities": list(self.capabilities), "tools": self.tools,
                "thinking": self.thinking, "context_length": self.context_length,
                "family": self.family, "parameter_size": self.parameter_size, "size": self.size}


@dataclass
class Backend:
    """The resolved chat backend for one question: which model, and how to use it."""

    kind: str  # "ollama" or "embedded"
    model_name: str
    tools: bool
    context_length: int | None = None
    notice: str = ""  # shown to the user whenever non-empty (e.g. the embedded demo model)
    problems: list[str] = field(default_factory=list)


def translate_error(exc: BaseException, settings: Settings, model: str | None = None) -> AgentError:
    """Map any exception from talking to Ollama to an AgentError with a fix."""
    if isinstance(exc, AgentError):
        return exc
    host = settings.ollama_host
    model = model or settings.chat_model
    if isinstance(exc, httpx.TimeoutException) or isinstance(exc, TimeoutError):
        return OllamaTimeoutError(
            f"Ollama at {host} did not answer within {settings.request_timeout:g} s.",
            "Raise the request timeout in Settings (AGENT_REQUEST_TIMEOUT); a first answer on a CPU can take minutes.",
            code="ollama_timeout", params={"host": host, "seconds": f"{settings.request_timeout:g}"})
    if isinstance(exc, (ConnectionError, httpx.ConnectError)):
        return OllamaUnreachableError(
            f"Cannot reach Ollama at {host}.",
            "Start it with `ollama serve` (or the Ollama app), or set OLLAMA_HOST to where it runs.",
            code="ollama_unreachable", params={"host": host})
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.NetworkError)):
        return OllamaResponseError(
            f"The connection to Ollama at {host} broke off mid-answer ({type(exc).__name__}).",
            "Check that the server is still running (`ollama ps`), then ask again.",
            code="ollama_cut", params={"host": host})
    if isinstance(exc, ollama.ResponseError):
        return _translate_response_error(exc, host, model)
    if isinstance(exc, (pydantic.ValidationError, json.JSONDecodeError, OutputParserException)):
        return OllamaResponseError(  # a reply that is not Ollama's API: no pydantic text for the user
            f"The server at {host} sent a reply this app cannot read ({type(exc).__name__}).",
            "Check that OLLAMA_HOST points at an Ollama server and that the model works (`ollama run`).",
            code="ollama_malformed", params={"host": host})
    # `or type(...)`: some errors have no text (a MemoryError from langchain-ollama's tool-call
    # argument parser), which left the user with "Unexpected error talking to Ollama: ".
    detail = str(exc) or type(exc).__name__
    return OllamaError(f"Unexpected error talking to Ollama: {detail}", "Check the Ollama server log.",
                       code="ollama_unexpected", params={"detail": detail})


def _translate_response_error(exc: ollama.ResponseError, host: str, model: str) -> AgentError:
    text = str(exc.error)
    lowered = text.lower()
    if exc.status_code == 404 or "not found" in lowered:
        return model_not_found(model, host)
    if "does not support tools" in lowered:
        return ModelCapabilityError(f"The model {model!r} does not support tool calling.",
                                    "Use the always-retrieve mode (Settings: mode), or a tools model "
                                    "such as `ollama pull llama3.2`.", code="model_no_tools", params={"model": model})
    if exc.status_code == 503:
        return OllamaBusyError(f"Ollama at {host} is busy (queue full).",
                               "Wait a moment and ask again, or raise OLLAMA_MAX_QUEUE on the server.",
                               code="ollama_busy", params={"host": host})
    return OllamaResponseError(f"Ollama answered with an error: {text}", "Check the Ollama server log, then retry.",
                               code="ollama_error", params={"detail": text})


def model_not_found(model: str, host: str) -> ModelNotFoundError:
    """The one wording of "model not pulled"; its params let the UI offer the pull."""
    return ModelNotFoundError(f"The model {model!r} is not installed in Ollama at {host}.",
                              f"Run `ollama pull {model}`, or pick an installed model in Settings.",
                              code="model_not_found", params={"model": model, "host": host})


def _is_retryable(exc: BaseException) -> bool:
    """Only failures to connect are retried: a half-finished answer must not be re-sent silently."""
    return isinstance(exc, (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout)) or (
        isinstance(exc, ollama.ResponseError) and exc.status_code == 503)


def with_retry(call: Callable[[], T], settings: Settings, *, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `call`, retrying connection failures with exponential backoff (bounded attempts)."""
    for attempt in range(settings.connect_retries):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - translated below
            if not _is_retryable(exc) or attempt == settings.connect_retries - 1:
                raise translate_error(exc, settings) from exc
            sleep(_BACKOFF_BASE * (2 ** attempt))
    raise AssertionError("unreachable")


def ollama_client(settings: Settings, timeout: float = DISCOVERY_TIMEOUT) -> ollama.Client:
    return ollama.Client(host=settings.ollama_host, timeout=timeout)


def server_version(settings: Settings, timeout: float = DISCOVERY_TIMEOUT) -> str:
    """The server's version; raises OllamaUnreachableError (after retries) when it is down."""
    return with_retry(lambda: fetch_version(settings.ollama_host, timeout), settings)


def _context_length(model_info: dict[str, Any] | None) -> int | None:
    """The model's trained context; a bogus value (`true`, -5, 100) is ignored, so num_ctx applies."""
    for key, value in (model_info or {}).items():
        if key.endswith(".context_length") and type(value) is int and value >= MIN_CONTEXT:
            return value
    return None


def answer_deadline(seconds: float) -> OllamaTimeoutError:
    """The answer ran past Settings.answer_timeout_s (e.g. a server trickling tokens)."""
    return OllamaTimeoutError(f"The answer took longer than {seconds:g} s and was cut there.",
                              "Raise the answer time limit in Settings (answer_timeout_s), or ask a narrower question.",
                              code="answer_deadline", params={"seconds": f"{seconds:g}"})


def empty_answer(model: str) -> OllamaResponseError:
    """A model that streamed no text (only `done`, or only `thinking`)."""
    return OllamaResponseError(f"The model {model!r} returned no answer.",
                               "Ask again, or pick another model in Settings.",
                               code="empty_answer", params={"model": model})


def show_model(settings: Settings, name: str) -> ModelInfo:
    """Capabilities and context length of one model (`/api/show`)."""
    client = ollama_client(settings)
    try:
        shown = with_retry(lambda: client.show(name), settings)
    except AgentError as err:
        raise _with_model(err, settings, name) from None
    details = shown.details
    return ModelInfo(name=name, capabilities=tuple(shown.capabilities or ()),
                     context_length=_context_length(shown.modelinfo),
                     family=(details.family or "") if details else "",
                     parameter_size=(details.parameter_size or "") if details else "")


def _with_model(err: AgentError, settings: Settings, name: str) -> AgentError:
    """Errors raised before the model name was known name the right model."""
    if isinstance(err, ModelNotFoundError):
        return model_not_found(name, settings.ollama_host)
    return err


def list_models(settings: Settings) -> list[ModelInfo]:
    """Installed models (`/api/tags`) with each one's capabilities (`/api/show`)."""
    settings = pooled(settings)
    client = ollama_client(settings)
    listed = with_retry(client.list, settings)
    models = []
    for entry in listed.models:
        info = show_model(settings, entry.model)
        models.append(ModelInfo(**{**info.__dict__, "size": entry.size or 0}))
    return models


def find_model(models: list[ModelInfo], name: str) -> ModelInfo | None:
    """Match as Ollama does: `llama3.2` means `llama3.2:latest`."""
    wanted = name if ":" in name else f"{name}:latest"
    return next((m for m in models if m.name in (name, wanted)), None)


def resolve_backend(settings: Settings) -> Backend:
    """Decide which backend answers: Ollama if it answers (or is forced), else the embedded model."""
    if settings.backend == "embedded":
        return _embedded_backend([])
    try:
        info = show_model(pooled(settings), settings.chat_model)
    except OllamaUnreachableError as err:
        if settings.backend == "ollama":
            raise
        return _embedded_backend([str(err)])
    return Backend("ollama", settings.chat_model, info.tools, info.context_length)


def _embedded_backend(problems: list[str]) -> Backend:
    from agent.chat import (
        embedded,  # imported lazily: llama_cpp is optional and slow to import
    )

    if not embedded.embedded_available():
        raise OllamaUnreachableError(
            "Ollama is not reachable and the embedded offline model is not installed.",
            "Start Ollama (`ollama serve`), or install the embedded model with the README's set-up command.",
            code="no_backend")
    return Backend("embedded", embedded.EMBEDDED_MODEL_NAME, tools=False, context_length=EMBEDDED_CONTEXT,
                   notice=embedded.EMBEDDED_NOTICE, problems=problems)


def keep_alive(value: str) -> int | str:
    """Ollama reads a bare number as seconds but rejects a unitless string like "-1"."""
    return int(value) if value.lstrip("-").isdigit() else value


def context_window(settings: Settings, backend: Backend) -> int:
    """The context actually available: num_ctx, capped by what the model supports."""
    return min(settings.num_ctx, backend.context_length or settings.num_ctx)


def answer_tokens(settings: Settings, backend: Backend) -> int:
    """Most tokens one answer may take (num_predict; capped for the embedded model)."""
    if backend.kind == "embedded":
        return min(settings.num_predict, EMBEDDED_ANSWER_TOKENS)
    return settings.num_predict


def build_chat_model(settings: Settings, backend: Backend) -> BaseChatModel:
    """The LangChain chat model for `backend`, configured from settings."""
    if backend.kind == "embedded":
        from agent.chat import embedded

        return embedded.EmbeddedChatModel(
            model_path=str(embedded.find_gguf()), temperature=settings.temperature,
            n_ctx=context_window(settings, backend), max_tokens=answer_tokens(settings, backend),
            repeat_penalty=settings.repeat_penalty, stop=list(PROMPT_STOPS))
    return PooledChatOllama(
        model=backend.model_name, base_url=settings.ollama_host, hosts=settings.hosts(),
        keep_alive=keep_alive(settings.keep_alive), client_kwargs={"timeout": settings.request_timeout},
        sync_client_kwargs={"transport": LineCappedTransport(max_line_bytes(settings.max_answer_chars))},
        **settings.chat_options())
