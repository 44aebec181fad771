"""Retrieval over scanned documents: the tune-split questions of four evalset documents, searched over the text
PDFs, over scanned copies read by the product's OCR, and over the same scans without `ocr_spacing.respace`.

Each document is scanned as the test split's lppl-scan.pdf is (`bench.ocr.scanned_pdf`: 300 dpi grey, skew, blur,
noise) and ingested by the product pipeline into its own collection per variant. Parsing runs in this process
(`parse_pdf`, as the product's child process would run it) so that the OCR text can be read once and reused by
the raw variant. Tune-split documents only: the scans teach what OCR costs retrieval without reading the test split.

    python -m bench.scan_quality            # 4 documents, 81 pages, 50 questions: ~10 min (OCR once)
    python -m bench.scan_quality --quick    # groff-pdfmark only (17 pages, 13 questions)
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from bench.common import Goal, Run, markdown_table, parser, set_blas_threads
from bench.ocr import scanned_copy
from bench.quality import _question_set, ingest_all

NAME = "scan_quality"
DOCUMENTS = ["groff-pdfmark.pdf", "crc-doc.pdf", "fontconfig-user.pdf", "tlmgr-intro-zh-cn.pdf"]
SEED = 29
VARIANTS = ("text", "scan", "scan, no respace")


def scan_copies(pdfs: Sequence[Path], dest: Path) -> list[Path]:
    """An image-only scan of each PDF, under the same file name in `dest` (so the questions' gold pages hold)."""
    dest.mkdir(parents=True, exist_ok=True)
    return [scanned_copy(pdf, dest / pdf.name, SEED) for pdf in pdfs]


@contextmanager
def in_process_ocr(seen: dict[str, str], respaced: bool) -> Iterator[None]:
    """Parse in this process; `recognise` answers from `seen` (image digest -> raw OCR text) or fills it."""
    from agent.ingest import ocr, parse

    real = ocr.recognise

    def recognise(engine: Any, image: Any) -> str:
        key = hashlib.sha256(image.tobytes()).hexdigest()
        if key not in seen:
            seen[key] = real(engine, image)
        return seen[key]

    def parse_here(path: Any, *, progress: Callable[..., None] | None = None, **options: Any) -> Any:
        return parse.parse_pdf(path, progress=progress, **options)

    with ExitStack() as stack:
        stack.enter_context(mock.patch("agent.ingest.pipeline.parse_in_child", parse_here))
        stack.enter_context(mock.patch.object(ocr, "recognise", recognise))
        if not respaced:
            stack.enter_context(mock.patch.object(ocr, "respace", lambda text: text))
        yield


def measure(variant: str, pdfs: Sequence[Path], questions: list[Any], emb: Any, run: Run, tmp: Path,
            seen: dict[str, str]) -> dict[str, Any]:
    """Ingest `pdfs` into a fresh collection and score the questions in the three modes."""
    from agent.evaluate import evaluate
    from agent.search.retrieval import search

    t0 = time.perf_counter()
    with in_process_ocr(seen, respaced=variant != "scan, no respace"):
        collection, ingested = ingest_all(list(pdfs), tmp / variant.replace(" ", "_").replace(",", ""), emb, run)
    seconds = time.perf_counter() - t0
    report = evaluate(questions, lambda q, mode, k: search(q, [collection], embeddings=emb, k=k, mode=mode), (1, 5))
    return {"variant": variant, "ingest_seconds": seconds, "ocr_pages": sum(r["ocr_pages"] for r in ingested),
            "rows": [{**r.__dict__, "hits": {str(k): v for k, v in r.hits.items()}} for r in report.rows],
            "per_question": report.per_question}


def _cell(result: dict[str, Any], mode: str, group: str) -> str:
    row = next((r for r in result["rows"] if r["mode"] == mode and r["group"] == group), None)
    return f"{row['hits']['1']:.3f} / {row['hits']['5']:.3f}" if row else "–"


def main(argv: Sequence[str] | None = None) -> None:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    from agent.evaluate import load_questions
    from agent.search.embeddings import LocalEmbeddings

    run = Run(NAME, args, argv)
    names = DOCUMENTS[:1] if args.quick else DOCUMENTS
    texts, questions = _question_set("evalset", "tune", names, load_questions)
    run.params = {"documents": names, "questions": len(questions), "seed": SEED, "split": "tune",
                  "variants": list(VARIANTS)}
    set_blas_threads(1)
    emb, seen, results = LocalEmbeddings(), {}, []
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        scans = scan_copies(texts, Path(tmp) / "scans")
        for variant in VARIANTS:
            results.append(measure(variant, texts if variant == "text" else scans, questions, emb, run,
                                   Path(tmp), seen))
            run.log(f"{variant}: hybrid {_cell(results[-1], 'hybrid', 'all')}")
    run.results = {"variants": results}
    cells = [("hybrid", "all"), ("bm25", "all"), ("vector", "all"), ("hybrid", "lang:en"), ("hybrid", "lang:zh")]
    run.table("Hit@1 / hit@5 (tune-split questions of these documents only)", markdown_table(
        ["variant", "ingest s", "OCR pages"] + [f"{m} {g}" for m, g in cells],
        [[r["variant"], r["ingest_seconds"], r["ocr_pages"]] + [_cell(r, m, g) for m, g in cells] for r in results]))
    hits = {r["variant"]: next(x["hits"]["5"] for x in r["rows"] if x["mode"] == "hybrid" and x["group"] == "all")
            for r in results}
    run.goals = [Goal("hybrid hit@5: scan with respace - scan without", hits["scan"] - hits["scan, no respace"],
                      ">=", 0.0)]
    run.finish()


if __name__ == "__main__":
    main()
