"""Write questions.jsonl from source.jsonl: each question's gold page is where its evidence text sits in the PDF."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pypdfium2

from bench.evalset.fetch import SCANS, text_pdf

# The test split: whole documents that no tuning ever sees (weights are chosen on the other files only).
TEST_FILES = frozenset({"bzip2.pdf", "shared-mime-info-spec.pdf", "install-latex-guide-zh-cn.pdf", "lppl-scan.pdf",
                        "R-data.pdf", "latex-usrguide.pdf", "latex-notes-zh-cn.pdf", "exam-zh-doc.pdf"})
_SPACE = re.compile(r"\s+")
_TOC_LEADERS = re.compile(r"(?:\. ?){6}")


def _body(text: str) -> str:
    """Page text without table-of-contents lines (a TOC line is not the answer), whitespace collapsed."""
    lines = [line for line in text.splitlines() if not _TOC_LEADERS.search(line)]
    return _SPACE.sub(" ", " ".join(lines))


def _pages(pdf: Path) -> list[str]:
    """Whitespace-collapsed text of each page (1-based index = list index + 1)."""
    doc = pypdfium2.PdfDocument(str(pdf))
    try:
        return [_body(doc[i].get_textpage().get_text_range()) for i in range(len(doc))]
    finally:
        doc.close()


def gold_pages(pages: list[str], evidence: str) -> list[int]:
    """Pages whose body text holds the evidence."""
    needle = _SPACE.sub(" ", evidence)
    return [i + 1 for i, text in enumerate(pages) if needle in text]


def resolved(rows: Iterable[dict[str, Any]],
             pdf: Callable[[str], Path]) -> Iterator[tuple[dict[str, Any], list[int]]]:
    """Each row with the pages whose body holds its evidence, each document's text read once (`pdf`: the path of a
    file name; a scan's gold is resolved on its text PDF)."""
    pages: dict[str, list[str]] = {}
    for row in rows:
        name = text_pdf(row["file"])
        if name not in pages:
            pages[name] = _pages(pdf(name))
        yield row, gold_pages(pages[name], row["evidence"])


def build(pdf_dir: Path, source: Path, out: Path) -> list[str]:
    """Resolve every row's gold page; return the ids whose evidence was not found (those rows are left out)."""
    missing, rows = [], []
    source_rows = (json.loads(line) for line in source.read_text(encoding="utf-8").splitlines())
    for row, found in resolved(source_rows, lambda name: pdf_dir / name):
        if not found:
            missing.append(row["id"])
            continue
        row["page"], row["alt_pages"] = found[0], found[1:]
        row["kind"] = "scan" if row["file"] in SCANS else "manual"
        row["split"] = "test" if row["file"] in TEST_FILES else "tune"
        rows.append(json.dumps(row, ensure_ascii=False))
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return missing


if __name__ == "__main__":
    here = Path(__file__).parent
    lost = build(Path(sys.argv[1]), here / "source.jsonl", here / "questions.jsonl")
    print("evidence not found:", lost)
