"""Search over one or more collections: vector, BM25 keyword, or both fused (hybrid).

Results are pages, not loose chunks: the UI cites pages and the model reads excerpts, so
five chunks of one page would waste four of the user's k slots. Every mode ranks pages
and returns the best chunk of each page (then, only if there are fewer pages than k,
further chunks of the same pages).

Signals, each computed per page (all from `.documents` and `.vectorstore`, nothing
extra stored):
- `vector`: the best inner-product similarity of the page's chunks to the query
  (the vector store's top `fetch_k` chunks; pages it did not return get its floor);
- `bm25` chunk: Okapi BM25 of the best chunk of the page;
- `bm25` page: Okapi BM25 of the whole page (its chunks joined). A question's words are
  often spread over a page rather than packed into one chunk; this is a second,
  coarser view of the same page;
- title: query words that occur in a document's file name (e.g. "gnuplot",
  "Asymptote") favour that document's pages, weighted by how rare the word is among
  the file names searched, like a title field in BM25F.

Fusion: each signal is z-normalised against its own top `_Z_TOP` pages for this
query (so a confident, peaked signal counts more than a flat one, unlike rank-only RRF)
and the z-scores are summed with weights (see `WEIGHTS`; chosen on the devset and
reported with neighbouring settings in the evaluation notes). `mode="bm25"` uses only
the lexical signals, `mode="vector"` only the vector one.

Tokenisation (`tokenize`): NFKC + lower case; English words minus stop words,
Snowball-stemmed; Chinese runs (line breaks inside them removed) as character unigrams
and bigrams, so a Chinese word is found inside unsegmented text with no dictionary;
operator tokens such as `++` or `->` from code. The BM25 indexes are built lazily and
cached per (collection, `.version`).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import unicodedata
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePath
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore
from pydantic import ConfigDict

logger = logging.getLogger(__name__)

Mode = Literal["hybrid", "vector", "bm25"]

#: Weights of the z-normalised page signals in hybrid mode (bm25 mode drops "vector").
WEIGHTS: dict[str, float] = {"bm25_chunk": 0.4, "bm25_page": 0.4, "vector": 0.2, "title": 0.5}
_Z_TOP = 100          # a signal is normalised by the mean/std of its best _Z_TOP pages
_MIN_FETCH = 100      # chunks asked of the vector store (at least)
BM25_K1 = 1.2
BM25_B = 0.75


@runtime_checkable
class SearchableCollection(Protocol):
    """What search needs from a stored collection (agent.store provides it)."""

    @property
    def vectorstore(self) -> VectorStore: ...

    @property
    def documents(self) -> Sequence[Document]: ...

    @property
    def version(self) -> int: ...


@dataclass
class Hit:
    document: Document
    score: float  # higher is better; comparable only within one result list


# ---------------------------------------------------------------- tokenizer

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
_CJK_RUN = re.compile(f"[{_CJK}]+")
_CJK_GAP = re.compile(f"(?<=[{_CJK}])\\s+(?=[{_CJK}])")
_OPERATOR = r"\+\+|--|->|::|<=|>=|!=|==|\*\*|\+=|-=|&&|\|\|"
#: CJK runs; code-like words with a ++/-- suffix (`i++`); words and numbers; operators
#: (the code-word alternative starts only at a word start: unanchored, a long run such as
#: 100k underscores was rescanned from every position, O(n^2), 53 s for one page; the
#: tokens of every devset page are unchanged)
_TOKEN = re.compile(f"[{_CJK}]+|(?<![a-z0-9_])[a-z_][a-z0-9_]*(?:\\+\\+|--)(?![-+])|[a-z0-9]+(?:\\.[0-9]+)*|{_OPERATOR}")

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
def _stemmer() -> Callable[[str], str]:
    try:
        import snowballstemmer
    except ImportError:  # requirements.txt pins it; without it, search still works, unstemmed
        logger.warning("snowballstemmer is not installed: English keyword search runs without stemming")
        return lambda word: word
    return snowballstemmer.stemmer("english").stemWord


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer()(word)


def normalise(text: str) -> str:
    """NFKC (full-width forms to ASCII), lower case, no line breaks inside Chinese text."""
    return _CJK_GAP.sub("", unicodedata.normalize("NFKC", text).lower())


def tokenize(text: str) -> list[str]:
    """Index terms of a text (see the module docstring)."""
    out: list[str] = []
    for tok in _TOKEN.findall(normalise(text)):
        if _CJK_RUN.fullmatch(tok):
            out.extend(tok)
            out.extend(tok[i:i + 2] for i in range(len(tok) - 1))
        elif tok.endswith(("++", "--")) and len(tok) > 2:  # i++: the whole token and the operator
            out.extend((tok, tok[-2:]))
        elif tok in EN_STOPWORDS:
            continue
        elif tok[0].isalpha():
            out.append(_stem(tok))
        else:
            out.append(tok)
    return out


# ---------------------------------------------------------------- BM25

class BM25Index:
    """Okapi BM25 over a fixed list of texts (numpy postings, no extra dependency)."""

    def __init__(self, texts: Sequence[str], *, k1: float = BM25_K1, b: float = BM25_B,
                 tokenizer: Callable[[str], list[str]] | None = None) -> None:
        tokenizer = tokenizer or tokenize
        self.k1, self.b, self.tokenizer = k1, b, tokenizer
        self.n = len(texts)
        postings: dict[str, tuple[list[int], list[int]]] = {}
        lengths = np.zeros(self.n, dtype=np.float32)
        for i, text in enumerate(texts):
            counts = Counter(tokenizer(text))
            lengths[i] = sum(counts.values())
            for term, tf in counts.items():
                ids, tfs = postings.setdefault(term, ([], []))
                ids.append(i)
                tfs.append(tf)
        avg = float(lengths.mean()) if self.n and lengths.mean() > 0 else 1.0
        self.norm = (k1 * (1 - b + b * lengths / avg)).astype(np.float32)
        self.postings = {t: (np.asarray(ids, dtype=np.int32), np.asarray(tfs, dtype=np.float32))
                         for t, (ids, tfs) in postings.items()}
        self.idf = {t: math.log(1 + (self.n - len(ids) + 0.5) / (len(ids) + 0.5))
                    for t, (ids, _) in self.postings.items()}

    def scores(self, query: str | Sequence[str]) -> np.ndarray:
        """BM25 score of every text (0 where no term matches)."""
        terms = self.tokenizer(query) if isinstance(query, str) else list(query)
        scores = np.zeros(self.n, dtype=np.float32)
        for term in set(terms):
            hit = self.postings.get(term)
            if hit is None:
                continue
            ids, tfs = hit
            scores[ids] += self.idf[term] * tfs * (self.k1 + 1) / (tfs + self.norm[ids])
        return scores


# ---------------------------------------------------------------- per-collection index (cached)

def _page_key(doc: Document) -> tuple[str, int]:
    meta = doc.metadata
    return str(meta.get("file", "")), int(meta.get("page", 0) or 0)


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


class CollectionIndex:
    """Lexical indexes of one collection version: chunk BM25, page BM25, page map."""

    def __init__(self, documents: Sequence[Document]) -> None:
        self.documents = list(documents)
        self.chunk_ids = {self.chunk_key(d): i for i, d in enumerate(self.documents)}
        self.pages: list[tuple[str, int]] = []
        page_pos: dict[tuple[str, int], int] = {}
        members: list[list[int]] = []
        for i, doc in enumerate(self.documents):
            key = _page_key(doc)
            if key not in page_pos:
                page_pos[key] = len(self.pages)
                self.pages.append(key)
                members.append([])
            members[page_pos[key]].append(i)
        self.page_pos = page_pos
        self.chunk_page = np.array([page_pos[_page_key(d)] for d in self.documents], dtype=np.int64)
        self.chunk_bm25 = BM25Index([d.page_content for d in self.documents])
        self.page_bm25 = BM25Index([page_text([self.documents[i] for i in m]) for m in members])

    @staticmethod
    def chunk_key(doc: Document) -> Any:
        cid = doc.metadata.get("chunk_id")
        return cid if cid is not None else (_page_key(doc), doc.page_content)


_CACHE: weakref.WeakKeyDictionary[Any, tuple[int, int, CollectionIndex]] = weakref.WeakKeyDictionary()
_CACHE_BY_ID: dict[int, tuple[int, int, CollectionIndex]] = {}
_CACHE_LOCK = threading.Lock()


def collection_index(collection: SearchableCollection) -> CollectionIndex:
    """The lexical index of a collection, rebuilt only when `.version` (or size) changes."""
    version = int(collection.version)
    with _CACHE_LOCK:
        try:
            cached = _CACHE.get(collection)
            weak = True
        except TypeError:  # not weak-referenceable
            cached, weak = _CACHE_BY_ID.get(id(collection)), False
        docs = collection.documents
        if cached is not None and cached[0] == version and cached[1] == len(docs):
            return cached[2]
        index = CollectionIndex(docs)
        entry = (version, len(docs), index)
        if weak:
            _CACHE[collection] = entry
        else:
            if len(_CACHE_BY_ID) > 32:
                _CACHE_BY_ID.clear()
            _CACHE_BY_ID[id(collection)] = entry
        return index


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
        _CACHE_BY_ID.clear()


# ---------------------------------------------------------------- search

def _zscore(values: np.ndarray, top: int = _Z_TOP) -> np.ndarray:
    if values.size == 0:
        return values.astype(np.float64)
    # The top values without a full sort. Partition only what lies above the minimum: these
    # arrays are mostly one value (BM25 zeros, the vector floor), where np.partition degrades
    # (15 ms a call at 100k vs 0.2 ms this way).
    floor = values.min()
    above = values[values > floor]
    if above.size >= top:
        best = np.partition(above, above.size - top)[-top:]
    else:
        best = np.concatenate([above, np.full(min(top, values.size) - above.size, floor)])
    best = best.astype(np.float64)
    std = float(best.std())
    if std < 1e-9:
        return np.zeros(values.shape, dtype=np.float64)
    return (values - best.mean()) / std


def _vector_hits(store: VectorStore, query: str, qvec: list[float] | None, k: int) -> list[tuple[Document, float]]:
    """The store's k nearest chunks with a similarity (higher = better).

    FAISS (and most stores) offer `similarity_search_with_score_by_vector`; its raw score is
    an inner product for MAX_INNER_PRODUCT / COSINE stores and a distance for Euclidean ones
    (negated here: only the order and spread matter to the fusion). Other stores fall back
    to `similarity_search_with_relevance_scores` (0..1, higher = better).
    """
    by_vector = getattr(store, "similarity_search_with_score_by_vector", None)
    if by_vector is not None and qvec is not None:
        pairs = by_vector(qvec, k=k)
        strategy = str(getattr(store, "distance_strategy", "")).upper()
        sign = -1.0 if ("EUCLIDEAN" in strategy or "JACCARD" in strategy) else 1.0
        return [(doc, sign * float(raw)) for doc, raw in pairs]
    return [(doc, float(score)) for doc, score in store.similarity_search_with_relevance_scores(query, k=k)]


def file_title_terms(file: str) -> set[str]:
    return set(tokenize(re.sub(r"[_\-.]+", " ", PurePath(file).stem)))


def search(query: str, collections: Sequence[SearchableCollection], *, embeddings: Embeddings | None,
           k: int, hybrid: bool = True, mode: Mode | None = None,
           weights: dict[str, float] | None = None) -> list[Hit]:
    """The k best excerpts for `query` over all `collections`, best first, one per page
    first. mode: "hybrid" (default when hybrid=True), "vector" or "bm25"."""
    mode = mode or ("hybrid" if hybrid else "vector")
    if mode not in ("hybrid", "vector", "bm25"):
        raise ValueError(f"unknown search mode {mode!r}")
    if k <= 0 or not query.strip() or not collections:
        return []
    w = dict(WEIGHTS if weights is None else weights)
    use_vector = mode in ("hybrid", "vector") and embeddings is not None
    use_lexical = mode in ("hybrid", "bm25") or embeddings is None
    if not use_lexical:
        w = {"vector": 1.0}
    elif not use_vector:
        w.pop("vector", None)

    indexes = [collection_index(c) for c in collections]
    # global page and chunk numbering over all collections
    offsets, total = [], 0
    for ix in indexes:
        offsets.append(total)
        total += len(ix.pages)
    if total == 0:
        return []
    chunk_page = np.concatenate([ix.chunk_page + off for ix, off in zip(indexes, offsets)])
    chunk_docs = [d for ix in indexes for d in ix.documents]
    chunk_off = np.cumsum([0] + [len(ix.documents) for ix in indexes])
    pages = [p for ix in indexes for p in ix.pages]

    signals: dict[str, np.ndarray] = {}
    chunk_signal = np.zeros(len(chunk_docs), dtype=np.float64)  # to pick each page's best chunk
    terms = tokenize(query)

    if use_lexical:
        chunk_scores = np.concatenate([ix.chunk_bm25.scores(terms) for ix in indexes])
        page_best = np.zeros(total, dtype=np.float64)
        np.maximum.at(page_best, chunk_page, chunk_scores)
        signals["bm25_chunk"] = page_best
        signals["bm25_page"] = np.concatenate([ix.page_bm25.scores(terms) for ix in indexes]).astype(np.float64)
        chunk_signal += w.get("bm25_chunk", 0) * _zscore(chunk_scores)
        if w.get("title"):
            files = sorted({f for f, _ in pages})
            titles = {f: file_title_terms(f) for f in files}
            qterms = set(terms)
            df = Counter(t for f in files for t in titles[f])
            bonus = {f: sum(math.log(1 + (len(files) - df[t] + 0.5) / (df[t] + 0.5))
                            for t in qterms & titles[f]) for f in files}
            if any(bonus.values()):
                signals["title"] = np.array([bonus[f] for f, _ in pages], dtype=np.float64)

    if use_vector:
        assert embeddings is not None
        qvec = embeddings.embed_query(query)
        fetch = max(_MIN_FETCH, 4 * k)
        sims = np.full(len(chunk_docs), np.nan)
        for ci, (coll, ix) in enumerate(zip(collections, indexes)):
            if not ix.documents:
                continue
            for doc, sim in _vector_hits(coll.vectorstore, query, qvec, min(fetch, len(ix.documents))):
                pos = ix.chunk_ids.get(CollectionIndex.chunk_key(doc))
                if pos is not None:
                    sims[chunk_off[ci] + pos] = sim
        found = ~np.isnan(sims)
        if found.any():
            floor = float(np.nanmin(sims)) - 1e-3
            sims = np.where(found, sims, floor)
            page_sim = np.full(total, floor)
            np.maximum.at(page_sim, chunk_page, sims)
            signals["vector"] = page_sim
            chunk_signal += w.get("vector", 0) * _zscore(sims)

    if not signals:
        return []
    if mode == "vector" or list(signals) == ["vector"]:
        fused = signals["vector"]
    elif len(signals) == 1:
        fused = next(iter(signals.values()))
    else:
        fused = np.zeros(total, dtype=np.float64)
        for name, values in signals.items():
            if name == "title":
                fused += w.get("title", 0) * values  # a bonus in idf units, not normalised
            else:
                fused += w.get(name, 0) * _zscore(values)

    # pages with any evidence, best first; best chunk of each page
    evidence = np.zeros(total, dtype=bool)
    if "bm25_chunk" in signals:
        evidence |= signals["bm25_chunk"] > 0
    if "vector" in signals:
        np.logical_or.at(evidence, chunk_page[found], True)
    # Only the k best pages' chunks are ranked: a Python pass over every chunk cost ~80 ms
    # per query at 100k chunks. Ties keep page / chunk order (stable sorts on ascending ids).
    candidates = np.flatnonzero(evidence)
    chosen = candidates[np.argsort(-fused[candidates], kind="stable")][:k]
    members = np.flatnonzero(np.isin(chunk_page, chosen))
    members = members[np.argsort(-chunk_signal[members], kind="stable")]
    by_page: dict[int, list[int]] = {}
    for c in members:
        by_page.setdefault(int(chunk_page[c]), []).append(int(c))
    hits = [Hit(chunk_docs[by_page[int(p)][0]], float(fused[p])) for p in chosen]
    if len(hits) < k:  # fewer pages than k (so `chosen` holds them all): add further chunks of the best
        for p in chosen:
            for c in by_page[int(p)][1:]:
                if len(hits) >= k:
                    break
                hits.append(Hit(chunk_docs[c], float(fused[p])))
    return hits


class HybridRetriever(BaseRetriever):
    """LangChain retriever over `search`; documents carry `metadata["score"]`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    collections: list[Any]
    embeddings: Any = None
    k: int = 5
    hybrid: bool = True
    mode: Mode | None = None

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = search(query, self.collections, embeddings=self.embeddings, k=self.k,
                      hybrid=self.hybrid, mode=self.mode)
        return [Document(page_content=h.document.page_content, id=h.document.id,
                         metadata={**h.document.metadata, "score": h.score}) for h in hits]
