"""Keyword search: the tokenizer, per-chunk and per-page term counts, and Okapi BM25.

Tokenisation (`tokenize`): NFKC + lower case; English words minus stop words,
Snowball-stemmed; names marked by a symbol kept whole (`c#`, `.net`, `i/o`) next to their word;
Chinese runs (line breaks inside them removed) as character unigrams
and bigrams, so a Chinese word is found inside unsegmented text with no dictionary;
operator tokens such as `++` or `->` from code.

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
import threading
import unicodedata
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from langchain_core.documents import Document

from agent._cjk import IDEOGRAPHS
from agent.search.postings import Part, Postings, csr_take, other_rows

logger = logging.getLogger(__name__)

#: Bump when `tokenize` changes what it returns: persisted counts of an older tokenizer are
#: then ignored (and rebuilt) instead of silently mismatching the query's terms.
TOKENIZER_VERSION = 3
BM25_K1 = 1.2
BM25_B = 0.75
_TF_MAX = np.iinfo(np.uint16).max

_CJK = IDEOGRAPHS
_CJK_RUN = re.compile(f"[{_CJK}]+")
_CJK_GAP = re.compile(f"(?<=[{_CJK}])\\s+(?=[{_CJK}])")
_OPERATOR = r"\+\+|--|->|::|<=|>=|!=|==|\*\*|\+=|-=|&&|\|\|"
#: Names a symbol tells apart from a word: `c#`, `f#`, `.net`, `i/o` (each alone, at a word boundary).
_MARKED = r"(?<![a-z0-9_./])(?:[a-z]#|\.[a-z]+|[a-z]/[a-z])(?![a-z0-9_#/])"
#: CJK runs; code-like words with a ++/-- suffix (`i++`); marked names; words and numbers; operators.
#: The code-word alternative is anchored at a word start so long runs are not rescanned (O(n^2)).
_TOKEN = re.compile(f"[{_CJK}]+|(?<![a-z0-9_])[a-z_][a-z0-9_]*(?:\\+\\+|--)(?![-+])|{_MARKED}"
                    f"|[a-z0-9]+(?:\\.[0-9]+)*|{_OPERATOR}")

EN_STOPWORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before
being below between both but by can can't cannot could couldn't did didn't do does doesn't
doing don't down during each few for from further had hadn't has hasn't have haven't having he
her here hers herself him himself his how i if in into is isn't it it's its itself let's me
more most my myself no nor not of off on once only or other ought our ours ourselves out over
own same she should shouldn't so some such than that the their theirs them themselves then there
these they this those through to too under until up very was wasn't we were weren't what when
where which while who whom why will with won't would wouldn't you your yours yourself
yourselves s t d ll m o re ve y also get got want wants need needs make made use used using
way ways like just instead thing things something anything
""".split())


@lru_cache(maxsize=1)
def _snowball() -> Any:
    """The snowballstemmer module, or None (warned once)."""
    try:
        import snowballstemmer
    except ImportError:  # requirements.txt pins it; without it, search still works, unstemmed
        logger.warning("snowballstemmer is not installed: English keyword search runs without stemming")
        return None
    return snowballstemmer


_THREAD = threading.local()


def _stem(word: str) -> str:
    """The word's Snowball stem, by this thread's own stemmer: a stemmer keeps the word it works on, and one shared
    by an ingest job and another thread raised "string index out of range" and returned wrong stems."""
    stem = getattr(_THREAD, "stem", None)
    if stem is None:
        module = _snowball()
        stem = _THREAD.stem = module.stemmer("english").stemWord if module is not None else str
    return stem(word)


def normalise(text: str) -> str:
    """NFKC (full-width forms to ASCII), lower case, no line breaks inside Chinese text."""
    return _CJK_GAP.sub("", unicodedata.normalize("NFKC", text).lower())


def file_title(file: str) -> str:
    """A readable title from a file name: `asymptote-manual_zh.pdf` -> `asymptote manual zh`."""
    stem = PurePath(file).stem
    return re.sub(r"[_\-.]+", " ", stem).strip()


def tokenize(text: str) -> list[str]:
    """Index terms of a text (see the module docstring)."""
    out: list[str] = []
    for tok in _TOKEN.findall(normalise(text)):
        terms = _WORD_TERMS.get(tok)
        if terms is None:
            if _CJK_RUN.fullmatch(tok):  # not cached: runs of Chinese text rarely repeat
                out.extend(tok)
                out.extend(tok[i:i + 2] for i in range(len(tok) - 1))
                continue
            terms = _word_terms(tok)
        out.extend(terms)
    return out


#: Chinese question words and particles, cut out of a question before it is tokenised: the counterpart
#: of EN_STOPWORDS ("what", "how", "is") for unsegmented Chinese, where they would also join their
#: neighbours into bigrams that are not words (新手怎样入门 -> 手怎, 样入).
ZH_QUESTION_WORDS = ("为什么", "有没有", "是不是", "什么", "怎么", "怎样", "如何", "为何", "是否", "能否", "哪些",
                     "哪里", "哪个", "请问", "吗", "呢", "吧", "啊")
_ZH_QUESTION = re.compile("|".join(sorted(ZH_QUESTION_WORDS, key=len, reverse=True)))


def query_terms(query: str) -> list[str]:
    """Index terms of a question: `tokenize` after cutting out Chinese question words (a comma, not a
    space, takes their place: spaces between Chinese characters are removed by `normalise`)."""
    return tokenize(_ZH_QUESTION.sub(",", normalise(query)))


def shares_terms(query: str, texts: Iterable[str]) -> bool:
    """Whether any index term of `query` occurs in `texts`: a search whose excerpts share no
    term with the question found them by vector similarity alone, which is weak evidence.
    Across scripts (a Chinese question over English excerpts) no word can match, so the
    question is given the benefit of the doubt."""
    texts = list(texts)
    wanted = set(tokenize(query))
    if any(wanted.intersection(tokenize(text)) for text in texts):
        return True
    return not _scripts(query) & _scripts("".join(texts))


def _scripts(text: str) -> set[str]:
    """Which of the two term families (CJK ideographs, Latin-script words) `text` holds."""
    return {name for name, pattern in _SCRIPT_PATTERNS.items() if pattern.search(text)}


_SCRIPT_PATTERNS = {"cjk": _CJK_RUN, "latin": re.compile(r"[A-Za-z\u00c0-\u024f]")}


def _word_terms(tok: str) -> tuple[str, ...]:
    """The terms of one non-CJK token, memoised: tokenising is the slow part of indexing,
    and the same few thousand words make up most of any text."""
    if tok.endswith(("++", "--")) and len(tok) > 2:  # i++: the whole token and the operator
        terms: tuple[str, ...] = (tok, tok[-2:])
    elif _MARKED_RE.fullmatch(tok):  # c#, .net: whole, and the word
        word = tok.strip(".#")
        terms = (tok, word) if len(word) > 1 and "/" not in word else (tok,)
    elif tok in EN_STOPWORDS:
        terms = ()
    elif tok[0].isalpha():
        terms = (_stem(tok),)
    else:
        terms = (tok,)
    if len(_WORD_TERMS) < _WORD_CACHE_MAX:
        _WORD_TERMS[tok] = terms
    return terms


_WORD_TERMS: dict[str, tuple[str, ...]] = {}
_MARKED_RE = re.compile(_MARKED)
_WORD_CACHE_MAX = 200_000  # entries (~40 MB at most)


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
            rows, tfs = self.term_rows(t)
            if len(rows):
                scores[rows] += np.float32(self.idf[t]) * tfs * (self.k1 + 1) / (tfs + self.norm[rows])
        return scores
