"""Issue 16, fusion and query side: do the fusion's scores transfer to unseen documents? Cross-validated by document.

Every question's page signals are computed once with the product's pipeline (`retrieval.page_signals` over
a collection built by `agent.ingest`, as in bench/cv_sweep.py), each scaled signal (chunk BM25, page BM25,
vector) in several per-query normalisations, chunk and page BM25 under a grid of k1 and b and with Chinese cut
by jieba (when importable). A family is a grid of weight vectors over these columns (the raw signals, title,
contents, heading, title_match, definition, keep their product weights unless the family is about them); it is
scored like cv_sweep: leave one document out, each fold's setting chosen on the other documents by (hit@1 +
hit@5) / 2 and scored on the one left out (held-out), next to the best setting chosen and scored on all (in-sample).

Normalisations (per query, per signal, over every page of the collection): `z` the product's (mean and std of
the signal's best 100 pages; `z<N>`: of its best N); `zc` mean and std over the candidate pages (pages with any
evidence); `max` min-max to 0..1; `rrf<k>` k / (k + rank among the candidates), reciprocal-rank fusion.
The learned rankers (pairwise logistic, listwise softmax; numpy, L2 chosen by an inner CV by document on the
training documents) use the product's features and are trained per fold on the other documents.

    python -m bench.cv_rank --set pooled --data DIR              # devset + tune split, folds by document
    python -m bench.cv_rank --set evalset --split tune --data DIR
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Run, git_commit, markdown_table, parser, set_blas_threads
from bench.cv_common import PRODUCT, RAW, cached_collection, candidates, cross_validate, hits, weight_vector
from bench.quality import _question_set

NAME = "cv_rank"
SCALED = ("bm25_chunk", "bm25_page", "vector")
#: the product's other z-scored signals, taken as the product computes them
PLAIN_Z = tuple(name for name in PRODUCT if name not in RAW and name not in SCALED)
RRF_K = (5, 10, 20, 60)
SEGMENTERS = ("jieba+bigrams", "jieba")  # Chinese: dictionary words next to / instead of the bigrams
Z_TOPS = (10, 25, 50, 200, 400)  # the product's z over its best 100 pages, against other numbers of pages
NORMS = ("z", "zc", "max", *(f"rrf{k}" for k in RRF_K), *(f"z{n}" for n in Z_TOPS))
K1S, BS = (0.2, 0.3, 0.45, 0.6, 0.9, 1.2, 1.6), (0.1, 0.3, 0.5, 0.75, 0.9)
BM25_GRID = tuple(itertools.product(K1S, BS))
TITLED = ("heading", "title_match")  # the raw title signals, also tried normalised per query
FEATURES = (*RAW, *PLAIN_Z, *(f"{s}:{n}" for s in SCALED for n in NORMS), *(f"{s}:{n}" for s in TITLED for n in ("max", "zc")),
            *(f"{s}:k{k1:g}b{b:g}" for s in ("bm25_chunk", "bm25_page") for k1, b in BM25_GRID),
            *(f"{s}:{seg}" for s in ("bm25_chunk", "bm25_page") for seg in SEGMENTERS))
#: weight ratios of (chunk BM25, page BM25, vector) and the scales tried for each normalisation
RATIOS = tuple(itertools.product((0.0, 0.2, 0.4, 0.6), (0.0, 0.2, 0.4, 0.6), (0.1, 0.2, 0.4, 0.6)))
SCALES = {"z": (0.5, 1.0, 2.0), "zc": (0.5, 1.0, 2.0), **{f"z{n}": (0.5, 1.0, 2.0) for n in Z_TOPS},
          "max": (1.0, 2.0, 4.0, 8.0), **{f"rrf{k}": (1.0, 2.0, 4.0, 8.0) for k in RRF_K}}
LAMBDAS = (1e-4, 1e-3, 0.01, 0.1, 1.0)  # L2 of the learned rankers, chosen per fold by an inner CV
INNER_FOLDS = 4  # the inner CV: training documents in this many groups
PAIR_TOP = 50  # pairs: each gold page against the non-gold candidates among the product's best PAIR_TOP


def _minmax(values: np.ndarray) -> np.ndarray:
    """Min-max to 0..1 over every page (0 where the signal is flat)."""
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi - lo > 1e-12 else np.zeros_like(values)


def _zc(values: np.ndarray) -> np.ndarray:
    """z-score over the given (candidate) pages."""
    std = float(values.std())
    return (values - values.mean()) / std if std > 1e-12 else np.zeros_like(values)


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based rank, ties sharing the best rank (a page without the signal ties with the others at the floor)."""
    order = np.sort(values)[::-1]
    return np.searchsorted(-order, -values, side="left") + 1.0


def normalised(values: np.ndarray, cand: np.ndarray) -> dict[str, np.ndarray]:
    """The signal's columns (on the candidate pages) in every normalisation of NORMS."""
    from agent.search.retrieval import _zscore

    out = {"z": _zscore(values)[cand], "zc": _zc(values[cand]), "max": _minmax(values)[cand]}
    out.update({f"z{n}": _zscore(values, top=n)[cand] for n in Z_TOPS})
    ranks = _ranks(values[cand])
    out.update({f"rrf{k}": k / (k + ranks) for k in RRF_K})
    return out


def bm25_variants(ix: Any, lexicon: Any) -> dict[tuple[float, float], tuple[Any, Any]]:
    """(k1, b) -> chunk and page BM25 indexes of the collection's counts with these parameters."""
    from agent.search.lexical import BM25Index

    return {(k1, b): (BM25Index.from_counts(lexicon.chunks, lexicon.vocabulary, k1=k1, b=b),
                      BM25Index.from_counts(lexicon.pages, lexicon.vocabulary, k1=k1, b=b)) for k1, b in BM25_GRID}


def segmented_tokenizer(keep_bigrams: bool) -> Callable[[str], list[str]]:
    """The product's tokenizer with each run of Chinese text cut by jieba's dictionary: its words (as terms
    of their own, "w:" before them) next to the unigrams and bigrams, or next to the unigrams only."""
    import jieba

    from agent.search import tokens

    jieba.setLogLevel(60)

    def tokenize(text: str) -> list[str]:
        out: list[str] = []
        for tok in tokens._TOKEN.findall(tokens.normalise(text)):
            if not tokens._CJK_RUN.fullmatch(tok):
                cached = tokens._WORD_TERMS.get(tok)
                out.extend(tokens._word_terms(tok) if cached is None else cached)
                continue
            out.extend(tok)
            if keep_bigrams:
                out.extend(tok[i:i + 2] for i in range(len(tok) - 1))
            out.extend(f"w:{w}" for w in jieba.lcut(tok, HMM=True) if len(w) > 1)
        return out
    return tokenize


def segmented_bm25(ix: Any, tokenize: Callable[[str], list[str]], run: Run) -> tuple[Any, Any]:
    """Chunk and page BM25 of the collection under `tokenize` (counted here; the ingest-time cost is logged)."""
    from agent.search.lexical import BM25Index, TermCounts, Vocabulary, page_groups, page_text

    vocab, t0 = Vocabulary(), time.perf_counter()

    def count(text: str) -> tuple[np.ndarray, np.ndarray]:
        c = Counter(tokenize(text))
        return np.array([vocab.id_for(t) for t in c], dtype=np.int32), np.array(list(c.values()), dtype=np.uint16)

    docs = [ix.documents[i] for i in range(len(ix.documents))]
    chunks = TermCounts.assemble([count(d.page_content) for d in docs])
    pages = TermCounts.assemble([count(page_text([docs[i] for i in m])) for m in page_groups(docs)[1]])
    run.log(f"segmented counts of {len(docs)} chunks and their pages: {time.perf_counter() - t0:.2f} s")
    return BM25Index.from_counts(chunks, vocab), BM25Index.from_counts(pages, vocab)


def segmenter_available() -> bool:
    """Whether jieba can be imported (it is not a requirement of the product)."""
    return importlib.util.find_spec("jieba") is not None


def collect(questions: Sequence[Any], collection: Any, emb: Any, run: Run) -> list[dict[str, Any]]:
    """Per question: the FEATURES of its candidate pages (pages with any evidence) and the gold mask."""
    from agent.search.keyword_index import collection_index
    from agent.search.lexical import Lexicon
    from agent.search.retrieval import _zscore, page_signals
    from agent.search.tokens import _ZH_QUESTION, normalise, query_terms

    ix = collection_index(collection)
    snap = collection.snapshot()
    lexicon = snap.lexicon if snap.lexicon is not None and snap.lexicon.fits(ix.documents, ix.pages.rows) \
        else Lexicon.build(ix.documents)
    variants, keys, rows = bm25_variants(ix, lexicon), ix.pages.keys(), []
    segmented = {seg: (tok, *segmented_bm25(ix, tok, run)) for seg, tok in
                 (("jieba+bigrams", segmented_tokenizer(True)), ("jieba", segmented_tokenizer(False)))} \
        if segmenter_available() else {}
    for i, q in enumerate(questions):
        ps = page_signals(q.question, [collection], embeddings=emb, lexical=True, vector=True)
        assert ps is not None
        terms, pages = query_terms(q.question), ps.view.pages
        raw = {name: ps.pages.get(name, np.zeros(pages)) for name in PRODUCT}
        cand = candidates(ps, raw)
        cols = {name: raw[name][cand] for name in RAW}
        cols.update({name: _zscore(raw[name])[cand] for name in PLAIN_Z})
        for s in TITLED:
            cols.update({f"{s}:max": _minmax(raw[s])[cand], f"{s}:zc": _zc(raw[s][cand])})
        for s in SCALED:
            cols.update({f"{s}:{n}": v for n, v in normalised(raw[s], cand).items()})
        for (k1, b), (chunk, page) in variants.items():
            cols[f"bm25_chunk:k{k1:g}b{b:g}"] = _zscore(ps.view.page_max(chunk.scores(terms).astype(np.float64)))[cand]
            cols[f"bm25_page:k{k1:g}b{b:g}"] = _zscore(page.scores(terms).astype(np.float64))[cand]
        for seg, (tok, chunk, page) in segmented.items():
            seg_terms = tok(_ZH_QUESTION.sub(",", normalise(q.question)))
            cols[f"bm25_chunk:{seg}"] = _zscore(ps.view.page_max(chunk.scores(seg_terms).astype(np.float64)))[cand]
            cols[f"bm25_page:{seg}"] = _zscore(page.scores(seg_terms).astype(np.float64))[cand]
        for seg in SEGMENTERS:
            cols.setdefault(f"bm25_chunk:{seg}", np.zeros(len(cand)))
            cols.setdefault(f"bm25_page:{seg}", np.zeros(len(cand)))
        rows.append({"id": q.id, "file": q.file, "lang": q.lang, "z": np.stack([cols[f] for f in FEATURES], axis=1),
                     "gold": np.array([keys[int(p)] in q.gold for p in cand])})
        if i % 50 == 0:
            run.log(f"signals {i + 1}/{len(questions)}")
    return rows


def product_weights() -> dict[str, float]:
    """The product's WEIGHTS on the product's columns (`z` normalisation, default BM25)."""
    from agent.search.retrieval import WEIGHTS

    return {(f"{k}:z" if k in SCALED else k): v for k, v in WEIGHTS.items()}


def norm_grid(norms: Sequence[str]) -> np.ndarray:
    """The three scaled signals in normalisation(s) `norms`: every ratio x scale, raw signals at product weights."""
    out, raw = [], {k: v for k, v in product_weights().items() if k in RAW or k in PLAIN_Z}
    for norm in norms:
        for ratio, scale in itertools.product(RATIOS, SCALES[norm]):
            out.append(weight_vector({**raw, **{f"{s}:{norm}": scale * r for s, r in zip(SCALED, ratio)}}, FEATURES))
    return np.array(out)


def title_grids() -> dict[str, np.ndarray]:
    """The raw title signals against the text ones: the text weights scaled, the two title weights refit
    jointly, and the title signals normalised per query (divided by the query's max; z over the candidates)."""
    base = product_weights()
    scaled = [{**base, **{f"{s}:z": base[f"{s}:z"] * f for s in SCALED}} for f in (0.5, 0.75, 1, 1.25, 1.5, 2, 3)]
    joint = [{**base, "heading": h, "title_match": t} for h in (0, 0.5, 1, 2, 4) for t in (0, 1, 2, 4, 6, 8)]
    text = {k: v for k, v in base.items() if k not in TITLED}
    normed = {n: [{**text, f"heading:{n}": h, f"title_match:{n}": t} for h in grid for t in grid]
              for n, grid in {"max": (0, 0.5, 1, 2, 4), "zc": (0, 0.1, 0.2, 0.4, 0.8)}.items()}
    return {"text signals scaled against the raw ones": np.array([weight_vector(w, FEATURES) for w in scaled]),
            "heading and title_match weights refit jointly": np.array([weight_vector(w, FEATURES) for w in joint]),
            **{f"heading and title_match {n}-normalised per query": np.array([weight_vector(w, FEATURES) for w in ws])
               for n, ws in normed.items()}}


def bm25_grid(chunk: bool, page: bool, page_b: float | None = None) -> np.ndarray:
    """The product's weights with chunk and/or page BM25 taken from the (k1, b) grid (`page_b`: pages' b kept at
    that value, their k1 alone from the grid)."""
    base, out = product_weights(), []
    cks = BM25_GRID if chunk else [(1.2, 0.75)]
    pgs = [(k1, page_b) for k1 in K1S] if page_b is not None else BM25_GRID if page else [(1.2, 0.75)]
    for (ck, cb), (pk, pb) in itertools.product(cks, pgs):
        w = {k: v for k, v in base.items() if k not in ("bm25_chunk:z", "bm25_page:z")}
        w[f"bm25_chunk:k{ck:g}b{cb:g}"] = base["bm25_chunk:z"]
        w[f"bm25_page:k{pk:g}b{pb:g}"] = base["bm25_page:z"]
        out.append(weight_vector(w, FEATURES))
    return np.array(out)


def families() -> dict[str, np.ndarray]:
    """Family name -> its weight grid (rows over FEATURES)."""
    out = {"z (product normalisation), weights refit": norm_grid(["z"]),
           "z over the candidate pages": norm_grid(["zc"]), "min-max (divide by the query's max)": norm_grid(["max"])}
    out.update({f"reciprocal rank, k = {k}": norm_grid([f"rrf{k}"]) for k in RRF_K})
    out["reciprocal rank, k by CV"] = norm_grid([f"rrf{k}" for k in RRF_K])
    out["normalisation by CV (z, zc, max, rrf, z of N)"] = norm_grid(NORMS)
    base = product_weights()
    out["z over the best N pages, N by CV (product weights)"] = np.array(
        [weight_vector({**{k: v for k, v in base.items() if k in RAW or k in PLAIN_Z},
                        **{f"{s}:{n}": base[f"{s}:z"] for s in SCALED}}, FEATURES)
         for n in ("z", *(f"z{n}" for n in Z_TOPS))])
    out["z over the best N pages, N and weights by CV"] = norm_grid(["z", *(f"z{n}" for n in Z_TOPS)])
    out.update(title_grids())
    out["contents penalty refit"] = np.array([weight_vector({**base, "contents": w}, FEATURES)
                                              for w in (0, -0.5, -1, -2, -3, -4, -6, -8)])
    out["BM25 k1, b of chunks"] = bm25_grid(True, False)
    out["BM25 k1, b of pages"] = bm25_grid(False, True)
    out["BM25 k1 of pages (b 0.75)"] = bm25_grid(False, True, page_b=0.75)
    out["BM25 k1, b of chunks and pages"] = bm25_grid(True, True)
    if segmenter_available():
        for seg in SEGMENTERS:
            out[f"Chinese words by jieba ({seg}) or bigrams, by CV"] = segmenter_grid(seg)
    return out


def segmenter_grid(seg: str) -> np.ndarray:
    """Two settings: the product's BM25 columns, or the same weights on the columns tokenised with `seg`."""
    base = product_weights()
    swapped = {(f"{k.split(':')[0]}:{seg}" if k in ("bm25_chunk:z", "bm25_page:z") else k): v for k, v in base.items()}
    return np.array([weight_vector(base, FEATURES), weight_vector(swapped, FEATURES)])


# ---------------------------------------------------------------- learned ranker

RANKER_FEATURES = (*RAW, "bm25_chunk:z", "bm25_page:z", "vector:z")


def _pairs(rows: Sequence[dict[str, Any]], cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Difference vectors (gold minus other) of each question's pairs, their question index and weight
    (each question weighs 1 in all, however many pairs it has)."""
    prod = np.array(weight_vector(product_weights(), FEATURES))
    diffs, owner, weight = [], [], []
    for i, r in enumerate(rows):
        if not r["gold"].any() or r["gold"].all():
            continue
        top = np.argsort(-(r["z"] @ prod), kind="stable")[:PAIR_TOP]
        gold, other = top[r["gold"][top]], top[~r["gold"][top]]
        if not len(gold):
            gold = np.flatnonzero(r["gold"])[:1]
        x = r["z"][:, cols]
        d = (x[gold][:, None, :] - x[other][None, :, :]).reshape(-1, len(cols))
        diffs.append(d)
        owner.append(np.full(len(d), i))
        weight.append(np.full(len(d), 1.0 / len(d)))
    return np.concatenate(diffs), np.concatenate(owner), np.concatenate(weight)


def fit_pairwise(diffs: np.ndarray, weight: np.ndarray, lam: float, steps: int = 30) -> np.ndarray:
    """L2-regularised logistic regression on pair differences (no intercept), by Newton's method."""
    w = np.zeros(diffs.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(diffs @ w, -30, 30)))
        grad = diffs.T @ (weight * (p - 1.0)) + lam * w
        hess = (diffs * (weight * p * (1 - p))[:, None]).T @ diffs + lam * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def _lists(rows: Sequence[dict[str, Any]], cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each question's candidates among the product's best PAIR_TOP (and its gold pages) stacked: features,
    gold mask, question index (only questions with a gold candidate and a non-gold one)."""
    prod = np.array(weight_vector(product_weights(), FEATURES))
    xs, golds, owner = [], [], []
    for i, r in enumerate(rows):
        if not r["gold"].any() or r["gold"].all():
            continue
        keep = np.zeros(len(r["gold"]), dtype=bool)
        keep[np.argsort(-(r["z"] @ prod), kind="stable")[:PAIR_TOP]] = True
        keep |= r["gold"]
        xs.append(r["z"][keep][:, cols])
        golds.append(r["gold"][keep])
        owner.append(np.full(int(keep.sum()), i))
    return np.concatenate(xs), np.concatenate(golds), np.concatenate(owner)


def fit_listwise(x: np.ndarray, gold: np.ndarray, owner: np.ndarray, lam: float, steps: int = 150) -> np.ndarray:
    """L2-regularised softmax (ListNet-style) ranker: each question's probability mass on its gold pages among
    its candidates, maximised by gradient descent with a backtracking step (`owner` ascending)."""
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    seg = np.cumsum(np.r_[True, owner[1:] != owner[:-1]]) - 1
    n = len(starts)

    def loss_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = x @ w
        e = np.exp(s - np.maximum.reduceat(s, starts)[seg])
        p = e / np.add.reduceat(e, starts)[seg]
        mass = np.maximum(np.add.reduceat(p * gold, starts), 1e-300)
        q = p * gold / mass[seg]
        return -float(np.log(mass).sum()) / n + 0.5 * lam * float(w @ w), (p - q) @ x / n + lam * w

    w, step = np.zeros(x.shape[1]), 1.0
    loss, grad = loss_grad(w)
    for _ in range(steps):
        new = w - step * grad
        new_loss, new_grad = loss_grad(new)
        if new_loss > loss:
            step /= 2
            if step < 1e-6:
                break
            continue
        w, loss, grad, step = new, new_loss, new_grad, step * 1.5
    return w


def ranker_cv(rows: Sequence[dict[str, Any]], run: Run, method: str) -> dict[str, Any]:
    """Leave one document out: per fold the ranker ("pairwise" or "listwise"; its L2 chosen by an inner
    INNER_FOLDS-fold CV by document on the training documents) fitted on the other documents, scored on the
    one left out; in-sample: fitted and scored on all."""
    cols = np.array([FEATURES.index(f) for f in RANKER_FEATURES])
    if method == "pairwise":
        diffs, owner, weight = _pairs(rows, cols)
    else:
        x, gold, owner = _lists(rows, cols)
    files = np.array([r["file"] for r in rows])

    def fitted(train: np.ndarray, lam: float) -> np.ndarray:
        keep = train[owner]
        w = fit_pairwise(diffs[keep], weight[keep], lam) if method == "pairwise" \
            else fit_listwise(x[keep], gold[keep], owner[keep], lam)
        out = np.zeros(len(FEATURES))
        out[cols] = w
        return out

    def choose(train: np.ndarray) -> float:
        names = sorted(set(files[train]))
        score = np.zeros(len(LAMBDAS))
        for k in range(INNER_FOLDS):
            part = np.isin(files, names[k::INNER_FOLDS])
            ws = np.array([fitted(train & ~part, lam) for lam in LAMBDAS])
            score += hits([rows[i] for i in np.flatnonzero(part & train)], ws).mean(axis=2).sum(axis=0)
        return LAMBDAS[int(np.argmax(score))]

    held = np.zeros((len(rows), 2))
    chosen = {}
    for f in sorted(set(files)):
        train = files != f
        lam = choose(train)
        w = fitted(train, lam)
        held[~train] = hits([rows[i] for i in np.flatnonzero(~train)], w[None])[:, 0]
        chosen[f] = (lam, w)
        run.log(f"{method} ranker fold {f}: lambda {lam:g}, " + _w(w))
    lam = choose(np.ones(len(rows), dtype=bool))
    w = fitted(np.ones(len(rows), dtype=bool), lam)
    return {"held": held, "in": hits(rows, w[None])[:, 0], "in_weights": w, "chosen": chosen}


# ---------------------------------------------------------------- report

def _w(vec: np.ndarray) -> str:
    return " ".join(f"{f}={v:.3g}" for f, v in zip(FEATURES, vec) if abs(v) > 1e-9)


def _cell(h: np.ndarray, mask: np.ndarray) -> str:
    return f"{h[mask, 0].mean():.3f}/{h[mask, 1].mean():.3f}" if mask.any() else "-"


def report(rows: list[dict[str, Any]], run: Run, rankers: bool = True) -> dict[str, Any]:
    """Product as it is, each family cross-validated, the learned ranker; per set and language."""
    sets = np.array([r["set"] for r in rows])
    langs = np.array([r["lang"] for r in rows])
    groups = [(st, sets == st) for st in sorted(set(sets))] + [(lg, langs == lg) for lg in ("en", "zh")]
    if len(set(sets)) > 1:
        groups.insert(0, ("all", np.ones(len(rows), dtype=bool)))
    head = ["family", *(f"{g} {kind}" for g, _ in groups for kind in ("in", "held")), "in-sample best"]
    prod = np.array([weight_vector(product_weights(), FEATURES)])
    h = hits(rows, prod)[:, 0]
    table = [["product (fixed)", *(c for _, m in groups for c in (_cell(h, m), _cell(h, m))), _w(prod[0])]]
    results: dict[str, Any] = {"product": {g: _cell(h, m) for g, m in groups}}
    for seg in SEGMENTERS if segmenter_available() else ():
        h = hits(rows, segmenter_grid(seg)[1:])[:, 0]
        table.append([f"Chinese words by {seg} (fixed)", *(c for _, m in groups for c in (_cell(h, m), "-")), ""])
        results[f"{seg} (fixed)"] = {g: _cell(h, m) for g, m in groups}
    cvs = {name: cross_validate(rows, grid) for name, grid in families().items()}
    for method in ("pairwise", "listwise") if rankers else ():
        cvs[f"{method} ranker (product features)"] = ranker_cv(rows, run, method)
    for name, cv in cvs.items():
        table.append([name, *(c for _, m in groups for c in (_cell(cv["in"], m), _cell(cv["held"], m))),
                      _w(cv["in_weights"])])
        folds = {f: (w if isinstance(w, np.ndarray) else w[1]) for f, w in cv["chosen"].items()}
        results[name] = {"in": {g: _cell(cv["in"], m) for g, m in groups},
                         "held": {g: _cell(cv["held"], m) for g, m in groups},
                         "in_weights": _w(cv["in_weights"]), "folds": {f: _w(w) for f, w in folds.items()}}
        run.log(f"{name}: folds chose " + "; ".join(f"{f}: {_w(w)}" for f, w in folds.items()))
    run.table("Leave one document out: hybrid hit@1/hit@5 in-sample (in) and held-out (held)",
              markdown_table(head, table))
    return results


def save_rows(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The collected rows as one .npz (no pickle): features stacked, offsets, per-question fields."""
    sizes = [len(r["gold"]) for r in rows]
    np.savez(path, features=np.array(FEATURES), x=np.concatenate([r["z"] for r in rows]),
             gold=np.concatenate([r["gold"] for r in rows]), offsets=np.cumsum([0, *sizes]),
             **{f"q_{k}": np.array([r[k] for r in rows]) for k in ("id", "file", "lang", "set")})


def load_rows(path: Path) -> list[dict[str, Any]] | None:
    """Rows saved by `save_rows` for the same FEATURES, else None."""
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as d:
        if tuple(d["features"].tolist()) != FEATURES:
            return None
        arrays = {k: d[k] for k in d.files}  # each d[k] reads the archive anew: once each
    off = arrays["offsets"]
    return [{"z": arrays["x"][a:b], "gold": arrays["gold"][a:b],
             **{k: str(arrays[f"q_{k}"][i]) for k in ("id", "file", "lang", "set")}}
            for i, (a, b) in enumerate(zip(off[:-1], off[1:]))]


def collect_all(chosen: Sequence[tuple[str, str, list[Path], list[Any]]], data: Path | None,
                run: Run) -> list[dict[str, Any]]:
    """The rows of every question set, each over its own collection (ingested unless `data` has it)."""
    from agent.search.embeddings import LocalEmbeddings

    emb, rows = LocalEmbeddings(), []
    for qset, split, pdfs, questions in chosen:
        with tempfile.TemporaryDirectory(prefix="bench-rank-") as tmp:
            collection = cached_collection(pdfs, (data or Path(tmp)) / f"data-{qset}-{split}", emb, run)
            rows += [{**r, "set": f"{qset}:{split}"} for r in collect(questions, collection, emb, run)]
    return rows


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--set", dest="qset", choices=("devset", "evalset", "pooled"), default="pooled")
    p.add_argument("--split", choices=("tune",), default="tune", help="the evalset's test split is never read here")
    p.add_argument("--data", type=Path, default=None, help="keep the ingested collections in DIR (see cv_sweep)")
    p.add_argument("--no-rankers", action="store_true", help="leave out the learned rankers (minutes of fitting)")
    args = p.parse_args(argv)
    from agent.evaluate import load_questions

    run = Run(f"{NAME}-{args.qset}", args, argv if argv is not None else sys.argv[1:])
    sets = [("devset", "all"), ("evalset", "tune")] if args.qset == "pooled" else [(args.qset, args.split)]
    chosen = [(qset, split, *_question_set(qset, split, None, load_questions)) for qset, split in sets]
    set_blas_threads(1)
    run.params = {"set": args.qset, "files": [p.name for *_, pdfs, _ in chosen for p in pdfs],
                  "questions": sum(len(qs) for *_, qs in chosen), "norms": NORMS, "bm25_grid": BM25_GRID,
                  "ratios": RATIOS, "scales": SCALES, "lambdas": LAMBDAS, "pair_top": PAIR_TOP,
                  "objective": "(hit@1 + hit@5) / 2, leave one document out"}
    tag = f"{args.qset}-{git_commit().replace('+', '-')}{'-seg' if segmenter_available() else ''}"  # rows of this code
    cache = args.data / f"rank-rows-{tag}.npz" if args.data else None
    rows = load_rows(cache) if cache else None
    if rows is None:
        rows = collect_all(chosen, args.data, run)
        if cache:
            save_rows(rows, cache)
    run.results = report(rows, run, rankers=not args.no_rankers)
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
