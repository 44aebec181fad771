"""Synthetic files for bench.scale, and their keyword counts made without tokenising every chunk.

Texts: Zipf-distributed words of a fixed 30,000-word list (about 400-800 characters a chunk), one
chunk in five Chinese (200-400 ideographs drawn Pareto-wise from 3,000, ended by "。"); files of
300 pages x 3 chunks, random unit vectors of dimension 512. Every text is made with numpy from
a seed (the old generator, `random.choices` with weights per chunk, took most of an 18-minute 1M
build before any tokenising).

`tokenize` turns an English chunk into the terms of its words (each word tokenised once) and a
Chinese run into its characters and their bigrams, and "。" ends a run: so the counts of every
chunk, and of every page (its chunks joined: `lexical.page_text`), follow from the drawn word and
character ids by counting integers (`file_counts`). `check_counts` compares them with `tokenize`
on a sample of each build, and tests/test_scale_data.py with `Lexicon.build` / `PageTable.build`.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from typing import Any

import numpy as np
from langchain_core.documents import Document

DIM = 512
PAGES_PER_FILE = 300
CHUNKS_PER_PAGE = 3
WORDS = 30_000
CJK_CHARS = 3_000
CJK_FIRST = 0x4E00
CJK_SHARE = 0.2
END = "。"  # ends a Chinese chunk: no bigram joins two chunks of a page
CHECKED_FILES = 50  # every this many files, a build checks the counts of its first CHECKED chunks and pages
CHECKED = 10


@dataclass
class FileDraw:
    """One synthetic file: chunk texts and, per chunk, the integer term keys its tokens map to."""

    name: str
    doc_id: str
    texts: list[str]
    token_keys: np.ndarray  # int64, every token of every chunk, chunk by chunk
    token_chunk: np.ndarray  # int64, the chunk (0-based, in this file) of each token
    vectors: np.ndarray  # float32 unit rows

    @property
    def chunks(self) -> int:
        return len(self.texts)

    def chunk_ids(self) -> list[str]:
        return [f"{self.doc_id}:{i // CHUNKS_PER_PAGE + 1}:{i % CHUNKS_PER_PAGE}" for i in range(self.chunks)]

    def metadata(self) -> list[dict]:
        """What our chunker writes; `start` leaves no overlap, so a page's text is its chunks joined."""
        out, start = [], 0
        for i, (cid, text) in enumerate(zip(self.chunk_ids(), self.texts)):
            start = 0 if i % CHUNKS_PER_PAGE == 0 else start
            out.append({"file": self.name, "page": i // CHUNKS_PER_PAGE + 1, "doc_id": self.doc_id, "chunk_id": cid,
                        "ocr": False, "start": start})
            start += len(text) + 1
        return out


class Synthetic:
    """Draws files deterministically from a seed; term keys are shared by all its files."""

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        lengths = rng.integers(3, 11, WORDS)
        letters = np.array(list(string.ascii_lowercase))[rng.integers(0, 26, int(lengths.sum()))]
        cut = np.r_[0, np.cumsum(lengths)]
        self.words = ["".join(letters[a:b]) for a, b in pairwise(cut)]
        weights = 1 / np.arange(1, WORDS + 1)
        self.cdf = np.cumsum(weights / weights.sum())

    @cached_property
    def stems(self) -> tuple[np.ndarray, list[str]]:
        """Per word, its term key (-1: a stop word), and the English terms by key."""
        from agent.search.tokens import tokenize

        terms: dict[str, int] = {}
        key = np.full(WORDS, -1, np.int64)
        for w, word in enumerate(self.words):
            found = tokenize(word)
            if len(found) > 1:
                raise ValueError(f"word {word!r} is more than one term: {found}")
            if found:
                key[w] = terms.setdefault(found[0], len(terms))
        return key, list(terms)

    @property
    def key_space(self) -> int:
        return len(self.stems[1]) + CJK_CHARS + CJK_CHARS * CJK_CHARS

    def term(self, key: int) -> str:
        """The term a key stands for: an English term, a Chinese character, or a character bigram."""
        english = self.stems[1]
        if key < len(english):
            return english[key]
        k = key - len(english)
        if k < CJK_CHARS:
            return chr(CJK_FIRST + k)
        a, b = divmod(k - CJK_CHARS, CJK_CHARS)
        return chr(CJK_FIRST + a) + chr(CJK_FIRST + b)

    def file(self, f: int, chunks: int, name: str | None = None, doc_id: str | None = None) -> FileDraw:
        """File number `f` (its own random stream) of `chunks` chunks."""
        rng = np.random.default_rng([f, 19])
        word_key, english = self.stems
        zh = rng.random(chunks) < CJK_SHARE
        size = rng.integers(400, 801, chunks)
        counts = np.where(zh, size // 2, size // 7)
        texts: list[str] = []
        keys: list[np.ndarray] = []
        for c in range(chunks):
            if zh[c]:
                chars = (np.floor(np.minimum(rng.pareto(1.2, counts[c]) + 1, 1e15)) % CJK_CHARS).astype(np.int64)
                texts.append((chars + CJK_FIRST).astype("<u4").tobytes().decode("utf-32-le") + END)
                base = len(english)
                keys.append(np.r_[chars + base, base + CJK_CHARS + chars[:-1] * CJK_CHARS + chars[1:]])
            else:
                ids = np.searchsorted(self.cdf, rng.random(counts[c]), side="right").clip(0, WORDS - 1)
                texts.append(" ".join(self.words[i] for i in ids.tolist()))
                found = word_key[ids]
                keys.append(found[found >= 0])
        vectors = rng.standard_normal((chunks, DIM), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        lengths = np.array([len(k) for k in keys], np.int64)
        return FileDraw(name or f"file_{f:07d}.pdf", doc_id or f"{f:064x}", texts,
                        np.concatenate(keys) if keys else np.zeros(0, np.int64),
                        np.repeat(np.arange(chunks, dtype=np.int64), lengths), vectors)


def file_counts(draw: FileDraw, space: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    """(row lengths, term keys, counts) of the file's chunks, then of its pages, counted as integers."""
    out = []
    for rows, n in ((draw.token_chunk, draw.chunks), (draw.token_chunk // CHUNKS_PER_PAGE,
                                                       -(-draw.chunks // CHUNKS_PER_PAGE))):
        combined, tf = np.unique(rows * space + draw.token_keys, return_counts=True)
        out.append((np.bincount(combined // space, minlength=n), combined % space, tf))
    return tuple(out)


def check_counts(synthetic: Synthetic, texts: Sequence[str], rows: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
    """Raise if `tokenize` of any text does not give its counted (keys, counts)."""
    from agent.search.tokens import tokenize

    for text, (keys, tf) in zip(texts, rows):
        counted = {synthetic.term(int(k)): int(n) for k, n in zip(keys, tf)}
        if counted != Counter(tokenize(text)):
            raise AssertionError(f"synthetic counts differ from tokenize for {text[:60]!r}")


def entry(draw: FileDraw) -> tuple[Any, list[Document], np.ndarray]:
    """(DocumentInfo, chunks, vectors) of a drawn file, as ingestion hands them to the store."""
    from agent.search.store import DocumentInfo

    chunks = [Document(page_content=t, metadata=m, id=m["chunk_id"]) for t, m in zip(draw.texts, draw.metadata())]
    info = DocumentInfo(doc_id=draw.doc_id, file=draw.name, pages=-(-draw.chunks // CHUNKS_PER_PAGE),
                        chunks=draw.chunks, size=sum(len(t) for t in draw.texts), added="2026-01-01T00:00:00")
    return info, chunks, draw.vectors


class Counted:
    """Term counts of drawn files, joined into a `Lexicon` and `PageTable` over one vocabulary."""

    def __init__(self, synthetic: Synthetic) -> None:
        self.synthetic, self.space = synthetic, synthetic.key_space
        self.used = np.zeros(self.space, bool)
        self.parts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {"chunks": [], "pages": []}
        self.files: list[str] = []
        self.file_pages: list[int] = []
        self.checked = 0

    def add(self, draw: FileDraw, check: bool) -> None:
        counts = file_counts(draw, self.space)
        for kind, (lengths, keys, tf) in zip(self.parts, counts):
            self.used[keys] = True
            self.parts[kind].append((lengths, keys.astype(np.int32), tf.astype(np.uint16)))
        self.files.append(draw.name)
        self.file_pages.append(len(counts[1][0]))
        if check:  # the first chunks and pages against tokenize itself
            from agent.search.lexical import page_text

            docs = entry(draw)[1][:CHECKED * CHUNKS_PER_PAGE]
            pages = [page_text(docs[p * CHUNKS_PER_PAGE:(p + 1) * CHUNKS_PER_PAGE]) for p in range(CHECKED)]
            check_counts(self.synthetic, draw.texts[:CHECKED], _rows(*counts[0], CHECKED))
            check_counts(self.synthetic, pages, _rows(*counts[1], CHECKED))
            self.checked += min(CHECKED, draw.chunks) + min(CHECKED, len(counts[1][0]))

    def result(self) -> tuple[Any, Any]:
        from agent.search.lexical import Lexicon, TermCounts, Vocabulary
        from agent.search.page_table import PageTable

        ids = (np.cumsum(self.used) - 1).astype(np.int32)
        vocabulary = Vocabulary([self.synthetic.term(int(k)) for k in np.flatnonzero(self.used)])
        counts = {}
        for kind, parts in self.parts.items():
            ptr = np.zeros(sum(len(p[0]) for p in parts) + 1, np.int64)
            np.cumsum(np.concatenate([p[0] for p in parts]), out=ptr[1:])
            counts[kind] = TermCounts(ptr, ids[np.concatenate([p[1] for p in parts])],
                                      np.concatenate([p[2] for p in parts]))
        pages_of = np.array(self.file_pages, np.int64)
        first_page = np.r_[0, np.cumsum(pages_of)[:-1]]
        chunk_page = np.concatenate([first + np.arange(len(p[0])) // CHUNKS_PER_PAGE
                                     for first, p in zip(first_page.tolist(), self.parts["chunks"])])
        lexicon = Lexicon(vocabulary, counts["chunks"], counts["pages"], chunk_page)
        number = np.concatenate([np.arange(1, k + 1) for k in self.file_pages]).astype(np.int64)
        pages = PageTable(self.files, np.repeat(np.arange(len(self.files), dtype=np.int32), pages_of), number,
                          np.zeros(len(number)), np.zeros(0, np.int64), [])
        return lexicon, pages


def _rows(lengths: np.ndarray, keys: np.ndarray, tf: np.ndarray, first: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first rows of counts given as (row lengths, keys, counts)."""
    ptr = np.r_[0, np.cumsum(lengths)]
    return [(keys[a:b], tf[a:b]) for a, b in pairwise(ptr[:first + 1])]
