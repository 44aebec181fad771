"""What parsing untrusted PDFs in a memory-limited child process costs (issue 14.4).

Same run, interleaved round by round: `parse_pdf` in this process (before) against
`parse_in_child` (after: a fork of the fork server per file), no OCR, on every readable devset
PDF, after one first parse that starts the fork server (timed alone); a one-page scan with
OCR (the child loads the OCR engine for each file, this process once); then `ingest_file`
(LocalEmbeddings, a fresh collection per round) of the ingest bench's handful with the parse
step either way; and the bomb check alone per file.

    python -m bench.pdf_child            # 3 rounds
    python -m bench.pdf_child --quick    # 1 round, 3 small PDFs, no ingest
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Run, markdown_table, median, parser, set_blas_threads
from tests.support import DEVSET_PDFS

NAME = "pdf_child"
HANDFUL = ["squad_Apollo_program.pdf", "squad_Steam_engine.pdf", "cmrc2018_wiki_zh_sample.pdf", "health.pdf",
           "zen_of_python_corrupted.pdf", "asymptote-manual-zh-cn.pdf"]
QUICK = ["squad_Geology.pdf", "health.pdf", "cmrc2018_DEV_468.pdf"]
LIMITS: dict[str, Any] = {"max_bytes": 1 << 30, "max_pages": 100_000, "ocr": False}


def readable(files: list[Path]) -> list[Path]:
    from agent.errors import DocumentError
    from agent.ingest.parse import parse_pdf

    out = []
    for path in files:
        try:
            parse_pdf(path, **LIMITS)
            out.append(path)
        except DocumentError:
            pass
    return out


def timed(work, *args: Any, **kwargs: Any) -> float:
    started = time.perf_counter()
    work(*args, **kwargs)
    return time.perf_counter() - started


def parse_rounds(files: list[Path], rounds: int, options: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    from agent.ingest._child import parse_in_child
    from agent.ingest._pdf_budget import check_inflation
    from agent.ingest.parse import parse_pdf

    times: dict[str, dict[str, list[float]]] = {p.name: {"in": [], "child": [], "check": []} for p in files}
    for _ in range(rounds):
        for path in files:
            times[path.name]["in"].append(timed(parse_pdf, path, **options))
            times[path.name]["child"].append(timed(parse_in_child, path, **options))
            times[path.name]["check"].append(timed(check_inflation, path))
    return times


def scan_pdf(folder: Path) -> Path:
    from tests.test_parse import SCAN_LINES, make_scan_pdf

    return make_scan_pdf(folder / "scan.pdf", SCAN_LINES)


def ingest_all(pipeline: Any, files: list[Path], collection: Any, emb: Any, settings: Any) -> None:
    for path in files:
        result = pipeline.ingest_file(path, collection, emb, settings)
        if not result.ok:
            raise RuntimeError(f"{path.name}: {result.message}")


def ingest_rounds(files: list[Path], rounds: int) -> dict[str, list[float]]:
    from agent.config import Settings
    from agent.ingest import pipeline
    from agent.ingest.parse import parse_pdf
    from agent.search.embeddings import LOCAL_MODEL_ID, LocalEmbeddings
    from agent.search.store import Collection

    emb = LocalEmbeddings()
    in_child = pipeline.parse_in_child
    ways = {"in": lambda path, **kw: parse_pdf(path, **kw), "child": in_child}
    times: dict[str, list[float]] = {"in": [], "child": []}
    try:
        for _ in range(rounds):
            for way, parse in ways.items():
                pipeline.parse_in_child = parse
                with tempfile.TemporaryDirectory(prefix="bench-pdf-child-") as tmp:
                    data = Path(tmp)
                    collection = Collection(data, "default", emb, LOCAL_MODEL_ID)
                    settings = Settings(data_dir=data)
                    times[way].append(timed(ingest_all, pipeline, files, collection, emb, settings))
    finally:
        pipeline.parse_in_child = in_child
    return times


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    run = Run(NAME, args, argv if argv is not None else sys.argv[1:])
    set_blas_threads(1)
    rounds = args.repeats or (1 if args.quick else 3)
    names = QUICK if args.quick else sorted(p.name for p in DEVSET_PDFS.glob("*.pdf"))
    files = readable([DEVSET_PDFS / n for n in names])
    run.params = {"rounds": rounds, "files": [p.name for p in files], "ocr": False, "blas_threads": 1}
    from agent.ingest._child import parse_in_child

    first = timed(parse_in_child, files[0], **LIMITS)
    times = parse_rounds(files, rounds, LIMITS)
    rows = []
    for name, t in times.items():
        before, after = median(t["in"]), median(t["child"])
        rows.append([name, before, after, after - before, median(t["check"])])
    total = [sum(r[i] for r in rows) for i in (1, 2, 4)]
    rows.append([f"all {len(rows)} files", total[0], total[1], total[1] - total[0], total[2]])
    with tempfile.TemporaryDirectory(prefix="bench-pdf-child-") as tmp:
        scan = parse_rounds([scan_pdf(Path(tmp))], rounds, {**LIMITS, "ocr": True})["scan.pdf"]
    rows.append(["a one-page scan, with OCR", median(scan["in"]), median(scan["child"]),
                 median(scan["child"]) - median(scan["in"]), median(scan["check"])])
    run.results["parse"] = {"per_file": times, "total_in_s": total[0], "total_child_s": total[1],
                            "overhead_per_file_s": median([r[3] for r in rows[:-2]]), "first_child_s": first,
                            "scan_ocr": scan}
    run.table(f"Parse, seconds (median of {rounds}; no OCR but the scan)", markdown_table(
        ["file", "in process s", "child process s", "added s", "of which bomb check s"], rows, align="lrrrr"))
    run.table("First parse of the process (starts the fork server)", markdown_table(
        ["file", "s"], [[files[0].name, first]], align="lr"))
    if not args.quick:
        run.log("ingest")
        handful = [DEVSET_PDFS / n for n in HANDFUL]
        ingest = ingest_rounds(handful, rounds)
        before, after = median(ingest["in"]), median(ingest["child"])
        run.results["ingest_handful"] = {**ingest, "added_pct": 100 * (after / before - 1)}
        run.table(f"Ingest of the handful ({len(handful)} PDFs, LocalEmbeddings), seconds (median of {rounds})",
                  markdown_table(["parse step", "s", "vs in process"],
                                 [["in process (before)", before, "+0%"],
                                  ["child process (after)", after, f"{100 * (after / before - 1):+.0f}%"]],
                                 align="lrr"))
    run.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
