"""The titles of the sections that start on each page, as a search signal.

Titles come from chunk metadata `outline`: the PDF's bookmarks that point to the page, else the
lines set in a larger type (agent/ingest/_headings.py); and each title holding a long form the document
defines again under its acronym (agent/ingest/acronyms.py). Three signals read them (retrieval.py):
`heading` (how much of the query's idf the page's titles hold), `title_match` (how exactly one
title names what a short question asks about) and `next_section` (the last section starting on a page
often goes on over the next page: `continuation` says how much of that page it covers).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np
from langchain_core.documents import Document

from agent.search.lexical import BM25Index
from agent.search.tokens import tokenize

#: a numbered title: "5.8", "5.8.1.", "A.2" (then a space or the end); its depth is the count of its numbers
_NUMBERED = re.compile(r"^\s*(\d+(?:\.\d+)*|[A-Z](?:\.\d+)+)\.?(?:\s|$)")


def title_level(title: str) -> int | None:
    """The depth of a numbered title ("5.8" -> 2, "5.8.1. Cache" -> 3); None when it carries no number."""
    number = _NUMBERED.match(unicodedata.normalize("NFKC", title))
    return number.group(1).count(".") + 1 if number else None


def _flat(text: str) -> str:
    """Lower case, one space between words, NFKC (not needed, and most of the cost, for ASCII text)."""
    return " ".join((text if text.isascii() else unicodedata.normalize("NFKC", text)).split()).lower()


def _positions(text: str, titles: Sequence[str]) -> list[int]:
    """Where each title starts in the (flattened) page text; one the text does not hold (an acronym
    title) stands where the title before it does."""
    out, last = [], 0
    for title in titles:
        at = text.find(_flat(title))
        last = at if at >= 0 else last
        out.append(last)
    return out


def continuation(keys: Sequence[tuple[str, int]], texts: Sequence[str],
                 titles: Mapping[int, Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Per page: the index (in its `titles`) of the section that starts last on it (-1: none), and the share of
    the next page's text that this section goes on over, its subsections included (up to the next page's first
    title of the same or a higher level; without numbered titles, its first title), 0 without a next page.
    `keys`: (file, page number) of each page; `texts`: each page's text."""
    last = np.full(len(keys), -1, dtype=np.int32)
    share = np.zeros(len(keys), dtype=np.float64)
    row = {key: p for p, key in enumerate(keys)}
    flat: dict[int, str] = {}  # a page's text is read as a start page and as the page after one

    def text(q: int) -> str:
        if q not in flat:
            flat[q] = _flat(texts[q])
        return flat[q]

    for p, own in titles.items():
        if not own:
            continue
        at = _positions(text(p), own)
        last[p] = max(range(len(own)), key=lambda i: (at[i], i))
        nxt = row.get((keys[p][0], keys[p][1] + 1))
        if nxt is None:
            continue
        level, following = title_level(own[last[p]]), text(nxt)
        later = titles.get(nxt, ())
        ends = [pos for t, pos in zip(later, _positions(following, later))
                if level is None or title_level(t) is None or title_level(t) <= level]
        share[p] = min(min(ends) / max(len(following), 1), 1.0) if ends else 1.0
    return last, share


class SectionTitles:
    """Per page of one collection version: its section titles' terms, and term -> pages postings."""

    def __init__(self, first_chunks: Sequence[Document]) -> None:
        """`first_chunks`: one chunk of each page, in page order (every chunk carries its page's titles)."""
        self._index(len(first_chunks), {p: doc.metadata["outline"] for p, doc in enumerate(first_chunks)
                                        if doc.metadata.get("outline")}, np.full(len(first_chunks), -1))

    @classmethod
    def of_pages(cls, pages: int, titles: Mapping[int, Sequence[str]], last: np.ndarray) -> SectionTitles:
        """From the titles of the pages that start sections (agent.search.page_table: no chunk read);
        `last`: per page, the index of its title that starts last (-1: none or not known)."""
        out = cls.__new__(cls)
        out._index(pages, titles, last)
        return out

    def _index(self, pages: int, titles: Mapping[int, Sequence[str]], last: np.ndarray) -> None:
        postings: dict[str, list[int]] = {}
        self.pages = pages
        self.titles: dict[int, list[frozenset[str]]] = {}  # section numbers ("3.3.1") left out
        for p in sorted(titles):
            own = [tokenize(title) for title in titles[p]]
            self.titles[p] = [frozenset(t for t in terms if not t.replace(".", "").isdigit()) for terms in own]
            for term in {t for terms in own for t in terms}:
                postings.setdefault(term, []).append(p)
        self.postings = {t: np.array(pages, dtype=np.int64) for t, pages in postings.items()}
        last_titles = {p: self.titles[p][int(last[p])] for p in np.flatnonzero(last >= 0).tolist()
                       if int(last[p]) < len(self.titles.get(p, ()))}
        last_postings: dict[str, list[int]] = {}
        for p, terms in last_titles.items():
            for term in terms:
                last_postings.setdefault(term, []).append(p)
        #: term -> the pages whose last-starting section's title holds it
        self.last = {t: np.array(pages, dtype=np.int64) for t, pages in last_postings.items()}

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

    def last_share(self, terms: Sequence[str], bm25: BM25Index) -> np.ndarray:
        """Per page: the share of the query's idf found in the title of the section that starts last on it
        (the one that may go on over the next page)."""
        query = _idf(terms, bm25)
        total = sum(query.values())
        out = np.zeros(self.pages, dtype=np.float64)
        for t, v in query.items():  # a page's terms in query order, as a sum over its title would add them
            if t in self.last:
                out[self.last[t]] += v
        return out / total if total else out

    def _titled(self, query: Mapping[str, float]) -> set[int]:
        """The pages with a title holding one of the query's terms."""
        return {int(p) for t in query if t in self.postings for p in self.postings[t]}

    def match(self, terms: Sequence[str], bm25: BM25Index) -> np.ndarray:
        """Per page: the best idf-weighted F1 between the query's terms and one of its titles: 1 when a
        title names just what the question asks about ("What is counter mode?" and "Counter mode"),
        less when it also names other things or covers a part of the question."""
        query = _idf(terms, bm25)
        total = sum(query.values())
        out = np.zeros(self.pages, dtype=np.float64)
        for p in self._titled(query):
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
