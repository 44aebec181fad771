"""The titles of the sections that start on each page, as a search signal.

Titles come from chunk metadata `outline`: the PDF's bookmarks that point to the page, else the
lines set in a larger type (agent/ingest/_headings.py); and each title holding a long form the document
defines again under its acronym (agent/ingest/acronyms.py). Two signals read them (retrieval.py):
`heading` (how much of the query's idf the page's titles hold) and `title_match` (how exactly one
title names what a short question asks about).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from langchain_core.documents import Document

from agent.search.lexical import BM25Index, tokenize


class SectionTitles:
    """Per page of one collection version: its section titles' terms, and term -> pages postings."""

    def __init__(self, first_chunks: Sequence[Document]) -> None:
        """`first_chunks`: one chunk of each page, in page order (every chunk carries its page's titles)."""
        self._index(len(first_chunks), {p: doc.metadata["outline"] for p, doc in enumerate(first_chunks)
                                        if doc.metadata.get("outline")})

    @classmethod
    def of_pages(cls, pages: int, titles: Mapping[int, Sequence[str]]) -> SectionTitles:
        """From the titles of the pages that start sections (agent.search.page_table: no chunk read)."""
        out = cls.__new__(cls)
        out._index(pages, titles)
        return out

    def _index(self, pages: int, titles: Mapping[int, Sequence[str]]) -> None:
        postings: dict[str, list[int]] = {}
        self.pages = pages
        self.titles: dict[int, list[frozenset[str]]] = {}  # section numbers ("3.3.1") left out
        for p in sorted(titles):
            own = [tokenize(title) for title in titles[p]]
            self.titles[p] = [frozenset(t for t in terms if not t.replace(".", "").isdigit()) for terms in own]
            for term in {t for terms in own for t in terms}:
                postings.setdefault(term, []).append(p)
        self.postings = {t: np.array(pages, dtype=np.int64) for t, pages in postings.items()}

    def share(self, terms: Sequence[str], bm25: BM25Index) -> np.ndarray:
        """Per page: the share of the query's idf found in its titles (a share, not a sum: common Chinese
        characters match many titles but weigh little). `bm25`: the page index, for the idf."""
        query = _idf(terms, bm25)
        total = sum(query.values())
        out = np.zeros(self.pages, dtype=np.float64)
        for t, v in query.items():
            if t in self.postings:
                out[self.postings[t]] += v / total
        return out

    def match(self, terms: Sequence[str], bm25: BM25Index) -> np.ndarray:
        """Per page: the best idf-weighted F1 between the query's terms and one of its titles: 1 when a
        title names just what the question asks about ("What is counter mode?" and "Counter mode"),
        less when it also names other things or covers a part of the question."""
        query = _idf(terms, bm25)
        total = sum(query.values())
        out = np.zeros(self.pages, dtype=np.float64)
        for p in {int(p) for t in query if t in self.postings for p in self.postings[t]}:
            for title in self.titles.get(p, ()):
                common = sum(v for t, v in query.items() if t in title)
                if common:
                    precision = common / sum(_idf(title, bm25).values())
                    recall = common / total
                    out[p] = max(out[p], 2 * precision * recall / (precision + recall))
        return out


def _idf(terms: Sequence[str] | frozenset[str], bm25: BM25Index) -> dict[str, float]:
    """The known terms among `terms` (each once), with their idf in `bm25`."""
    ids = bm25.vocabulary.ids
    return {t: float(bm25.idf[ids[t]]) for t in set(terms) if t in ids}
