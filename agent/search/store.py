"""Collections: named sets of documents, each with a persistent FAISS index.

Layout under `<data_dir>/collections/<name>/`:
    manifest.json          the commit point: embedding model, dimension, documents,
                           and which generation of the files below is current
    index-<gen>.faiss      the FAISS index (faiss' own binary format, never a pickle)
    chunks-<gen>.jsonl     chunk text + metadata, in index order
    lexicon-<gen>.npz      the chunks' and pages' term counts for keyword search
                           (numpy arrays, loaded without pickle; optional: recounted
                           from the chunks when missing or damaged)
    files/<sha256>/<name>  a copy of each ingested PDF, so the index can be rebuilt

A save writes a new generation's files, then atomically replaces manifest.json, then
deletes the old generation. A crash at any point leaves a manifest that names complete
files. Writers hold a file lock, so two processes ingesting into one collection queue
up instead of overwriting each other; each writer reloads the latest generation first.

Readers see a `langchain_core` `VectorStore` (`vectorstore`) plus the chunk list
(`documents`) and term counts (`lexicon`) that keyword search needs; `version` changes
on every write, so caches built from `documents` know when to rebuild.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import faiss
import numpy as np
from filelock import FileLock, Timeout
from langchain_community.docstore.in_memory import InMemoryDocstore
from langchain_community.vectorstores import FAISS
from langchain_community.vectorstores.utils import DistanceStrategy
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from agent._files import atomic_write_bytes, atomic_write_text, check_collection_name
from agent.errors import EmbeddingMismatchError, StoreError
from agent.search import vector_index
from agent.search.lexical import Lexicon

FORMAT = 1
LOCK_TIMEOUT = 600.0  # seconds a writer waits for another process's ingestion to finish
DELETE_WAIT = 2.0  # seconds a delete waits for a writer before telling the user to retry
LOAD_ATTEMPTS = 5  # a reader retries when a writer commits between its reading the manifest and the files
T = TypeVar("T")


@dataclass
class DocumentInfo:
    """What the document list shows for one ingested PDF."""

    doc_id: str
    file: str
    pages: int
    chunks: int
    size: int
    added: str
    ocr_pages: list[int] = field(default_factory=list)
    empty_pages: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kind: str = ""  # the content's format (agent.ingest.formats.detect: "pdf", "docx", ...); "" in older records


@dataclass(frozen=True, eq=False)
class Snapshot:
    """One committed version of a collection, published whole: a search reads one snapshot, so
    it never pairs the chunks of one version with the vectors of another."""

    version: int
    dimension: int | None
    infos: Mapping[str, DocumentInfo]
    documents: list[Document]
    lexicon: Lexicon | None
    vectorstore: FAISS
    _keyword_index: list[Any] = field(default_factory=list, repr=False)
    _index_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def keyword_index(self, build: Callable[[Snapshot], T]) -> T:
        """The keyword index of this version, built once; the lock is this snapshot's alone, so a
        build never makes searches of other collections or versions wait."""
        with self._index_lock:
            if not self._keyword_index:
                self._keyword_index.append(build(self))
            return self._keyword_index[0]


def collections_root(data_dir: Path) -> Path:
    return Path(data_dir) / "collections"


def list_collections(data_dir: Path) -> list[str]:
    root = collections_root(data_dir)
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def delete_collection(data_dir: Path, name: str) -> None:
    """Remove a collection, its index and its stored PDF copies (the user's originals are elsewhere)."""
    path = collections_root(data_dir) / check_collection_name(name)
    if not path.exists():
        return
    lock = FileLock(str(path / ".lock"), timeout=DELETE_WAIT)
    try:
        lock.acquire()
    except Timeout:
        raise StoreError(f"Collection {name!r} is being written (an upload or a re-index).",
                         "Try again when it has finished; nothing was deleted.", code="collection_busy",
                         params={"collection": name}) from None
    try:
        shutil.rmtree(path)
    finally:
        lock.release()


class Collection:
    """One collection, loaded in memory; writes go to disk atomically under a lock."""

    def __init__(self, data_dir: Path, name: str, embeddings: Embeddings, embedding_model: str,
                 *, rebuilding: bool = False, ann_min_vectors: int = vector_index.ANN_MIN_VECTORS) -> None:
        """`rebuilding=True` opens a collection only to re-index it: a damaged or
        other-model index is not loaded (nor refused), just superseded by the next save.
        `ann_min_vectors`: size from which saves switch to an approximate index."""
        self._rebuilding = rebuilding
        self.ann_min_vectors = ann_min_vectors
        self.name = check_collection_name(name)
        self.path = collections_root(data_dir) / self.name
        self.embeddings = embeddings
        self.embedding_model = embedding_model
        self._mutex = threading.RLock()
        self._snap = self._empty_snapshot()
        self.reload()
        self._sweep_if_idle()

    def snapshot(self) -> Snapshot:
        """The current version, whole (one attribute read: safe while a writer publishes the next)."""
        return self._snap

    @property
    def version(self) -> int:
        return self._snap.version

    @property
    def dimension(self) -> int | None:
        return self._snap.dimension

    @property
    def infos(self) -> Mapping[str, DocumentInfo]:
        return self._snap.infos

    @property
    def documents(self) -> list[Document]:
        return self._snap.documents

    @property
    def lexicon(self) -> Lexicon | None:
        return self._snap.lexicon

    @property
    def vectorstore(self) -> FAISS:
        return self._snap.vectorstore

    def _empty_snapshot(self, version: int = 0) -> Snapshot:
        return Snapshot(version, None, {}, [], None, self._wrap(faiss.IndexFlatIP(1), []))

    # ---- reading -------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def _read_manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict):
                raise ValueError("it is not a JSON object")
            if manifest.get("format") != FORMAT:
                raise ValueError(f"unknown format {manifest.get('format')!r}")
            # Checked here so a damaged manifest is reported with the reindex fix, not as a
            # KeyError/TypeError traceback from the code that reads these fields.
            for key, kind in (("generation", int), ("embedding_model", str), ("dimension", int),
                              ("documents", dict)):
                if not isinstance(manifest.get(key), kind):
                    raise ValueError(f"{key!r} is missing or invalid")
            return manifest
        except (OSError, ValueError) as exc:
            raise self._corrupt(f"its manifest is unreadable ({exc})") from exc

    def _corrupt(self, why: str) -> StoreError:
        return StoreError(f"The index of collection {self.name!r} cannot be loaded: {why}.",
                          f"Rebuild it from the stored PDFs with `python -m agent reindex --collection {self.name}` "
                          "(or Documents > Re-index); your PDFs are kept.")

    def reload(self) -> None:
        """Load the current generation from disk if it changed (cheap when it did not)."""
        with self._mutex:
            if self._rebuilding:
                self._snap = self._empty_snapshot(max(self.version, self._newest_generation_on_disk()))
                return
            for attempt in range(LOAD_ATTEMPTS):
                manifest = self._read_manifest()
                if manifest is None:  # never written, or deleted (by another process): nothing to search
                    if self.version:
                        self._snap = self._empty_snapshot()
                    return
                self._check_model(manifest)
                if manifest["generation"] == self.version:
                    return
                try:
                    self._snap = self._load_generation(manifest)
                    return
                except StoreError:
                    # A writer may have committed and removed this generation's files meanwhile:
                    # damaged only if the manifest still names it.
                    latest = self._read_manifest()
                    if attempt == LOAD_ATTEMPTS - 1 or latest is None or latest["generation"] == manifest["generation"]:
                        raise

    def _check_model(self, manifest: dict[str, Any]) -> None:
        if manifest["embedding_model"] != self.embedding_model:
            raise EmbeddingMismatchError(
                f"Collection {self.name!r} was built with the embedding model {manifest['embedding_model']!r}, "
                f"but the settings use {self.embedding_model!r}; mixing them would give wrong results.",
                f"Re-index it with `python -m agent reindex --collection {self.name}`, "
                "or switch the embedding setting back.", code="embedding_mismatch",
                params={"collection": self.name, "built": manifest["embedding_model"],
                        "configured": self.embedding_model})

    def _newest_generation_on_disk(self) -> int:
        numbers = [int(p.stem.rsplit("-", 1)[-1]) for p in self.path.glob("index-*.faiss")
                   if p.stem.rsplit("-", 1)[-1].isdigit()]
        try:
            numbers.append(int(json.loads(self.manifest_path.read_text(encoding="utf-8"))["generation"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return max(numbers, default=0)

    def stored_documents(self) -> list[tuple[str, Path]]:
        """(doc_id, stored PDF) for every document of the manifest: the raw material of a rebuild.

        When the manifest is unreadable, every stored copy, so a damaged manifest loses nothing.
        """
        folder = self.path / "files"
        found = [(d.name, f) for d in sorted(folder.iterdir()) if d.is_dir() for f in _stored_pdfs(d)[:1]] \
            if folder.exists() else []
        try:
            manifest = self._read_manifest()
        except StoreError:
            return found
        return found if manifest is None else [(d, f) for d, f in found if d in manifest["documents"]]

    def _load_generation(self, manifest: dict[str, Any]) -> Snapshot:
        gen = manifest["generation"]
        try:
            index = vector_index.prepare(faiss.deserialize_index(
                np.frombuffer((self.path / f"index-{gen}.faiss").read_bytes(), np.uint8)))
            lines = (self.path / f"chunks-{gen}.jsonl").read_text(encoding="utf-8").splitlines()
            documents = [self._chunk_from_json(line) for line in lines if line.strip()]
            infos = {k: DocumentInfo(**v) for k, v in manifest["documents"].items()}
        except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:  # TypeError: malformed entries
            raise self._corrupt(f"generation {gen} is damaged ({exc})") from exc
        if index.ntotal != len(documents):
            raise self._corrupt(f"the index holds {index.ntotal} vectors for {len(documents)} chunks")
        lexicon = Lexicon.load(self.path / f"lexicon-{gen}.npz")
        return Snapshot(gen, manifest["dimension"], infos, documents,
                        lexicon if lexicon is not None and lexicon.fits(documents) else None, self._wrap(index, documents))

    @staticmethod
    def _chunk_from_json(line: str) -> Document:
        data = json.loads(line)
        return Document(page_content=data["text"], metadata=data["metadata"], id=data["id"])

    def _wrap(self, index: Any, documents: list[Document]) -> FAISS:
        docstore = InMemoryDocstore({d.id: d for d in documents})
        return FAISS(self.embeddings, index, docstore, {i: d.id for i, d in enumerate(documents)},
                     distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT)

    def recorded_infos(self) -> dict[str, DocumentInfo]:
        """Document records from the manifest, even when the index itself cannot be loaded
        (a re-index keeps names and dates); empty when the manifest is unreadable too."""
        if self.infos:
            return dict(self.infos)
        try:
            return {k: DocumentInfo(**v) for k, v in (self._read_manifest() or {}).get("documents", {}).items()}
        except (StoreError, TypeError):
            return {}

    def document_infos(self) -> list[DocumentInfo]:
        return sorted(self.infos.values(), key=lambda info: (info.added, info.file))

    def stored_file(self, doc_id: str) -> Path | None:
        """The stored copy of a document's PDF (for re-indexing and page previews)."""
        folder = self.path / "files" / doc_id
        found = _stored_pdfs(folder) if folder.exists() else []
        return found[0] if found else None

    # ---- writing ----------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the collection's file lock with the latest generation loaded."""
        lock = FileLock(str(self.path / ".lock"), timeout=LOCK_TIMEOUT)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except Timeout:
            raise StoreError(f"Collection {self.name!r} is locked by another ingestion.",
                             "Wait for it to finish, then try again.") from None
        except OSError as exc:  # read-only or full disk, a file where the folder should be: say so
            # (raw, it read "Cannot read x.pdf: Not a directory" in ingest and was a traceback elsewhere)
            raise StoreError(f"Cannot write to collection {self.name!r} at {self.path}: {exc.strerror or exc}.",
                             "Check that the data directory is writable and the disk has space; "
                             "nothing was changed.") from exc
        try:
            with self._mutex:
                self.reload()
                yield
        finally:
            lock.release()

    def add(self, info: DocumentInfo, chunks: list[Document], vectors: np.ndarray, pdf: Path | None,
            *, replacing: Sequence[str] = ()) -> None:
        """Add one document's chunks and vectors, and drop the documents in `replacing` (its older
        versions), in one commit (call inside `writing()`)."""
        if len({c.id for c in chunks}) != len(chunks) or any(not c.id for c in chunks):
            # the docstore is keyed by Document.id: without unique ids, search returns one chunk for all
            raise ValueError("every chunk needs a unique id (chunking.chunk_pages sets it)")
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(chunks), -1)
        if self.dimension is not None and vectors.shape[1] != self.dimension and self.documents:
            raise EmbeddingMismatchError(f"Vectors of dimension {vectors.shape[1]} do not fit collection "
                                         f"{self.name!r} (dimension {self.dimension}).",
                                         f"Re-index with `python -m agent reindex --collection {self.name}`.")
        folder = self.path / "files" / info.doc_id
        new_folder = pdf is not None and not folder.exists()
        try:
            if pdf is not None:
                atomic_write_bytes(folder / info.file, Path(pdf).read_bytes())
            keep, index = self._without(set(replacing), vectors.shape[1])
            if len(chunks):
                index.add(vectors)
            index = vector_index.fit(index, ann_min=self.ann_min_vectors)
            infos = {k: v for k, v in self.infos.items() if k not in replacing} | {info.doc_id: info}
            self._save(index, [self.documents[i] for i in keep] + list(chunks), infos, vectors.shape[1])
        except Exception:
            # Not committed (`_save` only raises before the manifest switch): drop the PDF copy,
            # or the failed document would hold disk space and reappear on the next re-index.
            if new_folder:
                shutil.rmtree(folder, ignore_errors=True)
            raise

    def remove(self, doc_id: str) -> DocumentInfo:
        """Remove a document's vectors, chunks and stored PDF (call inside `writing()`)."""
        info = self.infos[doc_id]
        keep, index = self._without({doc_id}, self.dimension or 1)
        infos = {k: v for k, v in self.infos.items() if k != doc_id}
        self._save(vector_index.fit(index, ann_min=self.ann_min_vectors), [self.documents[i] for i in keep], infos,
                   self.dimension or 1)
        return info

    def _without(self, doc_ids: set[str], dimension: int) -> tuple[list[int], Any]:
        """Positions of the chunks not in `doc_ids`, and a new index holding their vectors only
        (a copy: a failed save leaves the published snapshot unchanged)."""
        current = self.vectorstore.index
        if current.ntotal == 0:
            return [], faiss.IndexFlatIP(dimension)
        if not doc_ids:
            return list(range(len(self.documents))), faiss.deserialize_index(faiss.serialize_index(current))
        keep = [i for i, d in enumerate(self.documents) if d.metadata.get("doc_id") not in doc_ids]
        return keep, vector_index.subset(current, keep)

    def replace_all(self, entries: list[tuple[DocumentInfo, list[Document], np.ndarray]], dimension: int) -> None:
        """Swap in a complete rebuilt index in one generation (re-index; call inside `writing()`)."""
        documents = [c for _, chunks, _ in entries for c in chunks]
        parts = [np.asarray(v, dtype=np.float32).reshape(len(c), -1) for _, c, v in entries if len(c)]
        index = vector_index.build(np.vstack(parts) if parts else np.zeros((0, dimension), np.float32), dimension,
                                   ann_min=self.ann_min_vectors)
        self._save(index, documents, {info.doc_id: info for info, _, _ in entries}, dimension)
        self._rebuilding = False

    def _save(self, index: Any, documents: list[Document], infos: dict[str, DocumentInfo], dimension: int) -> None:
        gen = self.version + 1
        chunks = "".join(json.dumps({"id": d.id, "text": d.page_content, "metadata": d.metadata},
                                    ensure_ascii=False) + "\n" for d in documents)
        # only the changed chunks are tokenised (the rest is carried over from the last save)
        lexicon = Lexicon.build(documents, self.lexicon, self.documents)
        new_files = [self.path / f"index-{gen}.faiss", self.path / f"chunks-{gen}.jsonl",
                     self.path / f"lexicon-{gen}.npz"]
        try:
            atomic_write_bytes(new_files[0], faiss.serialize_index(index).tobytes())
            atomic_write_text(new_files[1], chunks)
            atomic_write_bytes(new_files[2], lexicon.to_bytes())
            manifest = {"format": FORMAT, "generation": gen, "embedding_model": self.embedding_model,
                        "dimension": dimension, "documents": {k: asdict(v) for k, v in infos.items()}}
            atomic_write_text(self.manifest_path, json.dumps(manifest, ensure_ascii=False, indent=1))
        except Exception:  # the manifest still names the previous generation: this one is debris
            for path in new_files:
                path.unlink(missing_ok=True)
            raise
        self._snap = Snapshot(gen, dimension, infos, documents, lexicon, self._wrap(index, documents))
        self._drop_old_generations(keep=gen, documents=infos)

    def _stale_temps(self) -> list[Path]:
        """Temp files of a writer killed mid-write (atomic_write_bytes names them ".<name>.<random>.tmp").
        Only to be deleted with the lock held: then none of them is in use."""
        return [*self.path.glob(".*.tmp"), *self.path.glob("files/*/.*.tmp")]

    def _sweep_if_idle(self) -> None:
        """On opening: delete what a killed writer left, if no writer holds the lock right now (a
        collection whose documents are all indexed may never be written again to do it)."""
        if not self.path.is_dir() or not self._stale_temps():
            return
        lock = FileLock(str(self.path / ".lock"), timeout=0)
        try:
            with lock:
                for path in self._stale_temps():
                    path.unlink(missing_ok=True)
        except (Timeout, OSError):
            pass

    def _drop_old_generations(self, keep: int, documents: Container[str]) -> None:
        """Best-effort cleanup after a commit: it must not raise, the save already succeeded.
        Stored copies of documents the manifest no longer names go too (a writer killed between
        its commit and deleting them left them behind)."""
        old = [p for pattern in ("index-*.faiss", "chunks-*.jsonl", "lexicon-*.npz") for p in self.path.glob(pattern)
               if p.stem.rsplit("-", 1)[-1] != str(keep)]
        for path in old + self._stale_temps():
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass
        files = self.path / "files"
        for folder in files.iterdir() if files.is_dir() else []:
            if folder.is_dir() and folder.name not in documents:
                shutil.rmtree(folder, ignore_errors=True)


def _stored_pdfs(folder: Path) -> list[Path]:
    """The stored PDF copies in one document folder, without temp files.

    A writer killed while copying the PDF leaves `.<name>.<random>.tmp` (possibly
    truncated) next to the copy; it sorts first, so without this filter re-indexing and
    page previews would read the half-written temp file. Stored names never start with
    a dot (`safe_file_name` strips leading dots).
    """
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
