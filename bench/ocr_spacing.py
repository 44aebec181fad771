"""OCR's lost spaces: the words of a page's text layer found in the OCR text of the same page scanned,
before and after `agent.ingest.ocr_spacing.respace`.

Pages, scanned as `bench.ocr.scanned_pdf` does (300 dpi grey, skew, blur, noise), resized to the product's OCR
resolution and read by the product's engine; no test-split page is read:
- `design`: two pages of each English tune-split document of bench/evalset (a third and two thirds of the way
  in), the pages the rule of `ocr_spacing` was written on;
- `heldout`: two other pages of the same documents (half way, five sixths) and two pages of four English devset
  PDFs, never looked at before the rule was fixed.

    python -m bench.ocr_spacing --pages design     # 12 documents, 24 pages: ~3-5 min
    python -m bench.ocr_spacing --pages heldout    # 16 documents, 32 pages
    python -m bench.ocr_spacing --quick            # 2 pages
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pypdfium2

from bench.common import Goal, Run, markdown_table, parser
from bench.evalset.fetch import ensure
from bench.ocr import SCAN_DPI, render, scan_image
from tests.support import DEVSET_PDFS

NAME = "ocr_spacing"
DOCUMENTS = ["debian-faq.pdf", "R-intro.pdf", "R-FAQ.pdf", "valgrind_manual.pdf", "nettle.pdf", "lcms2-tutorial.pdf",
             "fontconfig-user.pdf", "groff-pdfmark.pdf", "libtasn1.pdf", "fduthesis-en.pdf", "crc-doc.pdf",
             "nanicolle-doc-en.pdf"]
DEVSET_DOCUMENTS = ["gnuplot.pdf", "squad_Steam_engine.pdf", "squad_Geology.pdf", "squad_Harvard_University.pdf"]
FRACTIONS = {"design": (1 / 3, 2 / 3), "heldout": (1 / 2, 5 / 6)}
SEED = 23
_WORD = re.compile(r"[a-z]{2,}")


def words(text: str) -> Counter[str]:
    """Lower-case words of two letters or more, counted."""
    return Counter(_WORD.findall(text.lower()))


def recall_precision(truth: Counter[str], got: Counter[str]) -> tuple[float, float]:
    """Share of the truth's words found in `got`, and of `got`'s words that are in the truth (multisets)."""
    common = sum((truth & got).values())
    return common / max(1, sum(truth.values())), common / max(1, sum(got.values()))


def judged_splits(raw: str, truth: Counter[str]) -> Counter[str]:
    """Each word `respace` splits, judged: 'right' (the page has its pieces, not the whole), 'wrong' (the page has it
    whole) or 'unclear' (neither: an OCR misreading, or a word of the page split in other places)."""
    from agent.ingest.ocr_spacing import split_word

    out: Counter[str] = Counter()
    for word in re.findall(r"[A-Za-z]+", raw):
        pieces = split_word(word).split()
        if len(pieces) == 1:
            continue
        if truth[word.lower()]:
            out["wrong"] += 1
        elif all(len(p) == 1 or truth[p.lower()] for p in pieces):
            out["right"] += 1
        else:
            out["unclear"] += 1
    return out


def page_numbers(count: int, fractions: Sequence[float]) -> list[int]:
    """The pages these fractions of the way into a document of `count` pages (0-based)."""
    return sorted({min(count - 1, int(count * f)) for f in fractions})


def documents(pages: str, quick: bool) -> list[Path]:
    """The PDFs of a page set (bench/evalset's are fetched)."""
    if quick:
        return ensure(DOCUMENTS[:2])
    return ensure(DOCUMENTS) + ([DEVSET_PDFS / n for n in DEVSET_DOCUMENTS] if pages == "heldout" else [])


def measure(run: Run, pdfs: Sequence[Path], fractions: Sequence[float], quick: bool) -> list[dict[str, Any]]:
    from agent.ingest.ocr import OCR_DPI, new_engine, recognise
    from agent.ingest.ocr_spacing import respace

    engine, rng, rows = new_engine(), np.random.default_rng(SEED), []
    for pdf in pdfs:
        doc = pypdfium2.PdfDocument(str(pdf))
        for number in page_numbers(len(doc), fractions)[: 1 if quick else 2]:
            page = doc[number]
            truth = words(page.get_textpage().get_text_range())
            scan = scan_image(page, rng)
            raw = recognise(engine, render(scan, OCR_DPI))
            t0 = time.perf_counter()
            spaced = respace(raw)
            ms = (time.perf_counter() - t0) * 1000
            before, after = recall_precision(truth, words(raw)), recall_precision(truth, words(spaced))
            rows.append({"file": pdf.name, "page": number + 1, "truth_words": sum(truth.values()),
                         "recall_before": before[0], "precision_before": before[1], "recall_after": after[0],
                         "precision_after": after[1], "respace_ms": ms,
                         **{k: 0 for k in ("right", "wrong", "unclear")}, **judged_splits(raw, truth)})
            run.log(f"{pdf.name} p{number + 1}: recall {before[0]:.3f} -> {after[0]:.3f}, "
                    f"precision {before[1]:.3f} -> {after[1]:.3f}")
        doc.close()
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--pages", choices=tuple(FRACTIONS), default="design", help="which pages (see the docstring)")
    args = cli.parse_args(argv)
    run = Run(f"{NAME}-{args.pages}", args, argv)
    pdfs = documents(args.pages, args.quick)
    run.params = {"documents": [p.name for p in pdfs], "pages": args.pages, "fractions": FRACTIONS[args.pages],
                  "scan_dpi": SCAN_DPI, "seed": SEED, "words": "lower-case [a-z]{2,}, counted (multisets)"}
    rows = measure(run, pdfs, FRACTIONS[args.pages], args.quick)
    total = {k: sum(r[k] for r in rows) for k in ("truth_words", "right", "wrong", "unclear")}
    mean = {k: float(np.average([r[k] for r in rows], weights=[r["truth_words"] for r in rows]))
            for k in ("recall_before", "recall_after", "precision_before", "precision_after")}
    run.results = {"pages": rows, "total": total, "weighted_mean": mean,
                   "respace_ms_per_page": float(np.mean([r["respace_ms"] for r in rows]))}
    run.table("Words of the text layer in the OCR text (weighted by the page's words)", markdown_table(
        ["pages", "truth words", "recall before", "recall after", "precision before", "precision after",
         "splits right", "wrong", "unclear", "respace ms/page"],
        [[len(rows), total["truth_words"], mean["recall_before"], mean["recall_after"], mean["precision_before"],
          mean["precision_after"], total["right"], total["wrong"], total["unclear"],
          run.results["respace_ms_per_page"]]]))
    run.table("Per page", markdown_table(
        ["file", "page", "words", "recall before", "after", "precision before", "after", "right", "wrong", "unclear"],
        [[r["file"], r["page"], r["truth_words"], r["recall_before"], r["recall_after"], r["precision_before"],
          r["precision_after"], r["right"], r["wrong"], r["unclear"]] for r in rows]))
    run.goals = [Goal("recall after respace - before", mean["recall_after"] - mean["recall_before"], ">=", 0.0),
                 Goal("precision after respace - before", mean["precision_after"] - mean["precision_before"], ">=",
                      0.0)]
    run.finish()


if __name__ == "__main__":
    main()
