"""The workspace: settings plus the heavy objects built from them, shared by CLI and UI.

Loading the embedder and the FAISS indexes is the slow part of start-up, so they are
built once per process and reused: the UI keeps one Workspace per settings version in
`st.cache_resource`, the CLI makes one per command. Settings changes that do not touch
the embedder or the data directory reuse the same objects (see `Workspace.with_settings`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from langchain_core.embeddings import Embeddings

from agent.chat.conversations import ConversationStore
from agent.chat.pg_conversations import PgConversationStore, open_conversations
from agent.config import Settings, load_settings
from agent.errors import AgentError
from agent.ingest.pipeline import Progress, ReindexResults, reindex
from agent.search.embeddings import embedding_model_id, make_embeddings
from agent.search.pg_store import DocumentCollection, collection_names, open_collection, remove_collection
from agent.search.retrieval import warm
from agent.search.translation import dictionary

logger = logging.getLogger(__name__)
_EMBEDDERS: dict[tuple[object, ...], Embeddings] = {}
_EMBEDDERS_LOCK = threading.Lock()


def _embedding_identity(settings: Settings) -> tuple[str, str]:
    """Which vectors an embedder makes: the model, and the servers for Ollama-served models."""
    return settings.embedding, ",".join(settings.hosts()) if settings.embedding != "local" else ""


def _embedder_key(settings: Settings) -> tuple[object, ...]:
    """The embedder object: its identity plus the client options (the request timeout)."""
    return (*_embedding_identity(settings), settings.request_timeout if settings.embedding != "local" else 0.0)


def _store_key(settings: Settings) -> tuple[object, ...]:
    """What loaded collections depend on: where they live and which vectors they hold."""
    return (settings.data_dir, settings.store, settings.database_url, *_embedding_identity(settings))


def shared_embeddings(settings: Settings) -> Embeddings:
    """One embedder per (model, host) per process: the local model takes seconds to load."""
    key = _embedder_key(settings)
    with _EMBEDDERS_LOCK:
        if key not in _EMBEDDERS:
            _EMBEDDERS[key] = make_embeddings(settings.embedding, ollama_host=settings.ollama_host,
                                              timeout=settings.request_timeout, hosts=settings.hosts())
        return _EMBEDDERS[key]


@dataclass
class _OpenStores:
    """The loaded collections and conversation store of one data directory, and their lock:
    shared whole by the workspaces of that directory."""

    collections: dict[str, DocumentCollection] = field(default_factory=dict)
    conversations: ConversationStore | PgConversationStore | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: one per collection name, held while it loads: loading one (42 s at 1M chunks) never makes
    #: the others wait, and two threads asking for one load it once
    opening: dict[str, threading.Lock] = field(default_factory=dict)


class Workspace:
    """Settings, embedder, collections and conversations of one data directory."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        self._open = _OpenStores()

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def embeddings(self) -> Embeddings:
        return shared_embeddings(self.settings)

    @property
    def embedding_model(self) -> str:
        return embedding_model_id(self.settings.embedding)

    @property
    def conversations(self) -> ConversationStore | PgConversationStore:
        with self._open.lock:  # one store per data dir: two made side by side race on the SQLite file
            if self._open.conversations is None:
                self._open.conversations = open_conversations(self.settings)
            return self._open.conversations

    def with_settings(self, settings: Settings) -> Workspace:
        """A workspace for new settings that keeps the loaded collections when still valid."""
        fresh = Workspace(settings)
        if _store_key(settings) == _store_key(self.settings):
            fresh._open = self._open  # the same collections, conversations and the lock guarding them
        return fresh

    def collection(self, name: str | None = None) -> DocumentCollection:
        """An open collection (created empty on first use), refreshed if another process wrote it."""
        name = name or self.settings.collections[0]
        with self._open.lock:
            opening = self._open.opening.setdefault(name, threading.Lock())
        with opening:  # this name's alone: the shared lock is never held while a collection loads
            with self._open.lock:
                collection = self._open.collections.get(name)
            if collection is None:
                collection = open_collection(self.settings, name, self.embeddings, self.embedding_model)
                with self._open.lock:
                    collection = self._open.collections.setdefault(name, collection)
        collection.reload()
        return collection

    def rebuildable(self, name: str) -> DocumentCollection:
        """A collection opened for re-indexing (tolerates a damaged or other-model index)."""
        with self._open.lock:
            self._open.collections.pop(name, None)
        return open_collection(self.settings, name, self.embeddings, self.embedding_model, rebuilding=True)

    def reindex(self, name: str, *, progress: Progress | None = None, passwords: Mapping[str, str] | None = None,
                only: Container[str] | None = None, drop_failed: bool = False,
                on_document: Callable[[str, int, int], None] | None = None) -> ReindexResults:
        """Rebuild a collection from its stored PDFs (see `pipeline.reindex`); the index as it
        is now, when readable with the current embedder, keeps documents that fail."""
        try:
            previous: DocumentCollection | None = self.collection(name)
        except AgentError:  # damaged or built with another embedder: rebuild from the PDFs alone
            previous = None
        return reindex(self.rebuildable(name), self.embeddings, self.settings, progress, previous=previous,
                       passwords=passwords, only=only, drop_failed=drop_failed, on_document=on_document)

    def chat_collections(self) -> list[DocumentCollection]:
        """The collections the chat searches (settings.collections)."""
        return [self.collection(name) for name in self.settings.collections]

    def warm_up(self) -> threading.Thread:
        """Load the chat collections, their search indexes and the bilingual dictionary in a background
        thread, so the first question does not wait for them. A search arriving meanwhile waits for the
        same build instead of starting another. Errors are left for the chat to report."""
        def run() -> None:
            try:
                for collection in self.chat_collections():
                    warm(collection)
                dictionary()
            except Exception as exc:  # noqa: BLE001 - the chat reports it when it needs them
                logger.info("warm-up stopped: %s", exc)

        thread = threading.Thread(target=run, name="warm-up", daemon=True)
        thread.start()
        return thread

    def collection_names(self) -> list[str]:
        return sorted(set(collection_names(self.settings)) | set(self.settings.collections))

    def delete_collection(self, name: str) -> None:
        """Delete a collection (refused while it is being written); other workspaces forget it too."""
        remove_collection(self.settings, name)
        with self._open.lock:
            self._open.collections.pop(name, None)
