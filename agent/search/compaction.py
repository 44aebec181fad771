"""Whole compactions of a big collection in a background thread (issue 19.5).

Compacting rewrites every live row of a collection as one segment: at 1M chunks that is minutes
of work, and a save that did it inline made that add wait for it. Now such a save commits its own
segment (or its deletion marks) at once and starts a compaction of the version it just published
(`Collection._compact`): the thread writes the new segment under `<collection>/compacting/`,
then, holding the writer lock only for that, moves its files into place under a new generation
and commits a manifest listing it in place of the segments it compacted, with the rows removed
meanwhile marked deleted in it and the segments added meanwhile after it. Searches read published
snapshots and never wait for it; adds and removals go on (they do not merge into the segments
being compacted). A killed compaction leaves the last committed manifest, which names only
complete files; its `compacting/` folder is removed when no compaction holds the lock.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from filelock import FileLock, Timeout

from agent.search import vector_index
from agent.search.chunk_table import ChunkTable
from agent.search.lexical import Lexicon
from agent.search.page_table import PageTable
from agent.search.postings import other_rows
from agent.search.segments import SegmentedTable
from agent.search.snapshot import Snapshot

logger = logging.getLogger(__name__)

WORK_FOLDER = "compacting"
LOCK_FILE = ".compact.lock"  # held by the process compacting this collection
COPY_ROWS = 65_536  # vectors copied into a compacted index at a time: 128 MB at dimension 512, not all of them


class Background:
    """The background compaction of one collection folder: one at a time (a file lock: across processes too)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.thread: threading.Thread | None = None
        #: how many leading segments the running compaction replaces (0: none running); adds merge none of them
        self.segments = 0

    @property
    def work(self) -> Path:
        return self.folder / WORK_FOLDER

    def start(self, base: Snapshot, run: Callable[[Snapshot, Path], None]) -> None:
        """Compact `base` with `run(base, work folder)` in a thread, unless one is running."""
        if self.thread is not None and self.thread.is_alive():
            return
        self.segments = len(base.segments)
        self.thread = threading.Thread(target=self._body, args=(_uncached(base), run),
                                       name=f"compact-{self.folder.name}", daemon=True)
        self.thread.start()

    def _body(self, base: Snapshot, run: Callable[[Snapshot, Path], None]) -> None:
        lock = FileLock(str(self.folder / LOCK_FILE), timeout=0)
        try:
            with lock:
                shutil.rmtree(self.work, ignore_errors=True)
                self.work.mkdir()
                try:
                    run(base, self.work)
                finally:
                    shutil.rmtree(self.work, ignore_errors=True)
        except Timeout:
            pass  # another process is compacting this collection
        except Exception as exc:  # noqa: BLE001 - a thread's error has no caller: the next big save retries
            logger.warning("background compaction of %s failed (%s); the collection is unchanged", self.folder, exc)
        finally:
            self.segments = 0

    def wait(self, timeout: float | None = None) -> bool:
        """Whether no compaction is running (after waiting up to `timeout` seconds for it)."""
        if self.thread is not None:
            self.thread.join(timeout)
        return self.thread is None or not self.thread.is_alive()

    def sweep(self) -> None:
        """Remove what a killed compaction left, if none is running now."""
        if not self.work.exists():
            return
        try:
            with FileLock(str(self.folder / LOCK_FILE), timeout=0):
                shutil.rmtree(self.work, ignore_errors=True)
        except (Timeout, OSError):
            pass


def _uncached(snap: Snapshot) -> Snapshot:
    """`snap` without its keyword index: a compaction reads only its rows, and holding the index would
    keep it in memory after adds and removals made meanwhile replace the version."""
    return replace(snap, _keyword_index=[], _index_lock=threading.Lock())


def whole(snap: Snapshot, dropped: np.ndarray, ann_min: int, added: ChunkTable | None = None,
          vectors: np.ndarray | None = None) -> tuple[Any, ChunkTable, Lexicon, PageTable]:
    """The index, chunks, term counts and page table of `snap` without the chunks at `dropped` and
    with `added`, as one segment (a whole save, or a compaction); only changed chunks are tokenised.
    Reads `snap` only (a copy: a failed save leaves the published snapshot unchanged)."""
    dimension = vectors.shape[1] if vectors is not None else snap.dimension or 1
    keep, index = _without(snap, dropped, dimension)
    if added is not None and len(added):
        index.add(vectors)
    documents = ChunkTable.concat([*_parts(snap, keep), *([(added, None)] if added is not None else [])])
    lexicon, pages = snap.counts_after(keep, added)
    lexicon = lexicon or Lexicon.build(documents, snap.lexicon, snap.documents)
    if pages is None or pages.rows != lexicon.pages.rows:
        pages = PageTable.build(documents)
    return vector_index.fit(index, ann_min=ann_min), documents, lexicon, pages


def _parts(snap: Snapshot, keep: np.ndarray | None) -> list[tuple[ChunkTable, np.ndarray | None]]:
    """The tables and rows holding the chunks of `snap` at positions `keep` (None: all), for `ChunkTable.concat`."""
    documents = snap.documents
    return documents.parts(keep) if isinstance(documents, SegmentedTable) else [(documents, keep)]


def _without(snap: Snapshot, dropped: np.ndarray, dimension: int) -> tuple[np.ndarray | None, Any]:
    """Positions of the chunks of `snap` not `dropped` (None: all of them), and a new index holding
    their vectors only, of the kind of the first segment's."""
    current = snap.vectorstore.index
    if current.ntotal == 0:
        return np.zeros(0, np.int64), faiss.IndexFlatIP(dimension)
    keep = None if not len(dropped) else other_rows(len(snap.documents), dropped)
    fresh = vector_index.empty_like(snap.segments[0].index if snap.segments else current)
    for index, rows in _vector_parts(snap, keep):
        cells = _cells(index, fresh)
        for start in range(0, len(rows), COPY_ROWS):
            block = rows[start:start + COPY_ROWS]
            vectors = index.reconstruct_batch(block)
            if cells is None:
                fresh.add(vectors)
            else:  # a named array: a temporary's memory would be freed before add_core reads it
                block_cells = np.ascontiguousarray(cells[block])
                fresh.add_core(len(block), faiss.swig_ptr(vectors), None, faiss.swig_ptr(block_cells))
    return keep, fresh


def _cells(index: Any, fresh: Any) -> np.ndarray | None:
    """The IVF cell of each row of `index` when `fresh` has the same cells (the first segment's: its
    vectors keep their cells instead of being assigned again, the bulk of an IVF add), else None."""
    if not (vector_index.is_approximate(index) and vector_index.is_approximate(fresh)) \
            or index.nlist != fresh.nlist or index.direct_map.type != faiss.DirectMap.Array \
            or not np.array_equal(vector_index.all_vectors(index.quantizer), vector_index.all_vectors(fresh.quantizer)):
        return None
    return faiss.vector_to_array(index.direct_map.array) >> 32


def _vector_parts(snap: Snapshot, keep: np.ndarray | None) -> list[tuple[Any, np.ndarray]]:
    """The FAISS indexes and their rows holding the vectors of `snap` at positions `keep` (None: all)."""
    documents, index = snap.documents, snap.vectorstore.index
    if isinstance(documents, SegmentedTable):
        return [(seg.index, rows) for seg, (_, rows) in zip(documents.layout.segments, documents.parts(keep))]
    return [(index, np.arange(index.ntotal) if keep is None else keep)]
