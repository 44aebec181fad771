"""Collections: named sets of documents, each with a persistent FAISS index.

Layout under `<data_dir>/collections/<name>/`:
    manifest.json          the commit point: embedding model, dimension, documents, and the
                           segments that hold them (with their deleted row ranges)
    index-<gen>.faiss      a segment's FAISS index (faiss' own binary format, never a pickle)
    chunks-<gen>.npy       its chunk texts, then each chunk's [id, metadata] as JSON, and where
    chunk-offsets-<gen>.npy   each starts (agent.search.chunk_table; memory-mapped; format 1 kept
                           them in chunks-<gen>.jsonl, still read)
    lexicon-<gen>.npz      its chunks' and pages' term counts for keyword search, and
    pages-<gen>.npz        its pages' file, number, contents share and outline terms (numpy
                           arrays, no pickle; optional: rebuilt from the chunks when damaged)
    files/<sha256>/<name>  a copy of each ingested PDF, so the index can be rebuilt

`<gen>` is the generation whose save wrote the segment (agent.search.segments). A save writes
its files, then atomically replaces manifest.json, then deletes files no segment names: a
crash at any point leaves a manifest that names complete files. Writers hold a file lock, so
two processes ingesting into one collection queue up; each reloads the latest generation first.

Readers see a `langchain_core` `VectorStore` (`vectorstore`), the chunk sequence (`documents`:
`Document`s made on access) and the term counts (`lexicon`) and page table (`pages`) keyword
search needs; `version` changes on every write, so caches know when to rebuild.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Container, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from filelock import FileLock, Timeout
from langchain_community.vectorstores import FAISS
from langchain_community.vectorstores.utils import DistanceStrategy
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from agent._files import atomic_write_bytes, atomic_write_text, check_collection_name
from agent.errors import EmbeddingMismatchError, StoreError
from agent.search import segments as segments_mod
from agent.search import vector_index
from agent.search.chunk_table import ChunkTable, PositionKeys, TableDocstore
from agent.search.compaction import Background, whole
from agent.search.lexical import Lexicon
from agent.search.page_table import PageTable
from agent.search.segments import Layout, Segment, SegmentedIndex, SegmentedTable
from agent.search.snapshot import DocumentInfo, Snapshot, SnapshotView

FORMAT = 3
#: 1: chunks in chunks-<gen>.jsonl, converted on load, rewritten by the next save; 1 and 2: one segment
READABLE_FORMATS = (1, 2, 3)
APPEND_MIN_ROWS = 20_000  # from this many chunks on, adding or removing a document writes only its segment
BACKGROUND_MIN_ROWS = 100_000  # from this many chunks on, compactions run in the background (agent.search.compaction)
MAX_SEGMENTS = 8  # at most; more than this share of rows deleted: the next save compacts them into one
MAX_DELETED_SHARE = 0.25
LOCK_TIMEOUT = 600.0  # seconds a writer waits for another process's ingestion to finish
DELETE_WAIT = 2.0  # seconds a delete waits for a writer before telling the user to retry
LOAD_ATTEMPTS = 5  # a reader retries when a writer commits between its reading the manifest and the files


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


class Collection(SnapshotView):
    """One collection, loaded in memory; writes go to disk atomically under a lock."""

    def __init__(self, data_dir: Path, name: str, embeddings: Embeddings, embedding_model: str,
                 *, rebuilding: bool = False, ann_min_vectors: int = vector_index.ANN_MIN_VECTORS,
                 append_min: int = APPEND_MIN_ROWS, background_min: int = BACKGROUND_MIN_ROWS) -> None:
        """`rebuilding=True` opens a collection only to re-index it: a damaged or
        other-model index is not loaded (nor refused), just superseded by the next save.
        `ann_min_vectors`: size from which saves switch to an approximate index;
        `append_min`: size from which saves write segments (agent.search.segments);
        `background_min`: size from which they leave compactions to a thread (agent.search.compaction)."""
        self._rebuilding = rebuilding
        self.ann_min_vectors = ann_min_vectors
        self.append_min = append_min
        self.background_min = background_min
        self.name = check_collection_name(name)
        self.path = collections_root(data_dir) / self.name
        self.embeddings = embeddings
        self.embedding_model = embedding_model
        self._mutex = threading.RLock()
        self._compaction = Background(self.path)
        self._snap = self._empty_snapshot()
        self.reload()
        self._sweep_if_idle()

    def _empty_snapshot(self, version: int = 0) -> Snapshot:
        empty = ChunkTable.from_documents([])
        return Snapshot(version, None, {}, empty, None, self._wrap(faiss.IndexFlatIP(1), empty))

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
            if manifest.get("format") not in READABLE_FORMATS:
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
            segments = [segments_mod.read_segment(self.path, entry, manifest["format"] == 1)
                        for entry in segments_mod.entries(manifest)]
            infos = {k: DocumentInfo(**v) for k, v in manifest["documents"].items()}
        except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:  # TypeError: malformed entries
            raise self._corrupt(f"generation {gen} is damaged ({exc})") from exc
        return self._snapshot(gen, manifest["dimension"], infos, Layout(segments_mod.read_counts(self.path, segments)))

    def _snapshot(self, gen: int, dimension: int, infos: Mapping[str, DocumentInfo], layout: Layout) -> Snapshot:
        """A version over these segments (their term counts and pages are theirs, joined only when asked
        for); one segment with nothing deleted is read directly (no view)."""
        if len(layout.segments) == 1 and not layout.segments[0].deleted:
            documents: ChunkTable | SegmentedTable = layout.segments[0].table
            index = layout.segments[0].index
        else:
            documents, index = SegmentedTable(layout), SegmentedIndex(layout, dimension)
        return Snapshot(gen, dimension, infos, documents, None, self._wrap(index, documents), None, layout.segments)

    def _wrap(self, index: Any, documents: Sequence[Document]) -> FAISS:
        """The vector store over a table: its docstore makes a `Document` per hit, not per chunk."""
        return FAISS(self.embeddings, index, TableDocstore(documents), PositionKeys(len(documents)),
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
        vectors = self._checked_add(chunks, vectors)
        folder = self.path / "files" / info.doc_id
        new_folder = pdf is not None and not folder.exists()
        try:
            if pdf is not None:
                atomic_write_bytes(folder / info.file, Path(pdf).read_bytes())
            infos = {k: v for k, v in self.infos.items() if k not in replacing} | {info.doc_id: info}
            added = ChunkTable.from_documents(chunks)
            dropped = self._rows_of(set(replacing))
            if not self._append(infos, dropped, added, vectors):
                self._save(*whole(self._snap, dropped, self.ann_min_vectors, added, vectors), infos, vectors.shape[1])
        except Exception:
            # Not committed (`_save` only raises before the manifest switch): drop the PDF copy,
            # or the failed document would hold disk space and reappear on the next re-index.
            if new_folder:
                shutil.rmtree(folder, ignore_errors=True)
            raise

    def remove(self, doc_id: str) -> DocumentInfo:
        """Remove a document's vectors, chunks and stored PDF (call inside `writing()`)."""
        info = self.infos[doc_id]
        infos = {k: v for k, v in self.infos.items() if k != doc_id}
        dropped = self._rows_of({doc_id})
        if not self._append(infos, dropped):
            self._save(*whole(self._snap, dropped, self.ann_min_vectors), infos, self.dimension or 1)
        return info

    def _rows_of(self, doc_ids: set[str]) -> np.ndarray:
        """Ascending positions of these documents' chunks (only their files' rows scanned, when the
        segments' page tables say where those are)."""
        if not doc_ids or not len(self.documents):
            return np.zeros(0, np.int64)
        layout, infos = Layout(self._snap.segments), [self.infos[d] for d in doc_ids if d in self.infos]
        rows = layout.rows_with("doc_id", doc_ids, {info.file for info in infos})
        if len(rows) == sum(info.chunks for info in infos):
            return rows
        return layout.rows_with("doc_id", doc_ids)  # the records do not say where they are: scan every chunk

    def _append(self, infos: dict[str, DocumentInfo], dropped: np.ndarray, added: ChunkTable | None = None,
                vectors: np.ndarray | None = None) -> bool:
        """Commit by writing only a segment of `added`, the chunks at `dropped` marked deleted in theirs,
        when the collection is big enough for that to pay, merging the last segments into it as
        `segments.merge_start` says; False when a whole save is due (nothing written then)."""
        snap, segments = self._snap, list(self._snap.segments)
        live = len(snap.documents) - len(dropped) + (len(added) if added is not None else 0)
        rows = sum(len(seg.table) for seg in segments) + (len(added) if added is not None else 0)
        background = live >= self.background_min  # a compaction due is left to a thread
        compact = rows - live > MAX_DELETED_SHARE * rows
        if live < self.append_min or not segments or not all(seg.checksums for seg in segments) \
                or (compact and not background):
            return False
        kept = Layout(segments).with_deleted(dropped)
        layout = Layout(kept)
        if any(new.splits_a_page() for old, new in zip(segments, kept) if new.deleted != old.deleted) \
                or not all(seg.counts is not None and seg.page_table is not None for seg in kept) \
                or (added is not None and layout.has_file({str(d.metadata.get("file", "")) for d in added})):
            return False
        start = segments_mod.merge_start([len(layout.rows_of(s)) for s in range(len(kept))],
                                         len(added) if added is not None else 0, MAX_SEGMENTS)
        if start == 0 and not background:  # the others reached half the first: compact them all
            return False
        compact = compact or start == 0
        start = len(kept) if start == 0 else max(start, self._compaction.segments)
        vocabulary = kept[-1].counts.vocabulary  # type: ignore[union-attr]  # the latest: later segments' extend earlier ones'
        parts, old_vectors, part, part_pages = layout.tail(start) if start < len(kept) else ([], None, None, None)
        vocab_from = kept[start].vocab_from if start < len(kept) else len(vocabulary)
        kept = kept[:start]
        gen, dimension = self.version + 1, self.dimension or 1
        written: list[Path] = []
        try:
            if added is not None:
                tail, tail_pages = Lexicon.counts_of(added, vocabulary), PageTable.build(added)
                part = tail if part is None else part.concat(tail)
                part_pages = tail_pages if part_pages is None else part_pages.concat(tail_pages)
                parts.append((added, None))
            if parts:
                assert part is not None and part_pages is not None  # the merged segments' counts: checked above
                new = [v for v in (old_vectors, vectors) if v is not None]
                index = vector_index.build(np.vstack(new).astype(np.float32), dimension, ann_min=self.ann_min_vectors)
                kept.append(segments_mod.write_segment(self.path, gen, index, ChunkTable.concat(parts),
                                                       (part, vocab_from, part_pages), written))
            self._commit(gen, infos, dimension, kept)
        except Exception:  # the manifest still names the previous segments: this one is debris
            for path in written:
                path.unlink(missing_ok=True)
            raise
        self._snap = self._snapshot(gen, dimension, infos, Layout(kept))
        self._drop_old_generations(keep={seg.generation for seg in kept}, documents=infos)
        if compact:
            self._compaction.start(self._snap, self._compact)
        return True

    def _compact(self, base: Snapshot, work: Path) -> None:
        """(In the background) `base` as one segment written under `work`, then swapped in for its segments."""
        index, documents, lexicon, pages = whole(base, np.zeros(0, np.int64), self.ann_min_vectors)
        segment = segments_mod.write_segment(work, base.version, index, documents, (lexicon, 0, pages), [])
        with self.writing():
            self._swap_in(base, segment, work)

    def _swap_in(self, base: Snapshot, segment: Segment, work: Path) -> None:
        """Commit `segment` (the compaction of `base`) in place of `base`'s segments, with the rows removed
        since marked deleted in it, the segments added since after it (call inside `writing()`)."""
        snap, n = self._snap, len(base.segments)
        self._compaction.segments = 0
        if [s.generation for s in snap.segments[:n]] != [s.generation for s in base.segments]:
            return  # another process compacted or rewrote them meanwhile
        gen = self.version + 1
        for src, dst in zip(segments_mod.segment_files(work, base.version), segments_mod.segment_files(self.path, gen)):
            if src.exists():  # before the commit, a new generation's files: removed by the next save if it fails
                os.replace(src, dst)
        kept = [replace(segment, generation=gen, deleted=segments_mod.deleted_since(base.segments, snap.segments[:n])),
                *snap.segments[n:]]
        self._commit(gen, dict(snap.infos), snap.dimension or 1, kept)
        self._snap = self._snapshot(gen, snap.dimension or 1, snap.infos, Layout(kept))
        self._drop_old_generations(keep={seg.generation for seg in kept}, documents=snap.infos)

    def compaction_finished(self, timeout: float | None = None) -> bool:
        """Whether no background compaction is running, after waiting up to `timeout` seconds for it."""
        return self._compaction.wait(timeout)

    def replace_all(self, entries: list[tuple[DocumentInfo, list[Document], np.ndarray]], dimension: int) -> None:
        """Swap in a complete rebuilt index in one generation (re-index; call inside `writing()`)."""
        documents = ChunkTable.from_documents([c for _, chunks, _ in entries for c in chunks])
        parts = [np.asarray(v, dtype=np.float32).reshape(len(c), -1) for _, c, v in entries if len(c)]
        index = vector_index.build(np.vstack(parts) if parts else np.zeros((0, dimension), np.float32), dimension,
                                   ann_min=self.ann_min_vectors)
        lexicon = Lexicon.build(documents, self.lexicon, self.documents)
        self._save(index, documents, lexicon, PageTable.build(documents), {info.doc_id: info for info, _, _ in entries},
                   dimension)
        self._rebuilding = False

    def _save(self, index: Any, documents: ChunkTable, lexicon: Lexicon, pages: PageTable,
              infos: dict[str, DocumentInfo], dimension: int) -> None:
        """Commit a whole new version as one segment."""
        gen = self.version + 1
        written: list[Path] = []
        try:
            segment = segments_mod.write_segment(self.path, gen, index, documents, (lexicon, 0, pages), written)
            self._commit(gen, infos, dimension, [segment])
        except Exception:  # the manifest still names the previous generation: this one is debris
            for path in written:
                path.unlink(missing_ok=True)
            raise
        self._snap = self._snapshot(gen, dimension, infos, Layout([segment]))
        self._drop_old_generations(keep={gen}, documents=infos)

    def _commit(self, gen: int, infos: dict[str, DocumentInfo], dimension: int, segments: list[Segment]) -> None:
        """Switch the manifest to these segments: the commit point of every write."""
        manifest = {"format": FORMAT, "generation": gen, "embedding_model": self.embedding_model,
                    "dimension": dimension, "documents": {k: asdict(v) for k, v in infos.items()},
                    "segments": [seg.entry() for seg in segments]}
        atomic_write_text(self.manifest_path, json.dumps(manifest, ensure_ascii=False, indent=1))

    def _stale_temps(self) -> list[Path]:
        """Temp files of a writer killed mid-write (atomic_write_bytes names them ".<name>.<random>.tmp").
        Only to be deleted with the lock held: then none of them is in use."""
        return [*self.path.glob(".*.tmp"), *self.path.glob("files/*/.*.tmp")]

    def _sweep_if_idle(self) -> None:
        """On opening: delete what a killed writer left, if no writer holds the lock right now (a
        collection whose documents are all indexed may never be written again to do it)."""
        self._compaction.sweep()
        if not self.path.is_dir() or not self._stale_temps():
            return
        lock = FileLock(str(self.path / ".lock"), timeout=0)
        try:
            with lock:
                for path in self._stale_temps():
                    path.unlink(missing_ok=True)
        except (Timeout, OSError):
            pass

    def _drop_old_generations(self, keep: set[int], documents: Container[str]) -> None:
        """Best-effort cleanup after a commit: it must not raise, the save already succeeded.
        Stored copies of documents the manifest no longer names go too (a writer killed between
        its commit and deleting them left them behind)."""
        old = [p for pattern in ("chunks-*.jsonl", *(f.format("*") for f in segments_mod.FILE_PATTERNS))
               for p in self.path.glob(pattern) if p.stem.rsplit("-", 1)[-1] not in {str(k) for k in keep}]
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
    """The stored PDF copies in one document folder, without the `.<name>.<random>.tmp` a writer
    killed while copying leaves (it sorts first: re-indexing and previews would read it); stored
    names never start with a dot (`safe_file_name` strips leading dots)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
