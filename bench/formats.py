"""Retrieval per document format: the same devset text as PDF, DOCX, Markdown, HTML, text and PNG.

Each devset PDF's page texts (PDFium, no OCR) are written out as a DOCX / Markdown / HTML file
with one "Page N" heading per page, and as a text file whose line ranges are known per page;
the pages holding questions are also rendered to PNG (1600 px wide, one image per page) and
read back by OCR. Every format goes through `agent.ingest.pipeline.ingest_file` into its own
collection; each devset question is searched (hybrid, product defaults) and a hit is a
source at the gold page's location: the page (PDF), the "Page N" heading (DOCX/MD/HTML), a
line range inside the page's lines (text), the page's PNG file (PNG).

    python -m bench.formats            # 3 squad PDFs, ~170 questions: a few minutes
    python -m bench.formats --quick    # 1 PDF
"""

from __future__ import annotations

import html
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Run, markdown_table, page_texts, parser, set_blas_threads
from tests.support import DEVSET, DEVSET_PDFS

NAME = "formats"
FILES = ["squad_Economic_inequality.pdf", "squad_Steam_engine.pdf", "squad_Harvard_University.pdf"]
FORMATS = ("pdf", "docx", "md", "html", "txt", "png")


def _docx(pages: list[str]) -> bytes:
    import docx

    document = docx.Document()
    for n, text in enumerate(pages, 1):
        document.add_heading(f"Page {n}", level=1)
        for para in text.split("\n\n"):
            document.add_paragraph(para)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _md(pages: list[str]) -> bytes:
    return "\n\n".join(f"# Page {n}\n\n{text}" for n, text in enumerate(pages, 1)).encode()


def _html(pages: list[str]) -> bytes:
    body = "".join(f"<h1>Page {n}</h1>" + "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n"))
                   for n, text in enumerate(pages, 1))
    return f"<!doctype html><html><body><script>alert(1)</script>{body}</body></html>".encode()


def _txt(pages: list[str]) -> tuple[bytes, list[tuple[int, int]]]:
    """The text and, per page, its (first, last) line number."""
    lines: list[str] = []
    spans = []
    for text in pages:
        start = len(lines) + 1
        lines += text.split("\n") + [""]
        spans.append((start, len(lines)))
    return "\n".join(lines).encode(), spans


def _write_formats(pdf: Path, gold_pages: set[int], folder: Path) -> dict[str, Any]:
    """The converted files of one PDF (per format: paths) and the text file's page line spans."""
    from agent.app.sources import render_page_png

    pages = page_texts(pdf)
    stem = pdf.stem
    txt, spans = _txt(pages)
    files = {"pdf": [pdf]}
    for kind, data in (("docx", _docx(pages)), ("md", _md(pages)), ("html", _html(pages)), ("txt", txt)):
        path = folder / f"{stem}.{kind}"
        path.write_bytes(data)
        files[kind] = [path]
    files["png"] = []
    for n in sorted(gold_pages):
        path = folder / f"{stem}-p{n}.png"
        path.write_bytes(render_page_png(pdf, n, width=1600))
        files["png"].append(path)
    return {"files": files, "spans": spans}


def _hit(kind: str, source: dict[str, Any], q: dict[str, Any], spans: dict[str, list[tuple[int, int]]]) -> bool:
    """Whether a source is at the question's gold page in this format."""
    pages = {int(q["page"]), *map(int, q.get("alt_pages", []))}
    stem = Path(q["file"]).stem
    if not source["file"].startswith(stem):
        return False
    if kind == "pdf":
        return source["page"] in pages
    if kind == "png":
        return any(source["file"] == f"{stem}-p{p}.png" for p in pages)
    if kind == "txt":
        first, last = source.get("line_start", 0), source.get("line_end", 0)
        return any(spans[stem][p - 1][0] <= first and last <= spans[stem][p - 1][1] for p in pages)
    return str(source.get("heading", "")).split(" > ")[0] in {f"Page {p}" for p in pages}


def main(argv: list[str] | None = None) -> int:
    from agent.config import Settings
    from agent.ingest.pipeline import ingest_file
    from agent.search.embeddings import LOCAL_MODEL_ID, LocalEmbeddings
    from agent.search.retrieval import search
    from agent.search.store import Collection

    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    run = Run(NAME, args, argv if argv is not None else sys.argv[1:])
    names = FILES[:1] if args.quick else FILES
    questions = [q for q in map(json.loads, (DEVSET / "questions.jsonl").read_text().splitlines()) if q.get("file") in names]
    set_blas_threads(1)
    emb = LocalEmbeddings()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-formats-") as tmp:
        folder, data = Path(tmp) / "files", Path(tmp) / "data"
        folder.mkdir()
        settings = Settings(data_dir=data)
        converted = {n: _write_formats(DEVSET_PDFS / n, {int(q["page"]) for q in questions if q["file"] == n}, folder)
                     for n in names}
        spans = {Path(n).stem: c["spans"] for n, c in converted.items()}
        for kind in FORMATS:
            collection = Collection(data, kind, emb, LOCAL_MODEL_ID)
            t0 = time.perf_counter()
            for c in converted.values():
                for path in c["files"][kind]:
                    result = ingest_file(path, collection, emb, settings)
                    if not result.ok:
                        run.log(f"{kind} {path.name}: {result.status} {result.message}")
            ingest_s = time.perf_counter() - t0
            hits = {1: 0, 5: 0}
            for q in questions:
                sources = [h.source() for h in search(q["question"], [collection], embeddings=emb, k=5)]
                found = [_hit(kind, dict(s), q, spans) for s in sources]
                hits[1] += any(found[:1])
                hits[5] += any(found[:5])
            rows.append({"format": kind, "questions": len(questions), "chunks": len(collection.documents),
                         "hit@1": hits[1] / len(questions), "hit@5": hits[5] / len(questions),
                         "ingest_s": round(ingest_s, 1)})
            run.log(f"{kind}: {rows[-1]}")
    pdf = rows[0]
    run.results = {"files": names, "rows": rows}
    run.table("Retrieval per format (hybrid, product defaults; PNG: OCR of the gold pages only)", markdown_table(
        ["format", "questions", "chunks", "hit@1", "hit@5", "Δ hit@5 vs PDF", "ingest s"],
        [[r["format"], r["questions"], r["chunks"], f"{r['hit@1']:.3f}", f"{r['hit@5']:.3f}",
          f"{r['hit@5'] - pdf['hit@5']:+.3f}", r["ingest_s"]] for r in rows], align="lrrrrrr"))
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
