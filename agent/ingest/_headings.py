"""Section headings found by type size, for PDFs without an outline (bookmarks).

A manual made without bookmarks still sets its section titles in a larger font; those
titles play the outline's part in search (a question naming a section finds the page
where it starts). Text set at least `SCALE` times the document's body size, in short
runs, counts as a heading; the document's own title does not (it names no section).
`SCALE` is a typographic rule (a title is visibly larger than the text), not fitted to any
question set.
"""

from __future__ import annotations

import ctypes
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent.ingest._pdf_open import PDFIUM_LOCK

SCALE = 1.2
MAX_TITLE_CHARS = 120
MAX_RUNS_PER_PAGE = 2000  # text objects read per page: a hostile page may hold millions
_WORDLIKE = re.compile(r"[^\W\d_]", re.UNICODE)  # a letter or an ideograph, not only digits and marks


@dataclass(frozen=True)
class _Run:
    page: int  # 1-based
    seq: int  # the text object's place on its page
    size: float  # the font size as drawn (font size x the text matrix scale), points
    text: str


def detect_headings(document: Any, indices: list[int]) -> dict[int, tuple[str, ...]]:
    """Heading titles per 1-based page, for the 0-based page `indices` of a pypdfium2 document."""
    runs = [run for index in indices for run in _page_runs(document, index)]
    body = _body_size(runs)
    if body is None:
        return {}
    found: dict[int, list[str]] = {}
    for run in _without_title(_merged(r for r in runs if r.size >= body * SCALE)):
        title = " ".join(run.text.split())[:MAX_TITLE_CHARS]
        if _WORDLIKE.search(title) and len(run.text) <= MAX_TITLE_CHARS * 2:
            found.setdefault(run.page, []).append(title)
    return {page: tuple(titles) for page, titles in found.items()}


def _page_runs(document: Any, index: int) -> list[_Run]:
    """The text objects of one page with their drawn size (PDFium under the one lock)."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    runs: list[_Run] = []
    try:
        with PDFIUM_LOCK:  # closed here, not by the garbage collector outside the lock (a crash in threads)
            page = document[index]
            try:
                textpage = page.get_textpage()
                try:
                    for n, obj in enumerate(page.get_objects(filter=[raw.FPDF_PAGEOBJ_TEXT], max_depth=2)):
                        if n >= MAX_RUNS_PER_PAGE:
                            break
                        text = _object_text(raw, obj, textpage)
                        if text.strip():
                            runs.append(_Run(index + 1, n, _drawn_size(raw, obj), text))
                finally:
                    textpage.close()
            finally:
                page.close()
    except (pdfium.PdfiumError, ValueError, UnicodeError, OSError):
        return []
    return runs


def _drawn_size(raw: Any, obj: Any) -> float:
    size = ctypes.c_float()
    if not raw.FPDFTextObj_GetFontSize(obj.raw, ctypes.byref(size)):
        return 0.0
    matrix = obj.get_matrix()
    scale = abs(matrix.a * matrix.d - matrix.b * matrix.c) ** 0.5
    return round(size.value * (scale or 1.0), 1)


def _object_text(raw: Any, obj: Any, textpage: Any) -> str:
    n = raw.FPDFTextObj_GetText(obj.raw, textpage.raw, None, 0)
    if n <= 2:
        return ""
    buffer = (ctypes.c_ushort * (n // 2))()
    raw.FPDFTextObj_GetText(obj.raw, textpage.raw, buffer, n)
    return bytes(buffer)[: n - 2].decode("utf-16-le", errors="ignore")


def _body_size(runs: list[_Run]) -> float | None:
    """The size most of the document's characters are set in."""
    chars: Counter[float] = Counter()
    for run in runs:
        chars[run.size] += len(run.text.strip())
    return chars.most_common(1)[0][0] if chars else None


def _without_title(headings: list[_Run]) -> list[_Run]:
    """Drop the document's title (its largest type, found only on its first page): it names the
    whole document, not a section that starts on page 1."""
    if not headings:
        return headings
    largest = max(run.size for run in headings)
    top = [run for run in headings if run.size == largest]
    if len({run.page for run in top}) == 1 and top[0].page == headings[0].page:
        return [run for run in headings if run.size != largest]
    return headings


def _merged(runs: Iterable[_Run]) -> list[_Run]:
    """Runs of one size that follow each other on a page form one title ("2.1." then "NAME")."""
    merged: list[_Run] = []
    for run in runs:
        last = merged[-1] if merged else None
        if last is not None and (last.page, last.seq + 1, last.size) == (run.page, run.seq, run.size):
            merged[-1] = _Run(run.page, run.seq, run.size, f"{last.text} {run.text}")
        else:
            merged.append(run)
    return merged
