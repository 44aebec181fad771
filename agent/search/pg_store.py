"""Collections in PostgreSQL, shared by every app instance (store = postgres).

The database holds everything a collection is: document records with their chunk- and
page-level keyword term counts (agent.search.tokens' tokenizer, stored per document as
its `Lexicon.to_bytes`, so Chinese needs no Postgres extension), chunks (text, metadata,
pgvector embedding) and the uploaded originals. Each
write (one document, one removal, one re-index) is one transaction that also bumps the
collection's `version`, under a per-collection advisory lock, so writers queue up and a
reader sees a document whole or not at all.

Search runs on an in-memory snapshot of the committed rows, the same `Snapshot` a local
collection publishes: `reload()` (called before every question) compares one version
number and fetches only the documents added since, so ranking is the local code on the
same data (same answers; bench/README.md "PostgreSQL store" says why not SQL ranking).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from langchain_community.docstore.in_memory import InMemoryDocstore
from langchain_community.vectorstores import FAISS
from langchain_community.vectorstores.utils import DistanceStrategy
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from agent._files import atomic_write_bytes, check_collection_name
from agent._pg import query_one, transaction
from agent.config import Settings
from agent.errors import EmbeddingMismatchError, StoreError
from agent.search import store, vector_index
from agent.search.lexical import Lexicon, TermCounts, Vocabulary
from agent.search.snapshot import SnapshotView
from agent.search.store import Collection, DocumentInfo, Snapshot, collections_root, delete_collection, list_collections

if TYPE_CHECKING:
    import psycopg

_LOCK_SPACE = 0x636F6C  # first key of the per-collection pg_advisory_xact_lock ("col"); the second is hashtext(name)
_REPEATABLE = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"  # one consistent view of documents and chunks


class DocumentCollection(Protocol):
    """What the workspace, ingestion and the pages use of a collection, local or in PostgreSQL."""

    name: str
    path: Path

    def snapshot(self) -> Snapshot: ...
    @property
    def version(self) -> int: ...
    @property
    def infos(self) -> Mapping[str, DocumentInfo]: ...
    @property
    def documents(self) -> list[Document]: ...
    def reload(self) -> None: ...
    def document_infos(self) -> list[DocumentInfo]: ...
    def recorded_infos(self) -> dict[str, DocumentInfo]: ...
    def stored_file(self, doc_id: str) -> Path | None: ...
    def stored_documents(self) -> list[tuple[str, Path]]: ...
    def writing(self) -> Any: ...
    def add(self, info: DocumentInfo, chunks: list[Document], vectors: np.ndarray, pdf: Path | None,
            *, replacing: Sequence[str] = ()) -> None: ...
    def remove(self, doc_id: str) -> DocumentInfo: ...
    def replace_all(self, entries: list[tuple[DocumentInfo, list[Document], np.ndarray]], dimension: int) -> None: ...


@dataclass(frozen=True)
class _Loaded:
    """One document as read from the database, its term counts in this process's vocabulary (its
    vectors live in the snapshot's index only: one copy in memory)."""

    seq: int
    info: DocumentInfo
    chunks: list[Document]
    chunk_counts: TermCounts
    page_counts: TermCounts


class PgCollection(SnapshotView):
    """One collection in PostgreSQL, searched through a snapshot refreshed by version number."""

    def __init__(self, url: str, data_dir: Path, name: str, embeddings: Embeddings, embedding_model: str,
                 *, rebuilding: bool = False, ann_min_vectors: int = vector_index.ANN_MIN_VECTORS) -> None:
        """`path` is a local cache only (originals fetched for page images, uploads being staged)."""
        self.url = url
        self.name = check_collection_name(name)
        self.path = collections_root(data_dir) / self.name
        self.embeddings = embeddings
        self.embedding_model = embedding_model
        self.ann_min_vectors = ann_min_vectors
        self._rebuilding = rebuilding
        self._mutex = threading.RLock()
        self._tx = threading.local()  # .db: this thread's write transaction, inside writing()
        self._vocab = Vocabulary()
        self._loaded: dict[str, _Loaded] = {}
        self._snap = self._snapshot(0, None)
        self.reload()

    # ---- reading -----------------------------------------------------------------------------
    def reload(self) -> None:
        """Catch up with the database: one round trip when nothing changed."""
        with self._mutex:
            if (db := self._own_write()) is not None:
                self._load(db)
                return
            row = query_one(self.url, "SELECT version FROM collections WHERE name = %s", (self.name,))
            if row is not None and row[0] == self.version and not self._rebuilding:
                return
            with transaction(self.url) as db:
                db.execute(_REPEATABLE)
                self._load(db)

    def _load(self, db: psycopg.Connection) -> None:
        row = db.execute("SELECT version, embedding_model, dimension FROM collections WHERE name = %s",
                         (self.name,)).fetchone()
        if row is None or self._rebuilding:
            if row is None and self.version:  # deleted by another instance
                self._loaded = {}
                self._snap = self._snapshot(0, None)
            return
        version, model, dimension = row
        if model != self.embedding_model and dimension is not None:
            raise _mismatch(self.name, model, self.embedding_model)
        if version == self.version:
            return
        listed = db.execute("SELECT doc_id, seq, info FROM documents WHERE collection = %s ORDER BY seq",
                            (self.name,)).fetchall()
        current = {doc_id: self._loaded[doc_id] for doc_id, seq, _ in listed
                   if doc_id in self._loaded and self._loaded[doc_id].seq == seq}
        missing = {doc_id: (seq, info) for doc_id, seq, info in listed if doc_id not in current}
        vectors = self._kept_vectors(set(current))
        for doc_id, (doc, fetched) in self._fetch(db, missing).items():
            current[doc_id], vectors[doc_id] = doc, fetched
        self._loaded = {doc_id: current[doc_id] for doc_id, _, _ in listed}
        self._snap = self._snapshot(version, dimension, [vectors[doc_id] for doc_id in self._loaded])

    def _kept_vectors(self, kept: set[str]) -> dict[str, np.ndarray]:
        """The vectors of the documents in `kept`, copied out of the current snapshot's index."""
        index, start, out = self._snap.vectorstore.index, 0, {}
        for doc_id, doc in self._loaded.items():
            if doc_id in kept:
                out[doc_id] = index.reconstruct_n(start, len(doc.chunks))
            start += len(doc.chunks)
        return out

    def _fetch(self, db: psycopg.Connection,
               wanted: Mapping[str, tuple[int, dict[str, Any]]]) -> dict[str, tuple[_Loaded, np.ndarray]]:
        """The chunks, term counts and vectors of the documents `wanted` (doc_id -> (seq, info))."""
        if not wanted:
            return {}
        rows: dict[str, list[tuple[Any, ...]]] = {doc_id: [] for doc_id in wanted}
        for row in db.execute("SELECT doc_id, id, text, metadata, vector_send(embedding) FROM chunks "
                              "WHERE collection = %s AND doc_id = ANY(%s) ORDER BY doc_id, position",
                              (self.name, list(wanted))):
            rows[row[0]].append(row[1:])
        lexicons = dict(db.execute("SELECT doc_id, lexicon FROM documents WHERE collection = %s AND doc_id = ANY(%s)",
                                   (self.name, list(wanted))).fetchall())
        loaded = {}
        for doc_id, (seq, info) in wanted.items():
            chunks = [Document(page_content=text, metadata=meta, id=cid) for cid, text, meta, _ in rows[doc_id]]
            # the stored counts, or recounted when made by another tokenizer version
            lexicon = Lexicon.load(io.BytesIO(lexicons[doc_id])) or Lexicon.build(chunks)
            ids = np.fromiter((self._vocab.id_for(t) for t in lexicon.vocabulary.terms), dtype=np.int32,
                              count=len(lexicon.vocabulary))
            loaded[doc_id] = (_Loaded(seq, DocumentInfo(**info), chunks, _renumbered(lexicon.chunks, ids),
                                      _renumbered(lexicon.pages, ids)), _vectors([r[3] for r in rows[doc_id]]))
        return loaded

    def _snapshot(self, version: int, dimension: int | None, vectors: Sequence[np.ndarray] = ()) -> Snapshot:
        """The searchable version of `self._loaded`, whose documents' vectors are `vectors`, in order."""
        loaded = list(self._loaded.values())
        documents = [c for d in loaded for c in d.chunks]
        parts = [v for v in vectors if len(v)]
        width = dimension or 1
        index = vector_index.build(np.vstack(parts) if parts else np.zeros((0, width), np.float32), width,
                                   ann_min=self.ann_min_vectors)
        # a copy of the vocabulary: the next load appends to ours while this version's searches read theirs
        lexicon = Lexicon(Vocabulary(list(self._vocab.terms)), _joined([d.chunk_counts for d in loaded]),
                          _joined([d.page_counts for d in loaded]))
        files = [d.info.file for d in loaded]
        usable = len(set(files)) == len(files) and lexicon.fits(documents)  # else pages do not line up: recount
        searchable = FAISS(self.embeddings, index, InMemoryDocstore({d.id: d for d in documents}),
                           {i: d.id for i, d in enumerate(documents)},
                           distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT)
        return Snapshot(version, dimension, {d.info.doc_id: d.info for d in loaded}, documents,
                        lexicon if usable else None, searchable)

    def document_infos(self) -> list[DocumentInfo]:
        return sorted(self.infos.values(), key=lambda info: (info.added, info.file))

    def recorded_infos(self) -> dict[str, DocumentInfo]:
        """Document records, also when this object was opened for a rebuild (and loaded nothing)."""
        if self.infos:
            return dict(self.infos)
        with self._reading() as db:
            return {doc_id: DocumentInfo(**info) for doc_id, info in
                    db.execute("SELECT doc_id, info FROM documents WHERE collection = %s", (self.name,))}

    @contextmanager
    def _reading(self) -> Iterator[psycopg.Connection]:
        if (db := self._own_write()) is not None:
            yield db
        else:
            with transaction(self.url) as db:
                yield db

    def stored_file(self, doc_id: str) -> Path | None:
        """A local copy of the document's original, fetched from the database once per instance."""
        with self._reading() as db:
            row = db.execute("SELECT file FROM originals WHERE collection = %s AND doc_id = %s",
                             (self.name, doc_id)).fetchone()
            if row is None:
                return None
            path = self.path / "files" / doc_id / row[0]
            if not path.is_file():
                content = db.execute("SELECT content FROM originals WHERE collection = %s AND doc_id = %s",
                                     (self.name, doc_id)).fetchone()
                atomic_write_bytes(path, bytes(content[0]))  # type: ignore[index]
        return path

    def stored_documents(self) -> list[tuple[str, Path]]:
        """(doc_id, local copy of the original) for every stored original: what a re-index reads."""
        with self._reading() as db:
            ids = [r[0] for r in db.execute("SELECT doc_id FROM originals WHERE collection = %s ORDER BY doc_id",
                                            (self.name,))]
        found = [(doc_id, self.stored_file(doc_id)) for doc_id in ids]
        return [(doc_id, path) for doc_id, path in found if path is not None]

    # ---- writing -----------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[None]:
        """One transaction holding the collection's lock, with the latest version loaded; the
        writes made inside commit together at the end (or not at all)."""
        with transaction(self.url) as db:
            # the lock first: searches in this process keep going while another instance writes
            self._lock(db)
            db.execute("INSERT INTO collections (name, embedding_model) VALUES (%s, %s) "
                       "ON CONFLICT (name) DO NOTHING", (self.name, self.embedding_model))
            with self._mutex:
                self._tx.db = db
                try:
                    self._load(db)
                    yield
                finally:
                    self._tx.db = None
        self.reload()

    def _lock(self, db: psycopg.Connection) -> None:
        """Wait for the collection's other writers, as long as a local writer waits for the file lock."""
        import psycopg

        db.execute(f"SET LOCAL lock_timeout = '{int(store.LOCK_TIMEOUT * 1000)}ms'")  # type: ignore[arg-type]
        try:
            db.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_SPACE, self.name))
        except psycopg.errors.LockNotAvailable:
            raise StoreError(f"Collection {self.name!r} is locked by another ingestion.",
                             "Wait for it to finish, then try again.") from None

    def _own_write(self) -> psycopg.Connection | None:
        return getattr(self._tx, "db", None)

    def _writer(self) -> psycopg.Connection:
        if (db := self._own_write()) is None:
            raise RuntimeError("PgCollection writes go inside `with collection.writing():`")
        return db

    def add(self, info: DocumentInfo, chunks: list[Document], vectors: np.ndarray, pdf: Path | None,
            *, replacing: Sequence[str] = ()) -> None:
        """Add one document (and drop `replacing`, its older versions) in the writer's transaction."""
        vectors = self._checked_add(chunks, vectors)
        db = self._writer()
        gone = [*replacing, info.doc_id]
        db.execute("DELETE FROM documents WHERE collection = %s AND doc_id = ANY(%s)", (self.name, gone))
        db.execute("DELETE FROM originals WHERE collection = %s AND doc_id = ANY(%s)", (self.name, list(replacing)))
        self._insert(db, info, chunks, vectors)
        if pdf is not None:
            db.execute("INSERT INTO originals (collection, doc_id, file, content) VALUES (%s, %s, %s, %s) "
                       "ON CONFLICT (collection, doc_id) DO UPDATE SET file = EXCLUDED.file, content = EXCLUDED.content",
                       (self.name, info.doc_id, info.file, Path(pdf).read_bytes()))
        self._bump(db, vectors.shape[1])

    def remove(self, doc_id: str) -> DocumentInfo:
        """Remove a document's chunks, vectors and original (inside `writing()`)."""
        info = self.infos[doc_id]
        db = self._writer()
        db.execute("DELETE FROM documents WHERE collection = %s AND doc_id = %s", (self.name, doc_id))
        db.execute("DELETE FROM originals WHERE collection = %s AND doc_id = %s", (self.name, doc_id))
        self._bump(db, self.dimension)
        return info

    def replace_all(self, entries: list[tuple[DocumentInfo, list[Document], np.ndarray]], dimension: int) -> None:
        """Swap in a complete rebuild (re-index) in the writer's transaction; the originals stay."""
        db = self._writer()
        db.execute("DELETE FROM documents WHERE collection = %s", (self.name,))
        db.execute("DELETE FROM originals WHERE collection = %s AND NOT doc_id = ANY(%s)",
                   (self.name, [info.doc_id for info, _, _ in entries]))
        for info, chunks, vectors in entries:
            self._insert(db, info, chunks, np.asarray(vectors, dtype=np.float32).reshape(len(chunks), -1))
        db.execute("UPDATE collections SET embedding_model = %s WHERE name = %s", (self.embedding_model, self.name))
        self._bump(db, dimension)
        self._rebuilding = False

    def _insert(self, db: psycopg.Connection, info: DocumentInfo, chunks: list[Document], vectors: np.ndarray) -> None:
        """One document's record (with its chunk and page term counts) and its chunks with their vectors."""
        from pgvector.psycopg import register_vector  # imports psycopg: loaded by the postgres store only

        register_vector(db)
        db.execute("INSERT INTO documents (collection, doc_id, info, lexicon) VALUES (%s, %s, %s, %s)",
                   (self.name, info.doc_id, json.dumps(asdict(info), ensure_ascii=False),
                    Lexicon.build(chunks).to_bytes()))
        with db.cursor().copy("COPY chunks (collection, doc_id, position, id, text, metadata, embedding) "
                              "FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["text", "text", "int4", "text", "text", "jsonb", "vector"])
            for i, chunk in enumerate(chunks):
                copy.write_row((self.name, info.doc_id, i, chunk.id, chunk.page_content, chunk.metadata, vectors[i]))

    def _bump(self, db: psycopg.Connection, dimension: int | None) -> None:
        db.execute("UPDATE collections SET version = version + 1, dimension = COALESCE(%s, dimension) "
                   "WHERE name = %s", (dimension, self.name))


def _vectors(raw: list[bytes]) -> np.ndarray:
    """pgvector's binary form (int16 dimension, int16 unused, big-endian float4s) as one float32 matrix."""
    if not raw:
        return np.zeros((0, 1), np.float32)
    width = int.from_bytes(raw[0][:2], "big")
    data = np.frombuffer(b"".join(raw), dtype=">f4").reshape(len(raw), width + 1)
    return np.ascontiguousarray(data[:, 1:], dtype=np.float32)


def _renumbered(counts: TermCounts, ids: np.ndarray) -> TermCounts:
    """`counts` with its term numbers mapped through `ids` (document vocabulary -> this process's)."""
    return TermCounts(counts.ptr, ids[counts.term] if len(counts.term) else counts.term, counts.tf)


def _joined(parts: Sequence[TermCounts]) -> TermCounts:
    """The rows of every part, in order (one copy, where chaining `TermCounts.concat` copies n times)."""
    if not parts:
        return TermCounts.assemble([])
    offsets = np.cumsum([0] + [int(p.ptr[-1]) for p in parts])
    ptr = np.concatenate([p.ptr[:-1] + off for p, off in zip(parts, offsets)] + [offsets[-1:]])
    return TermCounts(ptr.astype(np.int64), np.concatenate([p.term for p in parts]).astype(np.int32),
                      np.concatenate([p.tf for p in parts]).astype(np.uint16))


def _mismatch(name: str, built: str, configured: str) -> EmbeddingMismatchError:
    return EmbeddingMismatchError(
        f"Collection {name!r} was built with the embedding model {built!r}, but the settings use "
        f"{configured!r}; mixing them would give wrong results.",
        f"Re-index it with `python -m agent reindex --collection {name}`, or switch the embedding setting back.",
        code="embedding_mismatch", params={"collection": name, "built": built, "configured": configured})


# ---- the seam: which store a workspace opens --------------------------------------------------
def open_collection(settings: Settings, name: str, embeddings: Embeddings, embedding_model: str,
                    *, rebuilding: bool = False) -> DocumentCollection:
    """The collection `settings.store` selects: FAISS files in the data directory or the shared database."""
    if settings.store == "postgres":
        return PgCollection(settings.database_url, settings.data_dir, name, embeddings, embedding_model,
                            rebuilding=rebuilding)
    return Collection(settings.data_dir, name, embeddings, embedding_model, rebuilding=rebuilding)


def collection_names(settings: Settings) -> list[str]:
    if settings.store != "postgres":
        return list_collections(settings.data_dir)
    with transaction(settings.database_url) as db:
        return [r[0] for r in db.execute("SELECT name FROM collections ORDER BY name")]


def remove_collection(settings: Settings, name: str) -> None:
    """Delete a collection with its documents and originals (refused while it is being written)."""
    if settings.store != "postgres":
        delete_collection(settings.data_dir, name)
        return
    with transaction(settings.database_url) as db:
        if not db.execute("SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_SPACE, name)).fetchone()[0]:
            raise StoreError(f"Collection {name!r} is being written (an upload or a re-index).",
                             "Try again when it has finished; nothing was deleted.", code="collection_busy",
                             params={"collection": name})
        db.execute("DELETE FROM collections WHERE name = %s", (check_collection_name(name),))


def copy_documents(source: DocumentCollection, target: DocumentCollection) -> int:
    """Copy the documents `target` lacks (chunks, vectors, original), one commit each; returns how
    many were added. Idempotent: a second run adds nothing, and a run cut short continues."""
    snapshot = source.snapshot()
    positions: dict[str, list[int]] = {}
    for position, chunk in enumerate(snapshot.documents):
        positions.setdefault(chunk.metadata.get("doc_id", ""), []).append(position)
    added = 0
    for doc_id, info in snapshot.infos.items():
        target.reload()
        if doc_id in target.infos:
            continue
        keys = np.asarray(positions.get(doc_id, []), dtype=np.int64)
        vectors = snapshot.vectorstore.index.reconstruct_batch(keys) if len(keys) else \
            np.zeros((0, snapshot.dimension or 1), np.float32)
        with target.writing():
            if doc_id not in target.infos:  # another run finished it meanwhile
                target.add(info, [snapshot.documents[i] for i in keys], vectors, source.stored_file(doc_id))
                added += 1
    return added
