"""Keyword search: per-chunk and per-page term counts, and Okapi BM25 (the terms: agent.search.tokens).

Tokenising is the slow part of keyword search (~0.15 ms a chunk: 100k chunks took ~45 s
and 1M chunks ~470 s before the first answer). So the term counts of every chunk and
page (`Lexicon`) are computed when a document is added, persisted next to the vector
index (`Lexicon.save/load`, plain numpy arrays, no pickle), and carried over from one
saved generation to the next for chunks that did not change (`Lexicon.build(...,
previous=...)`). Loading a collection then only turns those counts into BM25 postings
(`BM25Index.from_counts`), which is numpy work.
"""

from __future__ import annotations

import io
import logging
import re
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from langchain_core.documents import Document

from agent.search.postings import Part, Postings, csr_take, other_rows
from agent.search.tokens import TOKENIZER_VERSION, tokenize

logger = logging.getLogger(__name__)

BM25_K1 = 1.2
BM25_B = 0.75
_TF_MAX = np.iinfo(np.uint16).max


# ---------------------------------------------------------------- pages of a chunk list

def page_key(doc: Document) -> tuple[str, int]:
    meta = doc.metadata
    return str(meta.get("file", "")), int(meta.get("page", 0) or 0)


def page_groups(documents: Sequence[Document]) -> tuple[list[tuple[str, int]], list[list[int]]]:
    """Pages in order of first appearance, and the positions of each page's chunks."""
    pos: dict[tuple[str, int], int] = {}
    pages: list[tuple[str, int]] = []
    members: list[list[int]] = []
    for i, doc in enumerate(documents):
        key = page_key(doc)
        if key not in pos:
            pos[key] = len(pages)
            pages.append(key)
            members.append([])
        members[pos[key]].append(i)
    return pages, members


def page_text(chunks: Sequence[Document]) -> str:
    """A page's text rebuilt from its chunks (overlaps removed when `start` is known)."""
    if all("start" in c.metadata for c in chunks):
        parts, end = [], 0
        for c in sorted(chunks, key=lambda c: int(c.metadata["start"])):
            start, text = int(c.metadata["start"]), c.page_content
            if start + len(text) <= end:
                continue
            parts.append(text[max(0, end - start):] if start < end else text)
            end = start + len(text)
        return "\n".join(parts)
    return "\n".join(c.page_content for c in chunks)


#: a table-of-contents line once cleaned: its leader dots shortened to "..." (agent.ingest._text), then a page number
_CONTENTS_LINE = re.compile(r"\.\.\.[ \t]*[0-9ivxlc]+[ \t]*$", re.MULTILINE)


def contents_share(documents: Sequence[Document], members: Sequence[Sequence[int]]) -> np.ndarray:
    """Per page: the share of its non-blank lines that are table-of-contents entries. A contents page
    lists every heading of a chapter, so it matches most queries better than the page it points to."""
    out = np.zeros(len(members), dtype=np.float64)
    for p, rows in enumerate(members):
        text = page_text([documents[i] for i in rows])
        entries = len(_CONTENTS_LINE.findall(text))
        if entries:
            out[p] = entries / max(1, sum(1 for line in text.splitlines() if line.strip()))
    return out


# ---------------------------------------------------------------- term counts

@dataclass
class TermCounts:
    """Term counts of a list of texts (rows), in CSR form over a shared vocabulary:
    row i's terms are `term[ptr[i]:ptr[i+1]]` with counts `tf[...]` (each term once a row)."""

    ptr: np.ndarray   # int64, rows + 1
    term: np.ndarray  # int32
    tf: np.ndarray    # uint16 (a count above 65535 in one chunk is capped)

    @property
    def rows(self) -> int:
        return len(self.ptr) - 1

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.term[self.ptr[i]:self.ptr[i + 1]], self.tf[self.ptr[i]:self.ptr[i + 1]]

    def take(self, rows: np.ndarray) -> TermCounts:
        """Only these rows (ascending positions), in their order."""
        return TermCounts(*csr_take(self.ptr, (self.term, self.tf), rows))

    def concat(self, other: TermCounts) -> TermCounts:
        """These rows followed by `other`'s (same vocabulary)."""
        return TermCounts(np.concatenate([self.ptr[:-1], other.ptr + self.ptr[-1]]),
                          np.concatenate([self.term, other.term]), np.concatenate([self.tf, other.tf]))

    @classmethod
    def assemble(cls, rows: Sequence[tuple[np.ndarray, np.ndarray]]) -> TermCounts:
        lengths = np.fromiter((len(t) for t, _ in rows), dtype=np.int64, count=len(rows))
        ptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=ptr[1:])
        term = np.concatenate([t for t, _ in rows]) if rows else np.zeros(0, np.int32)
        tf = np.concatenate([f for _, f in rows]) if rows else np.zeros(0, np.uint16)
        return cls(ptr, term.astype(np.int32, copy=False), tf.astype(np.uint16, copy=False))


class Vocabulary:
    """Term <-> id, append-only (ids stay valid for counts made earlier)."""

    def __init__(self, terms: Sequence[str] = ()) -> None:
        self.terms: list[str] = list(terms)
        self.ids: dict[str, int] = {t: i for i, t in enumerate(self.terms)}

    def extended(self, terms: Sequence[str] = ()) -> Vocabulary:
        """A copy followed by `terms` (copying the dict is ~10x faster than rebuilding it)."""
        out = Vocabulary()
        out.terms, out.ids = [*self.terms, *terms], self.ids.copy()
        out.ids.update((t, i) for i, t in enumerate(terms, len(self.terms)))
        return out

    def __len__(self) -> int:
        return len(self.terms)

    def count(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(term ids, counts) of one text, adding its new terms."""
        counts = Counter(tokenize(text))
        ids = np.fromiter((self.id_for(t) for t in counts), dtype=np.int32, count=len(counts))
        tfs = np.fromiter((min(c, _TF_MAX) for c in counts.values()), dtype=np.uint16, count=len(counts))
        return ids, tfs

    def id_for(self, term: str) -> int:
        """The term's id, added when new."""
        found = self.ids.get(term)
        if found is None:
            found = self.ids[term] = len(self.terms)
            self.terms.append(term)
        return found

    def lookup(self, terms: Sequence[str]) -> list[int]:
        """Ids of the known terms among `terms` (each once)."""
        return [self.ids[t] for t in dict.fromkeys(terms) if t in self.ids]


@dataclass
class Lexicon:
    """Term counts of a collection's chunks (in `documents` order) and pages (in
    `page_groups` order): what BM25 needs, computed once per chunk and persisted."""

    vocabulary: Vocabulary
    chunks: TermCounts
    pages: TermCounts
    #: the page row of each chunk (None in counts saved before it was kept): what lets
    #: `without` drop a document's rows without reading any chunk
    chunk_page: np.ndarray | None = None

    @classmethod
    def build(cls, documents: Sequence[Document], previous: Lexicon | None = None,
              previous_documents: Sequence[Document] = ()) -> Lexicon:
        """Counts for `documents`, reusing `previous` (made for `previous_documents`) for
        every chunk with the same id and every page with the same chunks: adding a document
        tokenises only that document."""
        if previous is None or previous.chunks.rows != len(previous_documents):
            return cls._counted(documents, Vocabulary())
        n = len(previous_documents)
        if _appends_new_files(documents, previous_documents):  # the common case: one more document
            return previous.appended(documents[n:])
        # a copy: `previous` may be serving searches in another thread while this one grows
        return cls._counted(documents, previous.vocabulary.extended(), previous, previous_documents)

    def appended(self, added: Sequence[Document]) -> Lexicon:
        """These counts followed by those of `added`, whose pages must all be new (files these
        counts do not have): only `added` is tokenised."""
        return self.concat(self.counts_of(added, self.vocabulary))

    @classmethod
    def counts_of(cls, added: Sequence[Document], vocabulary: Vocabulary) -> Lexicon:
        """The counts of `added` alone, over a copy of `vocabulary` grown by their new terms."""
        return cls._counted(added, vocabulary.extended())  # a copy, as in `build`

    def concat(self, tail: Lexicon) -> Lexicon:
        """These counts followed by `tail`'s, whose vocabulary extends this one."""
        chunk_page = None if self.chunk_page is None or tail.chunk_page is None else \
            np.concatenate([self.chunk_page, tail.chunk_page + self.pages.rows])
        return Lexicon(tail.vocabulary, self.chunks.concat(tail.chunks), self.pages.concat(tail.pages), chunk_page)

    def without(self, dropped: np.ndarray) -> Lexicon | None:
        """These counts minus the chunks at `dropped` (ascending positions) and their pages, when
        those pages hold no other chunk; None when that is not known (then recount)."""
        if self.chunk_page is None or len(self.chunk_page) != self.chunks.rows:
            return None
        keep = other_rows(self.chunks.rows, dropped)
        gone = np.zeros(self.pages.rows, dtype=bool)
        gone[self.chunk_page[dropped]] = True
        if gone[self.chunk_page[keep]].any():  # a page keeps some of its chunks: its text changes
            return None
        new_row = np.cumsum(~gone) - 1
        return Lexicon(self.vocabulary, self.chunks.take(keep), self.pages.take(np.flatnonzero(~gone)),
                       new_row[self.chunk_page[keep]])

    @classmethod
    def _counted(cls, documents: Sequence[Document], vocab: Vocabulary, previous: Lexicon | None = None,
                 previous_documents: Sequence[Document] = ()) -> Lexicon:
        documents, previous_documents = list(documents), list(previous_documents)  # a table: parse each chunk once
        old_chunk: dict[Hashable, int] = {}
        old_page: dict[tuple[Hashable, ...], int] = {}
        if previous is not None:
            old_chunk = {_chunk_key(d): i for i, d in enumerate(previous_documents)}
            _, old_members = page_groups(previous_documents)
            old_page = {tuple(_chunk_key(previous_documents[i]) for i in m): p for p, m in enumerate(old_members)}
        chunk_rows = []
        for doc in documents:
            i = old_chunk.get(_chunk_key(doc))
            chunk_rows.append(previous.chunks.row(i) if previous is not None and i is not None
                              else vocab.count(doc.page_content))
        page_rows = []
        members_of = page_groups(documents)[1]
        chunk_page = np.zeros(len(chunk_rows), dtype=np.int64)
        for p, members in enumerate(members_of):
            chunk_page[members] = p
        for members in members_of:
            p = old_page.get(tuple(_chunk_key(documents[i]) for i in members))
            page_rows.append(previous.pages.row(p) if previous is not None and p is not None
                             else vocab.count(page_text([documents[i] for i in members])))
        return cls(vocab, TermCounts.assemble(chunk_rows), TermCounts.assemble(page_rows), chunk_page)

    def bm25(self, postings: tuple[Postings, Postings] | None = None) -> tuple[BM25Index, BM25Index]:
        """The chunk and page BM25 indexes of these counts (over `postings` of them made already, if given)."""
        chunks, pages = postings or (None, None)
        return BM25Index.from_counts(self.chunks, self.vocabulary, chunks), \
            BM25Index.from_counts(self.pages, self.vocabulary, pages)

    def fits(self, documents: Sequence[Document], pages: int | None = None) -> bool:
        """Made for these documents (by count; `pages`: their page count, if known, else the saved
        page of each chunk is trusted: grouping the chunks by page makes a `Document` of each)."""
        if self.chunks.rows != len(documents):
            return False
        if pages is None and self.chunk_page is not None:
            return True
        return self.pages.rows == (len(page_groups(documents)[0]) if pages is None else pages)

    def to_bytes(self, vocab_from: int = 0) -> bytes:
        """An .npz archive (numpy's own format; loaded with allow_pickle=False). `vocab_from`: the
        terms before it belong to the counts saved before these (a collection's segments)."""
        vocab = "\n".join(self.vocabulary.terms[vocab_from:]).encode("utf-8")  # tokens never contain "\n"
        buf = io.BytesIO()
        np.savez(buf, version=np.array([TOKENIZER_VERSION]), vocab=np.frombuffer(vocab, dtype=np.uint8),
                 vocab_from=np.array([vocab_from]),
                 chunk_ptr=self.chunks.ptr, chunk_term=self.chunks.term, chunk_tf=self.chunks.tf,
                 page_ptr=self.pages.ptr, page_term=self.pages.term, page_tf=self.pages.tf,
                 **({} if self.chunk_page is None else {"chunk_page": self.chunk_page}))
        return buf.getvalue()

    @classmethod
    def load(cls, path: Path | io.BytesIO, before: Vocabulary | None = None) -> Lexicon | None:
        """The persisted counts (a file, or `to_bytes` output), over `before` grown by their own terms
        when saved as the continuation of counts over it (a collection's segments), or None when absent,
        damaged, from another tokenizer version or not following `before` (the caller then recounts:
        keyword search is never lost, only slower)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                vocab_from = int(data["vocab_from"][0]) if "vocab_from" in data.files else 0
                if int(data["version"][0]) != TOKENIZER_VERSION or \
                        vocab_from != (0 if before is None else len(before)):
                    return None
                text = data["vocab"].tobytes().decode("utf-8")
                vocab = (before or Vocabulary()).extended(text.split("\n") if text else [])
                chunks = TermCounts(data["chunk_ptr"], data["chunk_term"], data["chunk_tf"])
                pages = TermCounts(data["page_ptr"], data["page_term"], data["page_tf"])
                chunk_page = data["chunk_page"] if "chunk_page" in data.files else None
        except Exception as exc:  # noqa: BLE001 - zip, zlib, numpy and decode errors alike: recount
            if not isinstance(path, Path) or path.exists():
                logger.warning("ignoring unreadable keyword counts %s (%s); recounting", path, exc)
            return None
        for counts in (chunks, pages):
            if (counts.ptr.ndim != 1 or counts.rows < 0 or counts.ptr[-1] != len(counts.term)
                    or len(counts.term) != len(counts.tf)
                    or (len(counts.term) and (counts.term.min() < 0 or counts.term.max() >= len(vocab)))):
                logger.warning("ignoring inconsistent keyword counts %s; recounting", path)
                return None
        if chunk_page is not None and (chunk_page.shape != (chunks.rows,) or
                                       (len(chunk_page) and not 0 <= chunk_page.min() <= chunk_page.max() < pages.rows)):
            chunk_page = None
        return cls(vocab, chunks, pages, chunk_page)


def _appends_new_files(documents: Sequence[Document], previous: Sequence[Document]) -> bool:
    """`documents` is `previous` (the same objects) plus chunks of files `previous` does not
    have, so no earlier page changes (~0.3 s at 1M chunks, against ~15 s for the general path)."""
    n = len(previous)
    if len(documents) < n or any(a is not b for a, b in zip(documents, previous)):
        return False
    new_files = {page_key(d)[0] for d in documents[n:]}
    return not any(str(d.metadata.get("file", "")) in new_files for d in previous)


def _chunk_key(doc: Document) -> Hashable:
    """Counts are reused only for the very same chunk: same id, page and text."""
    return doc.metadata.get("chunk_id") or doc.id, page_key(doc), doc.page_content


# ---------------------------------------------------------------- BM25

class BM25Index:
    """Okapi BM25 over term counts: term-major postings in numpy arrays."""

    def __init__(self, texts: Sequence[str], *, k1: float = BM25_K1, b: float = BM25_B) -> None:
        vocab = Vocabulary()
        counts = TermCounts.assemble([vocab.count(t) for t in texts])
        self._set([Part(Postings.of(counts.ptr, counts.term, counts.tf, len(vocab)))], vocab, k1, b)

    @classmethod
    def from_counts(cls, counts: TermCounts, vocabulary: Vocabulary, postings: Postings | None = None, *,
                    k1: float = BM25_K1, b: float = BM25_B) -> BM25Index:
        """`postings`: of these counts, made already (saved with a segment: agent.search.postings)."""
        return cls.from_parts([Part(postings or Postings.of(counts.ptr, counts.term, counts.tf, len(vocabulary)))],
                              vocabulary, k1=k1, b=b)

    @classmethod
    def from_parts(cls, parts: Sequence[Part], vocabulary: Vocabulary, *, k1: float = BM25_K1,
                   b: float = BM25_B) -> BM25Index:
        """Over several segments' postings, each where it lies (agent.search.postings.Part)."""
        index = cls.__new__(cls)
        index._set(parts, vocabulary, k1, b)
        return index

    def _set(self, parts: Sequence[Part], vocabulary: Vocabulary, k1: float, b: float) -> None:
        self.k1, self.b, self.vocabulary, self.parts = k1, b, vocabulary, tuple(parts)
        lengths = np.concatenate([p.live_lengths() for p in parts]) if parts else np.zeros(0, np.float32)
        self.n, self.lengths = len(lengths), lengths  # each text's number of index terms
        avg = float(lengths.mean()) if self.n and lengths.mean() > 0 else 1.0
        self.norm = (k1 * (1 - b + b * lengths / avg)).astype(np.float32)
        df = np.sum([p.live_df(len(vocabulary)) for p in parts], axis=0) if parts else np.zeros(len(vocabulary))
        self.idf = np.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def term_rows(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """The positions of the texts holding term id `t`, and its counts there (every part's)."""
        found = [part.term_rows(t) for part in self.parts]
        if len(found) == 1:
            return found[0]
        return (np.concatenate([r for r, _ in found]) if found else np.zeros(0, np.int64),
                np.concatenate([tf for _, tf in found]) if found else np.zeros(0, np.uint16))

    def scores(self, query: str | Sequence[str]) -> np.ndarray:
        """BM25 score of every text (0 where no term matches)."""
        terms = tokenize(query) if isinstance(query, str) else list(query)
        scores = np.zeros(self.n, dtype=np.float32)
        for t in self.vocabulary.lookup(terms):
            rows, term_scores = self._term_scores(t)
            scores[rows] += term_scores
        return scores

    def weighted_scores(self, terms: Mapping[str, float]) -> np.ndarray:
        """Sum over `terms` of weight x the term's BM25 score of each text (float64; one pass over the postings of
        the known terms, as a translated question has hundreds of terms and few of them are in the index)."""
        out = np.zeros(self.n, dtype=np.float64)
        ids = self.vocabulary.ids
        for term, weight in terms.items():
            if term in ids:
                rows, term_scores = self._term_scores(ids[term])
                out[rows] += weight * term_scores
        return out

    def _term_scores(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """The texts holding term id `t` and its BM25 score in each (float32)."""
        rows, tfs = self.term_rows(t)
        return rows, np.float32(self.idf[t]) * tfs * (self.k1 + 1) / (tfs + self.norm[rows])
