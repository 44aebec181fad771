"""Cross-validated sweep of the hybrid fusion and of the issue-16 ideas, by document (leave one document out).

Every page signal of every question is computed once with the product's pipeline
(`agent.search.retrieval.page_signals` over a collection built by `agent.ingest`); a
configuration is then only a weighted sum of z-scores, so thousands are scored in seconds.
For each family of ideas the grid's best configuration is chosen on all documents but one
and scored on that one's questions (held-out); the in-sample figure is the best configuration
chosen and scored on all questions. A family is worth keeping only if its held-out figure
beats the held-out figure of the product's weights.

Signals (z-normalised over the top pages, as in the product; title is a raw idf bonus):
bm25_chunk, bm25_page, vector, title (the product's); first: idf-weighted query terms whose
first page in the document is this page ("what is X" overview pages); contents: the share of
table-of-contents lines on the page (a raw penalty, as in the product); prf: page BM25 of the
10 best terms of the product ranking's top 3 pages (pseudo-relevance feedback); heading: the share of the
query's idf found in the titles of the PDF outline entries pointing to the page (raw, as in the product). Query-length
weighting: a separate vector weight for queries of at most 3 terms.
Chunk/title side (fifth round): title_cos, title_sem_*: the best cosine between the question's vector and one of
the page's section titles' vectors (same embedding model as the chunks), raw, above a floor, z-scored, gated;
`title_sem` is the product's (ninth round: the cosine above 0.7, from the title vectors stored at ingest);
vector_ctx*: chunk vectors re-embedded with the chunk's section title in the context line (instead of / after the
page's first line); bm25_chunk_ctx: chunk BM25 with the section title in the chunk's text.
Query side (sixth round): definition (the product's, raw 0/1);
bm25_sum: the sum of the page's chunk BM25 (the product takes the best chunk); proximity<w>: the largest share of the
query's idf inside `w` consecutive terms of a chunk (the PROX_PAGES best pages by page BM25); coverage_page /
coverage_chunk: the share of the query's idf the page / its best chunk holds, each term once (coordination).

    python -m bench.cv_sweep --set evalset --split tune   # the only split tuning may see
    python -m bench.cv_sweep --set devset                 # check: does the devset agree?
"""

from __future__ import annotations

import itertools
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Run, markdown_table, parser, set_blas_threads
from bench.cv_common import cached_collection, candidates, cross_validate, hits, question_row
from bench.quality import _question_set

NAME = "cv_sweep"
#: semantic title match: cosine of the question's and the page's section titles' vectors (raw; relu above a
#: floor; z-scored; gated to short questions; titles carried onto the pages a section continues)
SEM_FLOORS = (0.3, 0.5, 0.6, 0.7)
SEM_SIGNALS = ("title_sem", "title_cos", *(f"title_sem_t{int(f * 10)}" for f in SEM_FLOORS), "title_sem_z",
               "title_sem_le4", "title_sem_sec", "title_sem_sec_z", "vector_ctx", "vector_ctx2", "bm25_chunk_ctx",
               "vector_page")
SIGNALS = ("bm25_chunk", "bm25_page", "vector", "title", "first", "prf", "vector_short", "contents", "heading",
           "section", "faq", "title_match", *(f"title_match_le{n}" for n in (4, 6, 8, 12, 1000)),
           *SEM_SIGNALS, "definition", "bm25_sum", *(f"proximity{w}" for w in (8, 16, 32)),
           "coverage_page", "coverage_chunk", "next_section", "translation")
PROX_PAGES = 20  # pages (the best by page BM25) whose chunks the proximity signal reads
SHORT_TERMS = 3  # a query of at most this many index terms is "short"
PRF_PAGES, PRF_TERMS = 3, 10

GRID_BASE = {"bm25_chunk": (0.0, 0.2, 0.4, 0.6), "bm25_page": (0.0, 0.2, 0.4, 0.6),
             "vector": (0.2, 0.4, 0.6, 0.8), "title": (0.0, 0.25, 0.5, 1.0)}
#: idea -> the extra signal's weights (tried on top of the whole base grid)
#: 0 is always on the grid, so cross-validation may also find that an idea does not help.
IDEAS = {"weights": {}, "first": {"first": (0.0, 0.05, 0.1, 0.2)}, "prf": {"prf": (0.0, 0.1, 0.2, 0.4)},
         "query length": {"vector_short": (-0.2, 0.0, 0.2, 0.4)},
         "contents": {"contents": (0.0, -0.5, -1.0, -2.0, -4.0)},
         "contents, product weights": {"contents": (0.0, -0.5, -1.0, -2.0, -4.0, -8.0)},
         "heading, product weights": {"heading": (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)},
         "contents + heading, product weights": {"contents": (0.0, -1.0, -2.0, -4.0, -8.0),
                                                 "heading": (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)},
         "first, product weights": {"first": (0.0, 0.05, 0.1, 0.2, 0.4)},
         "prf, product weights": {"prf": (0.0, 0.05, 0.1, 0.2, 0.4)},
         "query length, product weights": {"vector_short": (-0.2, -0.1, 0.0, 0.1, 0.2, 0.4)},
         "section, product weights": {"section": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)},
         "faq, product weights": {"faq": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)},
         "title match or heading, product weights": {"title_match": (0.0,), "heading": (0.0, 1.0, 2.0),
                                                     "title_match_le1000": (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)},
         **{f"title match, questions <= {n} terms, product weights": {
             "title_match": (0.0,), f"title_match_le{n}": (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)}
            for n in (4, 6, 8, 12, 1000)},
         **{f"semantic title ({name}), product weights": {name: grid}
            for name, grid in [("title_sem", (0.0, 2.0, 4.0, 8.0, 12.0, 16.0, 24.0, 32.0)),
                               ("title_cos", (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)),
                               *((f"title_sem_t{int(f * 10)}", (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0))
                                 for f in SEM_FLOORS),
                               ("title_sem_z", (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)),
                               ("title_sem_le4", (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)),
                               ("title_sem_sec_z", (0.0, 0.05, 0.1, 0.2, 0.4, 0.8))]},
         **{f"section title in the chunk's {what}, product weights": {base: (0.0, 0.1, 0.2, 0.3, 0.4),
                                                                        name: (0.0, 0.1, 0.2, 0.3, 0.4)}
            for what, base, name in [("vector, for the page heading", "vector", "vector_ctx"),
                                     ("vector, after the page heading", "vector", "vector_ctx2"),
                                     ("BM25 text", "bm25_chunk", "bm25_chunk_ctx")]},
         "section title in the chunk's vector and BM25 text, product weights": {
             "vector": (0.0, 0.1, 0.2), "vector_ctx": (0.0, 0.1, 0.2, 0.3), "bm25_chunk": (0.0, 0.2, 0.4),
             "bm25_chunk_ctx": (0.0, 0.2, 0.3, 0.4)},
         "page vector (whole page embedded), product weights": {"vector_page": (0.0, 0.05, 0.1, 0.2, 0.3, 0.4)},
         "definition, product weights": {"definition": (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)},
         "chunk BM25 sum next to max, product weights": {"bm25_sum": (0.0, 0.1, 0.2, 0.4, 0.8)},
         "chunk BM25 sum instead of max, product weights": {"bm25_chunk": (0.0, 0.4), "bm25_sum": (0.0, 0.2, 0.4, 0.8)},
         **{f"proximity, window {n}, product weights": {f"proximity{n}": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)}
            for n in (8, 16, 32)},
         "coverage of the query's idf by the page, product weights": {"coverage_page": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)},
         "coverage by the page's best chunk, product weights": {"coverage_chunk": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)}}
#: families that keep the product's WEIGHTS (all of them) and fit only their own signal (less variance)
ON_PRODUCT = {name for name in IDEAS if name.endswith("product weights")}
#: a FAQ question line: ends in a question mark, or starts with a Q: / 问： marker
_QUESTION_LINE = re.compile(r"^\s*(?:Q\s*[:：.]|问\s*[:：]).*$|^.*[?？]\s*$", re.MULTILINE)


def _first_mention(ix: Any, terms: Sequence[str]) -> np.ndarray:
    """Per page: sum of idf of the query terms whose first page in the page's file is this page."""
    bm, keys = ix.page_bm25, ix.pages.keys()
    out = np.zeros(ix.pages.rows, dtype=np.float64)
    for t in bm.vocabulary.lookup(terms):
        first: dict[str, int] = {}
        for row in bm.term_rows(t)[0]:
            f, page = keys[int(row)]
            if f not in first or page < keys[first[f]][1]:
                first[f] = int(row)
        out[list(first.values())] += bm.idf[t]
    return out


def _prf(ix: Any, lexicon: Any, fused: np.ndarray, terms: Sequence[str]) -> np.ndarray:
    """Page BM25 of the best tf*idf terms of the top pages of `fused` (query terms excluded)."""
    bm = ix.page_bm25
    weight: Counter[int] = Counter()
    for row in np.argsort(-fused)[:PRF_PAGES]:
        ids, counts = lexicon.pages.row(int(row))
        for t, c in zip(ids.tolist(), counts.tolist()):
            weight[t] += c * float(bm.idf[t])
    own = set(bm.vocabulary.lookup(terms))
    best = [bm.vocabulary.terms[t] for t, _ in weight.most_common(PRF_TERMS + len(own)) if t not in own][:PRF_TERMS]
    return bm.scores(best).astype(np.float64)


def _share(ix: Any, postings: dict[str, np.ndarray], terms: Sequence[str]) -> np.ndarray:
    """Per page: the share of the query's idf found in the page's titles (`postings`: term -> pages)."""
    ids = ix.page_bm25.vocabulary.ids
    idf = {t: float(ix.page_bm25.idf[ids[t]]) for t in set(terms) if t in ids}
    total = sum(idf.values())
    out = np.zeros(ix.pages.rows, dtype=np.float64)
    for t, v in idf.items():
        if t in postings:
            out[postings[t]] += v / total
    return out


def _postings(texts: Sequence[str]) -> dict[str, np.ndarray]:
    from agent.search.tokens import tokenize

    out: dict[str, list[int]] = {}
    for p, text in enumerate(texts):
        for term in set(tokenize(text)) if text else ():
            out.setdefault(term, []).append(p)
    return {t: np.array(v, dtype=np.int64) for t, v in out.items()}


def _section_postings(ix: Any) -> dict[str, np.ndarray]:
    """Term -> pages whose enclosing section (the last outline title on an earlier page of the same file,
    i.e. the section the page begins inside) holds it: the heading path's last step, for pages a section
    continues onto."""
    from agent.search.lexical import page_groups

    _, members = page_groups(ix.documents)
    carried: dict[str, str] = {}
    keys = ix.pages.keys()
    texts = [""] * ix.pages.rows
    for p in sorted(range(ix.pages.rows), key=lambda p: keys[p]):
        f = keys[p][0]
        texts[p] = carried.get(f, "")
        titles = ix.documents[members[p][0]].metadata.get("outline")
        if titles:
            carried[f] = titles[-1]
    return _postings(texts)


def _faq_postings(ix: Any) -> dict[str, np.ndarray]:
    """Term -> pages holding a FAQ question line with it (the question heads the answer below it)."""
    from agent.search.lexical import page_groups, page_text

    _, members = page_groups(ix.documents)
    return _postings(["\n".join(_QUESTION_LINE.findall(page_text([ix.documents[i] for i in rows])))
                      for rows in members])


def _title_vectors(ix: Any, emb: Any, carried: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each section title's vector (rows) and its page; `carried`: also the last title of an earlier page
    for each page that starts none (the section the page continues)."""
    titles = ix.pages.titles_by_page()
    owner, texts = [], []
    last: dict[int, str] = {}
    keys = ix.pages.keys()
    for p in sorted(range(ix.pages.rows), key=lambda p: keys[p]) if carried else sorted(titles):
        f = int(ix.pages.file[p])
        own = titles.get(p) or ([last[f]] if carried and f in last else [])
        owner += [p] * len(own)
        texts += own
        if titles.get(p):
            last[f] = titles[p][-1]
    vecs = np.asarray(emb.embed_documents(texts), dtype=np.float32) if texts else np.zeros((0, 512), np.float32)
    return vecs, np.array(owner, dtype=np.int64)


def _title_cosine(vecs: np.ndarray, owner: np.ndarray, qvec: np.ndarray, pages: int) -> np.ndarray:
    """Per page: the best cosine between the question and one of its titles (0 for pages without)."""
    out = np.zeros(pages, dtype=np.float64)
    if len(owner):
        np.maximum.at(out, owner, vecs @ qvec)
    return out


def _chunk_sections(ix: Any) -> list[str]:
    """Per chunk: the title of the section it lies in (the last title on its page that its text or an earlier
    chunk of the page holds, else the section the page continues; "" before a document's first title)."""
    titles, keys, docs = ix.pages.titles_by_page(), ix.pages.keys(), ix.documents
    order = ix.page_order if ix.page_order is not None else np.arange(len(docs))
    out = [""] * len(docs)
    carried: dict[str, str] = {}
    by_page: dict[int, list[int]] = {}
    for c in order.tolist():
        by_page.setdefault(int(ix.chunk_page[c]), []).append(c)
    for p in sorted(by_page, key=lambda p: keys[p]):
        f = keys[p][0]
        current = carried.get(f, "")
        own = titles.get(p, [])
        for c in sorted(by_page[p], key=lambda c: docs[c].metadata.get("start", 0)):
            text = " ".join(docs[c].page_content.split()).lower()
            for title in own:
                if " ".join(title.split()).lower() in text:
                    current = title
            out[c] = current
        if own:
            carried[f] = own[-1]
    return out


def _context_signals(ix: Any, emb: Any, run: Run) -> dict[str, Any]:
    """Chunk vectors and a chunk BM25 index with each chunk's section title in its text."""
    from langchain_core.documents import Document

    from agent.ingest.chunking import embedding_text
    from agent.search.lexical import BM25Index, Lexicon

    t0 = time.perf_counter()
    sections = _chunk_sections(ix)
    docs = [ix.documents[i] for i in range(len(ix.documents))]
    replaced = [Document(d.page_content, metadata={**d.metadata, "heading": s or d.metadata.get("heading", "")})
                for d, s in zip(docs, sections)]
    after = [embedding_text(d).replace("\n", f" | {s}\n", 1) if s else embedding_text(d)
             for d, s in zip(docs, sections)]
    out = {"vector_ctx": np.asarray(emb.embed_documents([embedding_text(d) for d in replaced]), np.float32),
           "vector_ctx2": np.asarray(emb.embed_documents(after), np.float32)}
    lex = Lexicon.build([Document(f"{s}\n{d.page_content}" if s else d.page_content, metadata=d.metadata)
                         for d, s in zip(docs, sections)])
    out["bm25_chunk_ctx"] = BM25Index.from_counts(lex.chunks, lex.vocabulary)
    pages: list[list[str]] = [[] for _ in range(ix.pages.rows)]
    for c in np.argsort(ix.chunk_page, kind="stable").tolist():
        pages[int(ix.chunk_page[c])].append(docs[c].page_content)
    out["vector_page"] = np.asarray(emb.embed_documents(["\n".join(p) for p in pages]), np.float32)
    run.log(f"context: {sum(bool(s) for s in sections)} of {len(docs)} chunks in a section, "
            f"{time.perf_counter() - t0:.0f} s")
    return out


def _page_sum(view: Any, chunk_values: np.ndarray) -> np.ndarray:
    """The sum of each page's chunk values (the product takes the maximum: `view.page_max`)."""
    if view.page_order is not None:
        chunk_values = chunk_values[view.page_order]
    return np.add.reduceat(chunk_values.astype(np.float64), view.page_starts)


def _proximity(ix: Any, view: Any, terms: Sequence[str], page_bm25: np.ndarray,
               windows: Sequence[int]) -> dict[int, np.ndarray]:
    """Per window size, per page (the PROX_PAGES best by page BM25, else 0): the largest share of the
    query's idf that `window` consecutive index terms of one of its chunks hold (together vs scattered)."""
    from agent.search.tokens import tokenize

    ids = ix.page_bm25.vocabulary.ids
    idf = {t: float(ix.page_bm25.idf[ids[t]]) for t in set(terms) if t in ids}
    total = sum(idf.values())
    out = {w: np.zeros(view.pages, dtype=np.float64) for w in windows}
    if len(idf) < 2:
        return out
    for p in [int(p) for p in np.argsort(-page_bm25)[:PROX_PAGES] if page_bm25[p] > 0]:
        for c in view.page_chunks(p):
            hits = [(i, t) for i, t in enumerate(tokenize(view.document(c).page_content)) if t in idf]
            for w in windows:
                out[w][p] = max(out[w][p], _best_window(hits, idf, w) / total)
    return out


def _coverage(bm: Any, terms: Sequence[str]) -> np.ndarray:
    """Per row of a BM25 index (page or chunk): the share of the query's idf among its terms, each term
    once (coordination: all of the question's words vs a few of them repeated)."""
    ids = [t for t in dict.fromkeys(bm.vocabulary.lookup(terms))]
    total = float(sum(bm.idf[t] for t in ids)) or 1.0
    out = np.zeros(bm.n, dtype=np.float64)
    for t in ids:
        out[bm.term_rows(t)[0]] += bm.idf[t] / total
    return out


def _best_window(hits: Sequence[tuple[int, str]], idf: dict[str, float], window: int) -> float:
    """The largest idf sum of distinct terms among `hits` (position, term) within `window` positions."""
    best, lo, inside = 0.0, 0, Counter[str]()
    for pos, term in hits:
        inside[term] += 1
        while pos - hits[lo][0] >= window:
            inside[hits[lo][1]] -= 1
            if not inside[hits[lo][1]]:
                del inside[hits[lo][1]]
            lo += 1
        best = max(best, sum(idf[t] for t in inside))
    return best


def collect(questions: Sequence[Any], collection: Any, emb: Any, run: Run) -> list[dict[str, Any]]:
    """Per question: z-scored signals of its candidate pages (pages with any evidence), gold mask."""
    from agent.search.keyword_index import collection_index
    from agent.search.lexical import Lexicon
    from agent.search.retrieval import _RAW, WEIGHTS, _fuse, _zscore, page_signals
    from agent.search.tokens import query_terms

    ix = collection_index(collection)
    snap = collection.snapshot()
    lexicon = snap.lexicon if snap.lexicon is not None and snap.lexicon.fits(ix.documents, ix.pages.rows) \
        else Lexicon.build(ix.documents)
    section, faq = _section_postings(ix), _faq_postings(ix)
    keys = ix.pages.keys()
    t0 = time.perf_counter()
    own_titles, sec_titles = _title_vectors(ix, emb, False), _title_vectors(ix, emb, True)
    ctx = _context_signals(ix, emb, run)
    run.log(f"title vectors: {len(own_titles[1])} own, {len(sec_titles[1])} with carried, "
            f"{time.perf_counter() - t0:.1f} s")
    run.log(f"faq lines on {len({int(p) for v in faq.values() for p in v})} pages")
    rows = []
    for i, q in enumerate(questions):
        ps = page_signals(q.question, [collection], embeddings=emb, lexical=True, vector=True)
        assert ps is not None
        terms = query_terms(q.question)
        raw = dict(ps.pages)
        for name in (*_RAW, *WEIGHTS):
            raw.setdefault(name, np.zeros(ps.view.pages))
        product = _fuse(ps.pages, WEIGHTS, "hybrid")
        z = {name: (v if name in _RAW else _zscore(v)) for name, v in raw.items()}
        z["first"] = _zscore(_first_mention(ix, terms))
        z["prf"] = _zscore(_prf(ix, lexicon, product, terms))
        z["section"] = _share(ix, section, terms)
        z["faq"] = _share(ix, faq, terms)
        match = ix.sections.match(terms, ix.page_bm25)  # the product's signal, whatever the question's length
        for n in (4, 6, 8, 12, 1000):
            z[f"title_match_le{n}"] = match if len(terms) <= n else np.zeros(ps.view.pages)
        qvec = np.asarray(emb.embed_query(q.question), dtype=np.float32)
        sem = _title_cosine(*own_titles, qvec, ps.view.pages)
        z["title_cos"] = sem
        for f in SEM_FLOORS:
            z[f"title_sem_t{int(f * 10)}"] = np.maximum(sem - f, 0.0)
        z["title_sem_z"] = _zscore(sem)
        z["title_sem_le4"] = sem if len(terms) <= 4 else np.zeros(ps.view.pages)
        z["title_sem_sec"] = _title_cosine(*sec_titles, qvec, ps.view.pages)
        z["title_sem_sec_z"] = _zscore(z["title_sem_sec"])
        for name in ("vector_ctx", "vector_ctx2"):
            z[name] = _zscore(ps.view.page_max((ctx[name] @ qvec).astype(np.float64)))
        z["vector_page"] = _zscore((ctx["vector_page"] @ qvec).astype(np.float64))
        z["bm25_chunk_ctx"] = _zscore(ps.view.page_max(ctx["bm25_chunk_ctx"].scores(terms).astype(np.float64)))
        z["coverage_page"] = _coverage(ix.page_bm25, terms)
        z["coverage_chunk"] = ps.view.page_max(_coverage(ix.chunk_bm25, terms))
        z["bm25_sum"] = _zscore(_page_sum(ps.view, ps.chunks["bm25_chunk"]))
        for n, values in _proximity(ix, ps.view, terms, raw["bm25_page"], (8, 16, 32)).items():
            z[f"proximity{n}"] = values
        z["vector_short"] = z["vector"] if len(terms) <= SHORT_TERMS else np.zeros(ps.view.pages)
        rows.append(question_row(q, z, candidates(ps, raw), keys, SIGNALS, terms=len(terms)))
        if i % 25 == 0:
            run.log(f"signals {i + 1}/{len(questions)}")
    return rows


def grid(idea: str) -> np.ndarray:
    """Weight vectors (one per row, in SIGNALS order) of an idea's family."""
    from agent.search.retrieval import WEIGHTS

    base = {k: (v,) for k, v in WEIGHTS.items()} if idea in ON_PRODUCT else GRID_BASE
    axes = {**base, **IDEAS[idea]}
    names = list(axes)
    out = []
    for combo in itertools.product(*(axes[n] for n in names)):
        w = dict(zip(names, combo))
        out.append([w.get(s, 0.0) for s in SIGNALS])
    return np.array(out)


def _w(vec: np.ndarray) -> str:
    return " ".join(f"{s}={v:g}" for s, v in zip(SIGNALS, vec) if v)


def report(rows: list[dict[str, Any]], run: Run, fixed: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The fixed weight sets as they are, then every idea family cross-validated."""
    langs = np.array([r["lang"] for r in rows])
    sets = np.array([r["set"] for r in rows])
    table, by_set, results = [], [], {}
    for label, weights in fixed.items():
        vec = np.array([[weights.get(s, 0.0) for s in SIGNALS]])
        h = hits(rows, vec)[:, 0]
        results[label] = {"weights": _w(vec[0]), "hit1": h[:, 0].mean(), "hit5": h[:, 1].mean()}
        table.append([f"{label} (fixed)", "-", "-", f"{h[:, 0].mean():.3f}", f"{h[:, 1].mean():.3f}",
                      *(f"{h[langs == lg, 0].mean():.3f}/{h[langs == lg, 1].mean():.3f}" for lg in ("en", "zh")),
                      _w(vec[0])])
    for idea in IDEAS:
        cv = cross_validate(rows, grid(idea))
        held, ins = cv["held"], cv["in"]
        results[idea] = {"in_hit1": ins[:, 0].mean(), "in_hit5": ins[:, 1].mean(), "held_hit1": held[:, 0].mean(),
                         "held_hit5": held[:, 1].mean(), "in_weights": _w(cv["in_weights"]),
                         "folds": {f: _w(w) for f, w in cv["chosen"].items()}}
        table.append([idea, f"{ins[:, 0].mean():.3f}", f"{ins[:, 1].mean():.3f}", f"{held[:, 0].mean():.3f}",
                      f"{held[:, 1].mean():.3f}",
                      *(f"{held[langs == lg, 0].mean():.3f}/{held[langs == lg, 1].mean():.3f}" for lg in ("en", "zh")),
                      _w(cv["in_weights"])])
        run.log(f"{idea}: folds chose " + "; ".join(f"{f}: {_w(w)}" for f, w in cv["chosen"].items()))
        by_set.append([idea, *(f"{a[sets == st, 0].mean():.3f}/{a[sets == st, 1].mean():.3f}"
                               for st in sorted(set(sets)) for a in (ins, held))])
    if len(set(sets)) > 1:
        run.table("Pooled folds, per set: in-sample and held-out hybrid hit@1/hit@5", markdown_table(
            ["family", *(f"{st} {kind}" for st in sorted(set(sets)) for kind in ("in-sample", "held-out"))], by_set))
    run.table("Leave-one-document-out: in-sample vs held-out hybrid hit@1 / hit@5", markdown_table(
        ["family", "in-sample hit@1", "in-sample hit@5", "held-out hit@1", "held-out hit@5",
         "held-out en @1/@5", "held-out zh @1/@5", "in-sample best weights"], table))
    return results


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--set", dest="qset", choices=("devset", "evalset", "pooled"), default="evalset",
                   help="pooled: the devset and the evalset's tune split, folds by document across both")
    p.add_argument("--split", choices=("all", "tune", "test"), default="tune")
    p.add_argument("--data", type=Path, default=None,
                   help="keep the ingested collections in DIR/data-<set>-<split> and reuse them on the next run")
    p.add_argument("--check", action="append", default=[], metavar="NAME=W,...",
                   help="also score these fixed weights as they are, e.g. bm25_chunk=0.6,vector=0.4 (repeatable)")
    args = p.parse_args(argv)
    from agent.search.retrieval import WEIGHTS

    fixed = {"product WEIGHTS": dict(WEIGHTS)}
    for i, check in enumerate(args.check):
        fixed[f"--check {i + 1}"] = {k: float(v) for k, v in (kv.split("=") for kv in check.split(","))}
    from agent.evaluate import load_questions
    from agent.search.embeddings import LocalEmbeddings

    name = f"{NAME}-{args.qset}" + (f"-{args.split}" if args.qset == "evalset" else "")
    run = Run(name, args, argv if argv is not None else sys.argv[1:])
    sets = [("devset", "all"), ("evalset", "tune")] if args.qset == "pooled" else [(args.qset, args.split)]
    chosen = [(qset, split, *_question_set(qset, split, None, load_questions)) for qset, split in sets]
    set_blas_threads(1)
    run.params = {"fixed": fixed, "set": args.qset, "split": args.split,
                  "files": [p.name for *_, pdfs, _ in chosen for p in pdfs],
                  "questions": sum(len(qs) for *_, qs in chosen),
                  "grid": GRID_BASE, "ideas": IDEAS, "short_terms": SHORT_TERMS, "prf": [PRF_PAGES, PRF_TERMS],
                  "objective": "(hit@1 + hit@5) / 2, leave one document out"}
    emb = LocalEmbeddings()
    rows = []
    for qset, split, pdfs, questions in chosen:  # pooled: one collection per set, folds by document across both
        with tempfile.TemporaryDirectory(prefix="bench-cv-") as tmp:
            collection = cached_collection(pdfs, (args.data or Path(tmp)) / f"data-{qset}-{split}", emb, run)
            rows += [{**r, "set": f"{qset}:{split}"} for r in collect(questions, collection, emb, run)]
    run.results = report(rows, run, fixed)
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
