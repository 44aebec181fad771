"""Search over one or more collections: vector, BM25 keyword, or both fused (hybrid).

Results are pages, not loose chunks: the UI cites pages and the model reads excerpts, so
five chunks of one page would waste four of the user's k slots. Every mode ranks pages
and returns the best chunk of each page (then, only if there are fewer pages than k,
further chunks of the same pages).

Signals, each computed per page (from `.documents`, `.vectorstore` and, when the
collection persisted them, its chunks' term counts `.lexicon`):
- `vector`: the best inner-product similarity of the page's chunks to the query
  (the vector store's top `fetch_k` chunks; pages it did not return get its floor);
- `bm25` chunk: Okapi BM25 of the best chunk of the page;
- `bm25` page: Okapi BM25 of the whole page (its chunks joined). A question's words are
  often spread over a page rather than packed into one chunk; this is a second,
  coarser view of the same page;
- title: query words that occur in a document's file name (e.g. "gnuplot",
  "Asymptote") favour that document's pages, weighted by how rare the word is among
  the file names searched, like a title field in BM25F;
- contents: the share of the page's lines that are table-of-contents entries
  (`lexical.contents_share`), a penalty: a contents page lists every heading, so it matches
  questions better than the pages it points to;
- heading: the share of the query's idf found in the titles of the PDF outline entries
  (bookmarks) that point to the page, i.e. sections that start there (chunk metadata `outline`;
  without an outline, the titles set in a larger type: agent/ingest/_headings.py);
- title_match (questions of at most `SHORT_QUERY` terms): how exactly one of those titles names what
  the question asks about (an F1 of the two term sets, idf-weighted): "What is counter mode?" belongs
  on the page where the section "Counter mode" starts, not where counter mode is mentioned most.
- definition ("what is X?" questions): 1 on pages with a sentence that defines X (agent/search/definition.py).
- next_section: a section often starts low on a page and goes on over the next one, which then holds more of
  the question's words (and its subsections' titles) than the page where it starts. The start page gets the
  next page's lexical z-score (chunk and page BM25), times the share of that page the section covers and the
  share of the query's idf in the section's title (agent/search/section_titles.py `continuation`).
- title_sem: how close in meaning the page's best section title is to the question, above a floor cosine of the
  embedding model (agent/search/title_vectors.py; only for models with a measured floor, and only for titles
  embedded at ingest).
- translation: on the pages whose language (Chinese or not) is not the question's, the page BM25 of the question's
  words translated by a bilingual dictionary (agent/search/translation.py; absent without the dictionary).

Fusion: each signal is z-normalised against its own top `_Z_TOP` pages for this
query (so a confident, peaked signal counts more than a flat one, unlike rank-only RRF)
and the z-scores are summed with weights (see `WEIGHTS`; the first four chosen on the devset,
`contents`, `heading`, `title_match`, `definition` by leave-one-document-out on the evalset's tune split,
bench/cv_sweep.py; `next_section` the same way over the devset and the tune split, bench/cv_sections.py; `title_sem`
and its floor by leave-one-document-out CV over both, bench/cv_sweep.py; `translation` the same way, bench/cv_xdict.py).
`mode="bm25"` uses only the lexical signals, `mode="vector"` only the vector one.

Tokenisation lives in agent.search.tokens, BM25 in agent.search.lexical; the per-version keyword indexes, and several
collections seen as one, in agent.search.keyword_index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore
from pydantic import ConfigDict

from agent.search.chunk_table import PositionKeys
from agent.search.definition import defined_pages
from agent.search.embeddings import checked_vectors
from agent.search.keyword_index import (
    CollectionIndex,
    CollectionVersion,
    MergedView,
    SearchableCollection,
    collection_index,
    joined,
    merged_view,
)
from agent.search.title_vectors import FLOORS, title_scores, without_vectors
from agent.search.tokens import query_terms
from agent.search.translation import dictionary, is_chinese, translate

Mode = Literal["hybrid", "vector", "bm25"]

#: Weights of the z-normalised page signals in hybrid mode (bm25 mode drops "vector").
WEIGHTS: dict[str, float] = {"bm25_chunk": 0.4, "bm25_page": 0.4, "vector": 0.2, "title": 0.5, "contents": -4.0,
                             "heading": 2.0, "title_match": 4.0, "definition": 4.0, "next_section": 0.4,
                             "title_sem": 24.0, "translation": 0.4}
#: title: a bonus in idf units; contents, heading: shares (0..1); title_match: an F1 (0..1); definition: 0/1;
#: next_section: a z-score times two shares; title_sem: a cosine above the model's floor (0..0.3 for `local`)
_RAW = ("title", "contents", "heading", "title_match", "definition", "next_section", "title_sem")
SHORT_QUERY = 4       # title_match applies to questions of at most this many index terms
_Z_TOP = 100          # a signal is normalised by the mean/std of its best _Z_TOP pages
_MIN_FETCH = 100      # chunks asked of the vector store (at least)


@dataclass
class Hit:
    document: Document
    score: float  # higher is better; comparable only within one result list

    def source(self) -> Source:
        """The hit as the excerpt an answer cites (stored with the turn, shown under it)."""
        meta = self.document.metadata
        return Source(file=meta.get("file", "?"), page=int(meta.get("page", 0)), text=self.document.page_content,
                      score=round(float(self.score), 4), chunk_id=meta.get("chunk_id", ""),
                      doc_id=meta.get("doc_id", ""), ocr=bool(meta.get("ocr")),
                      **({"page_label": str(meta["page_label"])} if meta.get("page_label") else {}),
                      **_location(meta))


class Source(TypedDict):
    """One excerpt behind an answer: where it is (file, page), its text and score."""

    file: str
    page: int
    text: str
    score: float
    chunk_id: str  # "<doc_id>:<page>:<n>"
    doc_id: str  # SHA-256 of the document's bytes
    ocr: bool
    page_label: NotRequired[str]  # the printed page number, when the PDF's page labels differ from `page`
    loc_kind: NotRequired[str]  # "page" | "slide" | "section" | "lines" (agent.ingest.formats)
    heading: NotRequired[str]  # heading path of a section ("A > B")
    line_start: NotRequired[int]  # line range of a text file's chunk
    line_end: NotRequired[int]
    para_start: NotRequired[int]  # paragraphs (within `heading`) of a DOCX/HTML/EPUB chunk
    para_end: NotRequired[int]
    number: NotRequired[int]  # its [n] in the answer's prompt (agent.chat.citations)
    cited: NotRequired[bool]  # whether the answer cites it


#: The keys that say where a non-PDF source is (what `ask --json` / `retrieve --json` pass on besides file and page).
LOCATION_KEYS = ("loc_kind", "heading", "line_start", "line_end", "para_start", "para_end")


def _location(meta: dict) -> dict:
    """The non-PDF location keys a chunk carries (absent on PDF pages, so old sources stay as they were)."""
    kind = meta.get("loc_kind", "page")
    if kind == "page":
        return {}
    out = {"loc_kind": kind, "heading": str(meta.get("heading", ""))}
    if meta.get("line_start"):
        out.update(line_start=int(meta["line_start"]), line_end=int(meta.get("line_end", 0)))
    if meta.get("para_start"):
        out.update(para_start=int(meta["para_start"]), para_end=int(meta.get("para_end", meta["para_start"])))
    return out


# ---------------------------------------------------------------- search

def _zscore(values: np.ndarray, top: int = _Z_TOP) -> np.ndarray:
    if values.size == 0:
        return values.astype(np.float64)
    # The top values without a full sort. Partition only what lies above the minimum: these
    # arrays are mostly one value (BM25 zeros, the vector floor), where np.partition degrades.
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



@dataclass
class PageSignals:
    """A query's raw signals: per page (`pages`, for the fusion) and per chunk (`chunks`, to pick a
    page's excerpt), over one merged view of the collections; `found`: chunks the vector store returned."""

    view: MergedView
    pages: dict[str, np.ndarray]
    chunks: dict[str, np.ndarray]
    found: np.ndarray


def page_signals(query: str, collections: Sequence[SearchableCollection], *, embeddings: Embeddings | None,
                 lexical: bool, vector: bool, title: bool = True, fetch: int = _MIN_FETCH) -> PageSignals | None:
    """Every signal of `query` over the collections' current versions (None when they hold no page)."""
    versions = [c.snapshot() for c in collections]  # one version of each, whole
    indexes = [collection_index(v) for v in versions]
    view = merged_view(indexes)
    if view.pages == 0:
        return None
    out = PageSignals(view, {}, {}, np.zeros(view.chunks, dtype=bool))
    terms = query_terms(query)
    if lexical:
        out.chunks["bm25_chunk"] = joined([ix.chunk_bm25.scores(terms) for ix in indexes], np.float32)
        out.pages["bm25_chunk"] = view.page_max(out.chunks["bm25_chunk"]).astype(np.float64)
        out.pages["bm25_page"] = joined([ix.page_bm25.scores(terms) for ix in indexes], np.float32).astype(np.float64)
        bonus = view.title_bonus(terms) if title else None
        if bonus is not None:
            out.pages["title"] = bonus
        if view.contents.any():
            out.pages["contents"] = view.contents
        heading = joined([ix.sections.share(terms, ix.page_bm25) for ix in indexes], np.float64)
        if heading.any():
            out.pages["heading"] = heading
        if len(terms) <= SHORT_QUERY:
            match = joined([ix.sections.match(terms, ix.page_bm25) for ix in indexes], np.float64)
            if match.any():
                out.pages["title_match"] = match
        defined = defined_pages(query, view, indexes)
        if defined is not None:
            out.pages["definition"] = defined
        follow = _next_section(terms, indexes, view, out.pages)
        if follow is not None:
            out.pages["next_section"] = follow
        translated = _translation(query, terms, indexes)
        if translated is not None:
            out.pages["translation"] = translated
    if vector and embeddings is not None:
        vector = checked_vectors([embeddings.embed_query(query)], 1, _dimension(versions))[0].tolist()
        sims = _vector_similarities(query, vector, versions, indexes, view, fetch=fetch)
        out.found = ~np.isnan(sims)
        if out.found.any():
            sims[~out.found] = float(np.nanmin(sims)) - 1e-3  # chunks FAISS did not return: below all it did
            out.pages["vector"] = view.page_max(sims)
            out.chunks["vector"] = sims
        sem = _title_meaning(vector, collections, indexes)
        if sem.any():
            out.pages["title_sem"] = sem
    return out


def _title_meaning(qvec: list[float], collections: Sequence[SearchableCollection],
                   indexes: Sequence[CollectionIndex]) -> np.ndarray:
    """Per page: the `title_sem` signal (0 where the model has no floor or the titles have no vectors)."""
    parts = []
    for coll, ix in zip(collections, indexes):
        floor = _title_floor(coll)
        parts.append(title_scores(ix.title_index, qvec, ix.pages.rows, floor) if floor is not None
                     else np.zeros(ix.pages.rows))
    return joined(parts, np.float64)


def _title_floor(collection: SearchableCollection) -> float | None:
    """The cosine above which a title of this collection counts (None: its model has none, no `title_sem`)."""
    return FLOORS.get(str(getattr(collection, "embedding_model", "")))


def warm(collection: SearchableCollection) -> None:
    """Build everything a first search of `collection` would: its keyword index, its pages' languages and the
    title index its model reads (Workspace.warm_up runs this at start-up, in the background)."""
    collection_index(collection).warm(titles=_title_floor(collection) is not None)


def _translation(query: str, terms: Sequence[str], indexes: Sequence[CollectionIndex]) -> np.ndarray | None:
    """Per page of the other language than the question's: the page BM25 of the question's dictionary translation
    (None when no page is in the other language, no dictionary is installed or no word translates)."""
    other = joined([ix.chinese_pages != is_chinese(query) for ix in indexes], bool)
    d = dictionary() if other.any() else None
    translated = translate(query, d, terms) if d is not None else {}
    if not translated:
        return None
    scores = joined([ix.page_bm25.weighted_scores(translated) for ix in indexes], np.float64) * other
    return scores if scores.any() else None


def _next_section(terms: Sequence[str], indexes: Sequence[CollectionIndex], view: MergedView,
                  pages: dict[str, np.ndarray]) -> np.ndarray | None:
    """Per page: the next page's lexical z-score when a section whose title holds query terms starts on this
    page and goes on over that one, times both shares (None when no page qualifies)."""
    weight = joined([ix.sections.last_share(terms, ix.page_bm25) for ix in indexes], np.float64) * view.continues
    rows = np.flatnonzero(weight)
    if not len(rows):
        return None
    lexical = (_zscore(pages["bm25_page"]) + _zscore(pages["bm25_chunk"])) / 2
    out = np.zeros(view.pages, dtype=np.float64)
    out[rows] = weight[rows] * lexical[view.next_page[rows]]
    return out


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
    ps = page_signals(query, collections, embeddings=embeddings, lexical=use_lexical, vector=use_vector,
                      title=bool(w.get("title")), fetch=max(_MIN_FETCH, 4 * k))
    if ps is None or not ps.pages:
        return []
    chunk_signal = np.zeros(ps.view.chunks, dtype=np.float64)  # to pick each page's best chunk
    for name, values in ps.chunks.items():
        chunk_signal += w.get(name, 0) * _zscore(values)
    return _best_pages(_fuse(ps.pages, w, mode), ps.pages, ps.found, chunk_signal, ps.view, k)


def _dimension(collections: Sequence[CollectionVersion]) -> int:
    """The vector length the searched indexes hold (0: no vectors yet)."""
    for coll in collections:
        index = getattr(coll.vectorstore, "index", None)
        if index is not None and index.ntotal:
            return int(index.d)
    return 0


def _vector_similarities(query: str, qvec: list[float], collections: Sequence[CollectionVersion],
                         indexes: Sequence[CollectionIndex], view: MergedView, fetch: int) -> np.ndarray:
    """Per chunk: its similarity if the vector store returned it in its top `fetch`, else NaN."""
    sims = np.full(view.chunks, np.nan)
    for ci, (coll, ix) in enumerate(zip(collections, indexes)):
        if not len(ix.documents):
            continue
        for pos, sim in _vector_positions(coll.vectorstore, query, qvec, min(fetch, len(ix.documents)), ix):
            sims[view.chunk_off[ci] + pos] = sim
    return sims


def _vector_positions(store: VectorStore, query: str, qvec: list[float], k: int,
                      ix: CollectionIndex) -> list[tuple[int, float]]:
    """(chunk position, similarity) of the store's k nearest chunks: straight from the FAISS index
    when the store numbers chunks by position (a collection's: no `Document` per hit)."""
    if isinstance(getattr(store, "index_to_docstore_id", None), PositionKeys) and qvec is not None:
        sims, rows = store.index.search(np.asarray([qvec], dtype=np.float32), k)  # type: ignore[attr-defined]
        return [(int(r), float(s)) for r, s in zip(rows[0], sims[0]) if r >= 0]
    found = ((ix.chunk_ids.get(CollectionIndex.chunk_key(doc)), sim) for doc, sim in _vector_hits(store, query, qvec, k))
    return [(pos, sim) for pos, sim in found if pos is not None]


def _fuse(signals: dict[str, np.ndarray], w: dict[str, float], mode: Mode) -> np.ndarray:
    """One score per page: the weighted sum of the signals' z-scores (title, contents: raw, in their own units)."""
    if mode == "vector" or list(signals) == ["vector"]:
        return signals["vector"]
    if len(signals) == 1:
        return next(iter(signals.values()))
    fused = np.zeros(len(next(iter(signals.values()))), dtype=np.float64)
    for name, values in signals.items():
        if name in _RAW:
            fused += w.get(name, 0) * values
        else:
            fused += w.get(name, 0) * _zscore(values)
    return fused


def _best_pages(fused: np.ndarray, signals: dict[str, np.ndarray], found: np.ndarray,
                chunk_signal: np.ndarray, view: MergedView, k: int) -> list[Hit]:
    """The k best pages with any evidence, each as its best chunk (then, if there are
    fewer pages than k, further chunks of the best pages)."""
    evidence = np.zeros(view.pages, dtype=bool)
    if "bm25_chunk" in signals:
        evidence |= signals["bm25_chunk"] > 0
    if "vector" in signals:
        evidence |= view.page_max(found)
    if "heading" in signals:  # a section title holding query terms is text of the page as well
        evidence |= signals["heading"] > 0
    if "translation" in signals:
        evidence |= signals["translation"] > 0
    # Only the k best pages' chunks are ranked (a Python pass over every chunk is too slow).
    # Ties keep page / chunk order (stable sorts on ascending ids).
    candidates = np.flatnonzero(evidence)
    chosen = candidates[np.argsort(-fused[candidates], kind="stable")][:k]
    is_chosen = np.zeros(view.pages, dtype=bool)
    is_chosen[chosen] = True
    members = np.flatnonzero(is_chosen[view.chunk_page])
    members = members[np.argsort(-chunk_signal[members], kind="stable")]
    by_page: dict[int, list[int]] = {}
    for c in members:
        by_page.setdefault(int(view.chunk_page[c]), []).append(int(c))
    hits = [Hit(view.document(by_page[int(p)][0]), float(fused[p])) for p in chosen]
    for p in chosen if len(hits) < k else ():  # fewer pages than k: `chosen` holds them all
        for c in by_page[int(p)][1:k - len(hits) + 1]:
            hits.append(Hit(view.document(c), float(fused[p])))
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
                         metadata={**without_vectors(h.document.metadata), "score": h.score}) for h in hits]
