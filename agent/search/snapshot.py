"""One committed version of a collection (`Snapshot`) and its document records (`DocumentInfo`),
with what a write derives from a version without reading its chunks (agent.search.store)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
from langchain_community.vectorstores import FAISS
from langchain_core.documents import Document

from agent.errors import EmbeddingMismatchError
from agent.search.chunk_table import ChunkTable
from agent.search.lexical import Lexicon, Vocabulary
from agent.search.page_table import PageTable
from agent.search.postings import Part, distinct, other_rows
from agent.search.segments import Segment, SegmentedTable, joined_counts, joined_pages, keyword_parts

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
    documents: ChunkTable | SegmentedTable
    #: the term counts of `documents`, when given whole (an in-memory version); None: joined from the
    #: segments' own on first use (`lexicon`), which a write or a keyword index never needs
    counts: Lexicon | None
    vectorstore: FAISS
    page_table: PageTable | None = None  # rows as `counts.pages` (given with them)
    segments: tuple[Segment, ...] = ()  # the files behind this version (agent.search.segments)
    _keyword_index: list[Any] = field(default_factory=list, repr=False)
    _index_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @cached_property
    def _joined(self) -> tuple[Lexicon | None, PageTable | None]:
        if self.counts is not None or not self.segments:
            return self.counts, self.page_table
        lexicon, pages = joined_counts(self.segments)
        return (lexicon, pages) if lexicon is not None and lexicon.chunks.rows == len(self.documents) else (None, None)

    @property
    def lexicon(self) -> Lexicon | None:
        """The term counts of the live chunks and their pages (in `documents` order)."""
        return self._joined[0]

    @cached_property
    def pages(self) -> PageTable | None:
        """The page table of the live chunks (rows as `lexicon.pages`): the segments' joined (cheap)."""
        return self.page_table if self.counts is not None or not self.segments else joined_pages(self.segments)

    def keyword_index(self, build: Callable[[Snapshot], T]) -> T:
        """The keyword index of this version, built once; the lock is this snapshot's alone, so a
        build never makes searches of other collections or versions wait."""
        with self._index_lock:
            if not self._keyword_index:
                self._keyword_index.append(build(self))
            return self._keyword_index[0]

    def keyword_postings(self) -> tuple[list[Part], list[Part], np.ndarray, Vocabulary] | None:
        """The BM25 postings of this version's chunks and pages as its segments' saved ones (where they
        lie), and each chunk's page (None: made from `lexicon` by whoever needs them)."""
        found = keyword_parts(self.segments)
        return found if found is not None and len(found[2]) == len(self.documents) else None

    def kept_counts(self, keep: np.ndarray | None) -> tuple[Lexicon | None, PageTable | None]:
        """The term counts and page table of the chunks at `keep` (None: all), made from the current
        ones without reading the chunks; None when a dropped chunk shares a page with a kept one."""
        lexicon, pages = self.lexicon, self.pages
        if lexicon is None or lexicon.chunks.rows != len(self.documents) or lexicon.chunk_page is None:
            return None, None
        if keep is None or len(keep) == len(self.documents):  # all kept (`keep` ascending, unique)
            return lexicon, pages
        pages = None if pages is None else pages.take(distinct(lexicon.chunk_page[keep]))
        lexicon = lexicon.without(other_rows(len(self.documents), keep))
        return lexicon, pages if lexicon is not None else None

    def shares_a_file(self, added: ChunkTable, keep: np.ndarray | None) -> bool:
        """Whether a kept chunk comes from a file of `added` (then its pages may continue kept ones)."""
        same_file = self.documents.rows_with("file", {str(d.metadata.get("file", "")) for d in added})
        return bool(len(same_file if keep is None else np.intersect1d(same_file, keep, assume_unique=True)))

    def counts_after(self, keep: np.ndarray | None,
                      added: ChunkTable | None = None) -> tuple[Lexicon | None, PageTable | None]:
        """The term counts and page table after keeping the chunks at `keep` (None: all) and appending
        `added`, without reading the kept chunks; None when that cannot be known (`Collection._whole` recounts)."""
        lexicon, pages = self.kept_counts(keep)
        if lexicon is None or added is None:
            return lexicon, pages
        if self.shares_a_file(added, keep):
            return None, None
        return lexicon.appended(added), None if pages is None else pages.concat(PageTable.build(added))


class SnapshotView:
    """What a collection shows of its current snapshot (`_snap`, replaced whole by each writer);
    shared by the file and PostgreSQL stores."""

    _snap: Snapshot
    name: str

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
    def documents(self) -> ChunkTable | SegmentedTable:
        return self._snap.documents

    @property
    def lexicon(self) -> Lexicon | None:
        return self._snap.lexicon

    @property
    def vectorstore(self) -> FAISS:
        return self._snap.vectorstore

    def _checked_add(self, chunks: list[Document], vectors: np.ndarray) -> np.ndarray:
        """`vectors` as one float32 row per chunk, once the chunks' ids are unique (the docstore is
        keyed by them: without, a search returns one chunk for all) and the dimension fits."""
        if len({c.id for c in chunks}) != len(chunks) or any(not c.id for c in chunks):
            raise ValueError("every chunk needs a unique id (chunking.chunk_pages sets it)")
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(chunks), -1)
        if self.dimension is not None and vectors.shape[1] != self.dimension and self.documents:
            raise EmbeddingMismatchError(f"Vectors of dimension {vectors.shape[1]} do not fit collection "
                                         f"{self.name!r} (dimension {self.dimension}).",
                                         f"Re-index with `python -m agent reindex --collection {self.name}`.")
        return vectors
