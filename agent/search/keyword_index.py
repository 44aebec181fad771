"""Keyword indexes of collection versions, and several of them seen as one numbering of chunks and pages.

Built on the first search of a collection version and kept on that version (its snapshot), so a
new version never reads a stale index and no global lock is held while one is built.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore

from agent.search.lexical import BM25Index, Lexicon, Vocabulary, page_key
from agent.search.page_table import PageTable, counts_from_chunks
from agent.search.postings import Part
from agent.search.section_titles import SectionTitles
from agent.search.title_vectors import TitleIndex
from agent.search.tokens import file_title, tokenize
from agent.search.translation import chinese_pages

#: a version's saved postings: chunk parts, page parts, each chunk's page, and their vocabulary
KeywordParts = tuple[Sequence[Part], Sequence[Part], np.ndarray, Vocabulary]


class CollectionVersion(Protocol):
    """One version of a collection, as search reads it (agent.search.store.Snapshot is one).

    An optional `lexicon` (agent.search.lexical.Lexicon for these documents) spares tokenising
    them; `keyword_index(build)` returns `build(self)`, computed once per version."""

    @property
    def vectorstore(self) -> VectorStore: ...

    @property
    def documents(self) -> Sequence[Document]: ...

    @property
    def version(self) -> int: ...

    @property
    def lexicon(self) -> Lexicon | None: ...

    def keyword_index(self, build: Callable[[Any], Any]) -> Any: ...


@runtime_checkable
class SearchableCollection(Protocol):
    """What search needs from a stored collection: its current version, whole."""

    def snapshot(self) -> CollectionVersion: ...


def file_title_terms(file: str) -> set[str]:
    return set(tokenize(file_title(file)))


class CollectionIndex:
    """Keyword indexes of one collection version: chunk BM25, page BM25, page map.

    Built from the collection's persisted term counts (`.lexicon`, see agent.lexical) and page
    table (`.pages`, agent.search.page_table) when it has them for these documents, without
    making a `Document`; else from the chunks (slow: tokenising takes ~0.4 s per 1,000 chunks)."""

    def __init__(self, documents: Sequence[Document], lexicon: Lexicon | None = None,
                 pages: PageTable | None = None, postings: KeywordParts | None = None) -> None:
        """`postings`: the BM25 postings of these chunks and pages saved with the collection's segments
        and each chunk's page (agent.search.postings.Part; then `lexicon` is not read and may be None)."""
        self.documents = documents  # a collection's ChunkTable stays columnar: `Document`s per hit only
        if postings is not None and pages is not None and len(postings[2]) == len(documents) \
                and (not len(documents) or int(postings[2].max()) < pages.rows):
            self._set(pages, postings[2], BM25Index.from_parts(postings[0], postings[3]),
                      BM25Index.from_parts(postings[1], postings[3]))
            return
        if lexicon is None or pages is None or lexicon.chunk_page is None or lexicon.pages.rows != pages.rows \
                or not lexicon.fits(documents, pages.rows):
            lexicon, pages = counts_from_chunks(documents, lexicon)
        self._set(pages, lexicon.chunk_page, *lexicon.bm25())

    def _set(self, pages: PageTable, chunk_page: np.ndarray, chunk_bm25: BM25Index, page_bm25: BM25Index) -> None:
        self.pages = pages
        self.contents = pages.contents
        self.sections = SectionTitles.of_pages(pages.rows, pages.titles_by_page(), pages.last)
        self.chunk_page = np.asarray(chunk_page, dtype=np.int64)
        # chunks grouped by page, for per-page maxima with np.maximum.reduceat (ufunc.at is
        # far slower); None when chunks already come page by page
        order = np.argsort(self.chunk_page, kind="stable")
        self.page_order = None if np.array_equal(order, np.arange(len(order))) else order
        self.page_starts = np.searchsorted(self.chunk_page[order], np.arange(pages.rows))
        self.chunk_bm25, self.page_bm25 = chunk_bm25, page_bm25
        self.own_view: MergedView | None = None  # this index alone seen as a merged view (see `merged_view`)

    @cached_property
    def chunk_ids(self) -> dict[Any, int]:
        """Chunk key -> position: how hits of a vector store that returns only `Document`s are placed
        (made on first use: a collection's store gives positions, `_vector_positions`)."""
        return {self.chunk_key(d): i for i, d in enumerate(self.documents)}

    @cached_property
    def chinese_pages(self) -> np.ndarray:
        """Per page: whether it is written in Chinese, for questions asked in the other language (made on first
        use: agent.search.translation)."""
        return chinese_pages(self.page_bm25)

    @cached_property
    def title_index(self) -> TitleIndex:
        """The section titles' vectors and pages, for `title_vectors.title_scores` (made on first use, only for
        collections whose model has a floor)."""
        return TitleIndex.of(self.pages.title_vectors, self.pages.title_owners())

    def warm(self, titles: bool) -> None:
        """Make now what the first search would make on first use (the pages' languages and, when `titles`, the
        title index), so that the first question waits for neither (Workspace.warm_up)."""
        _ = self.chinese_pages, (self.title_index if titles else None)

    @staticmethod
    def chunk_key(doc: Document) -> Any:
        cid = doc.metadata.get("chunk_id")
        return cid if cid is not None else (page_key(doc), doc.page_content)


_MERGED: dict[tuple[int, ...], MergedView] = {}  # views of several indexes, by their ids
_MERGED_MAX = 4
_MERGED_LOCK = threading.Lock()


def collection_index(collection: SearchableCollection | CollectionVersion) -> CollectionIndex:
    """The keyword index of a collection's current version (or of that version), built once per
    version and kept on it, without a global lock."""
    version = collection.snapshot() if isinstance(collection, SearchableCollection) else collection
    return version.keyword_index(_built)


def _built(version: Any) -> CollectionIndex:
    """A version's keyword index: from its segments' saved postings when it has them (its joined term
    counts are then never made), else from its term counts."""
    postings = getattr(version, "keyword_postings", lambda: None)()
    return CollectionIndex(version.documents, None if postings is not None else version.lexicon,
                           getattr(version, "pages", None),
                           postings)


class MergedView:
    """Several collections' indexes seen as one numbering of chunks and pages (cached:
    rebuilding these arrays per query cost milliseconds at 1M chunks)."""

    def __init__(self, indexes: Sequence[CollectionIndex]) -> None:
        self.indexes = tuple(indexes)
        page_off = np.cumsum([0] + [ix.pages.rows for ix in indexes])
        self.chunk_off = np.cumsum([0] + [len(ix.documents) for ix in indexes])
        self.pages = page_off[-1]
        self.chunks = self.chunk_off[-1]
        self.chunk_page = joined([ix.chunk_page + off for ix, off in zip(indexes, page_off)], np.int64)
        orders = [ix.page_order for ix in indexes]
        self.page_order = None if all(o is None for o in orders) else joined(
            [(np.arange(len(ix.documents)) if o is None else o) + off
             for ix, o, off in zip(indexes, orders, self.chunk_off)], np.int64)
        self.page_starts = joined([ix.page_starts + off for ix, off in zip(indexes, self.chunk_off)], np.int64)
        self.files = sorted({f for ix in indexes for f in ix.pages.files})
        file_pos = {f: i for i, f in enumerate(self.files)}
        self.page_file = joined([np.array([file_pos[f] for f in ix.pages.files], np.int64)[ix.pages.file]
                               for ix in indexes], np.int64)
        self.title_terms = [file_title_terms(f) for f in self.files]
        self.contents = joined([ix.contents for ix in indexes], np.float64)
        self.continues = joined([ix.pages.continues for ix in indexes], np.float64)
        nexts = [_next_pages(ix.pages.file, ix.pages.number) for ix in indexes]
        self.next_page = joined([np.where(nxt >= 0, nxt + off, -1) for nxt, off in zip(nexts, page_off)], np.int64)

    def page_max(self, chunk_values: np.ndarray) -> np.ndarray:
        """The maximum of each page's chunk values."""
        if self.page_order is not None:
            chunk_values = chunk_values[self.page_order]
        return np.maximum.reduceat(chunk_values, self.page_starts)

    def page_chunks(self, page: int) -> list[int]:
        """The chunk positions of one page."""
        lo = int(self.page_starts[page])
        hi = int(self.page_starts[page + 1]) if page + 1 < len(self.page_starts) else int(self.chunks)
        rows = np.arange(lo, hi) if self.page_order is None else self.page_order[lo:hi]
        return [int(c) for c in rows]

    def document(self, chunk: int) -> Document:
        i = int(np.searchsorted(self.chunk_off, chunk, side="right")) - 1
        return self.indexes[i].documents[chunk - int(self.chunk_off[i])]

    def title_bonus(self, terms: Sequence[str]) -> np.ndarray | None:
        """Per page: idf-weighted query words found in its file's name (None if none match)."""
        qterms = set(terms)
        df = Counter(t for title in self.title_terms for t in title)
        n = len(self.files)
        bonus = np.array([sum(math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in qterms & title)
                          for title in self.title_terms], dtype=np.float64)
        return bonus[self.page_file] if bonus.any() else None


def _next_pages(file: np.ndarray, number: np.ndarray) -> np.ndarray:
    """Per page: the row of the next page of the same file (-1: none)."""
    order = np.lexsort((number, file))
    out = np.full(len(file), -1, dtype=np.int64)
    follows = (file[order[1:]] == file[order[:-1]]) & (number[order[1:]] == number[order[:-1]] + 1)
    out[order[:-1][follows]] = order[1:][follows]
    return out


def joined(arrays: list[np.ndarray], dtype: Any) -> np.ndarray:
    """The arrays end to end; a single one as it is (no copy: the common one-collection case)."""
    if len(arrays) == 1:
        return arrays[0]
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype)


def merged_view(indexes: Sequence[CollectionIndex]) -> MergedView:
    """The view of one index lives on it (and goes with its version); views of several are
    kept for the last few combinations only, so old versions are not held in memory."""
    if len(indexes) == 1:
        if indexes[0].own_view is None:
            indexes[0].own_view = MergedView(indexes)
        return indexes[0].own_view
    key = tuple(id(ix) for ix in indexes)
    with _MERGED_LOCK:
        found = _MERGED.get(key)
    if found is None or any(a is not b for a, b in zip(found.indexes, indexes)):
        found = MergedView(indexes)
        with _MERGED_LOCK:
            if len(_MERGED) >= _MERGED_MAX:
                _MERGED.clear()
            _MERGED[key] = found
    return found


def clear_cache() -> None:
    with _MERGED_LOCK:
        _MERGED.clear()
