"""PDF parsing: a PDF file in, cleaned text per physical page out.

Pipeline (`parse_pdf`):

1. Cheap checks, each failing fast with a `DocumentError` (one-sentence `message`
   plus a `fix`): missing/empty file, too many bytes (checked with `stat`, before
   reading), not a PDF (no ``%PDF-`` in the first 1024 bytes; says what it looks
   like), encrypted (`EncryptedPDFError`), too many pages (the page count comes
   from the document's page tree, so a 10,000-page file is refused in milliseconds
   without touching its pages), and broken beyond repair.
2. Text per page with PDFium (pypdfium2: fast, and it decodes CJK fonts that pypdf
   turns into mojibake, e.g. lshort-zh-cn.pdf). If PDFium cannot open the file,
   pypdf's lenient (``strict=False``) reader is tried and a warning says the file
   was repaired; if PDFium fails on one page, pypdf reads that page.
3. Each page's raw text is checked by `is_garbled`; a garbled page is retried with
   pypdf, and if that is garbled too, it is OCR'd.
4. OCR (agent.ocr, RapidOCR) for pages that have no text layer but do draw
   something, that are garbled, or that are mostly an image with a few words.
   OCR costs seconds per page on a laptop CPU, so at most `max_ocr_pages` pages
   are OCR'd per file (`ocr.WORKERS` at once); the rest are reported in `warnings`.
5. `clean_text` normalises every page's text.

Every PDFium call holds `PDFIUM_LOCK` (see `_pdf_open`), taken per page, so parses in
several threads (Streamlit sessions) interleave page by page.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable

from agent.config import Settings
from agent.errors import DocumentError
from agent.ingest import ocr as ocr_mod
from agent.ingest._headings import detect_headings
from agent.ingest._pdf_open import PDFIUM_LOCK, _open, _Source, inspect_pdf
from agent.ingest._text import clean_text, is_garbled

__all__ = ["ParsedPage", "ParsedPDF", "clean_text", "inspect_pdf", "is_garbled", "parse_pdf"]

# A page with fewer cleaned characters than this whose images cover at least
# MOSTLY_IMAGE of its area is treated as a scan with a stray text layer (a stamp,
# a page number) and OCR'd too; the OCR text is kept if it is longer.
FEW_CHARS = 100
MOSTLY_IMAGE = 0.5

Progress = Callable[[str, int, int], None]



@dataclass
class ParsedPage:
    number: int  # 1-based physical page index
    text: str  # cleaned text ("" if nothing usable)
    ocr: bool  # True if the text came from OCR
    outline: tuple[str, ...] = ()  # titles of the outline entries (bookmarks) pointing here; else headings by type size
    label: str = ""  # the printed page number from the PDF's page labels, when it differs from `number`


@dataclass
class ParsedPDF:
    pages: list[ParsedPage]
    page_count: int  # pages in the file (all of them, even when `pages=` chose a subset)
    ocr_pages: list[int] = field(default_factory=list)  # page numbers whose text came from OCR
    empty_pages: list[int] = field(default_factory=list)  # pages with no text even after OCR
    warnings: list[str] = field(default_factory=list)  # human-readable, one sentence each




@dataclass
class _PageScan:
    number: int
    text: str = ""  # cleaned text kept if no OCR happens
    reason: str = ""  # why OCR is wanted: "", "empty", "garbled", "image"
    fallback: bool = False  # read by pypdf because PDFium failed
    failed: bool = False  # no reader could read it


def _pdfium_page_text(doc, index: int) -> tuple[str, int, float]:
    """Raw text, number of page objects, and fraction of the page covered by images."""
    import pypdfium2.raw as pdfium_c

    with PDFIUM_LOCK:
        page = doc[index]
        try:
            textpage = page.get_textpage()
            try:
                raw = textpage.get_text_range()
            finally:
                textpage.close()
            objects = pdfium_c.FPDFPage_CountObjects(page)
            coverage = 0.0
            if objects and len(raw.strip()) < 2 * FEW_CHARS:
                coverage = _image_coverage(page)
            return raw, objects, coverage
        finally:
            page.close()


def _image_coverage(page) -> float:
    import pypdfium2.raw as pdfium_c

    width, height = page.get_size()
    if width <= 0 or height <= 0:
        return 0.0
    covered = 0.0
    for count, obj in enumerate(page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=4)):
        if count > 500:
            break
        left, bottom, right, top = obj.get_bounds()
        w = max(0.0, min(right, width) - max(left, 0.0))
        h = max(0.0, min(top, height) - max(bottom, 0.0))
        covered += w * h
    return min(1.0, covered / (width * height))


def _pypdf_page_text(source: _Source, index: int) -> str | None:
    reader = source.pypdf()
    if reader is None:
        return None
    try:
        return reader.pages[index].extract_text() or ""
    except Exception:
        return None


def _scan_page(source: _Source, index: int) -> _PageScan:
    """Extract and judge one page's text layer (no OCR yet)."""
    scan = _PageScan(number=index + 1)
    raw: str | None = None
    objects, coverage = 1, 0.0
    if source.pdfium is not None:
        try:
            raw, objects, coverage = _pdfium_page_text(source.pdfium, index)
        except Exception:
            raw = None
    if raw is None:
        raw = _pypdf_page_text(source, index)
        if raw is None:
            scan.failed = True
            scan.reason = "empty" if source.pdfium is not None else ""
            return scan
        scan.fallback = source.pdfium is not None
    if is_garbled(raw):
        # Another extractor may map the font correctly; it is cheap compared to OCR.
        other = _pypdf_page_text(source, index) if source.pdfium is not None and not scan.fallback else None
        if other is not None and not is_garbled(other) and clean_text(other):
            scan.text = clean_text(other)
            return scan
        scan.reason = "garbled"
        return scan
    scan.text = clean_text(raw)
    if not scan.text:
        scan.reason = "empty" if objects else ""
    elif len(scan.text) < FEW_CHARS and coverage >= MOSTLY_IMAGE:
        scan.reason = "image"
    return scan


def _render_for_ocr(source: _Source, index: int):
    with PDFIUM_LOCK:
        page = source.pdfium[index]
        try:
            width, height = page.get_size()
            scale = ocr_mod.render_scale(width, height)
            bitmap = page.render(scale=scale, grayscale=True, rotation=0)
            try:
                return bitmap.to_pil().convert("RGB")  # a copy: the bitmap's buffer is freed below
            finally:
                bitmap.close()
        finally:
            page.close()


def _ranges(numbers: list[int], limit: int = 12) -> str:
    """[1,2,3,7,9,10] -> '1-3, 7, 9-10' (at most `limit` items, then '...')."""
    parts: list[str] = []
    start = prev = None
    for n in sorted(numbers):
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            parts.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = prev = n
    if start is not None:
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
    if len(parts) > limit:
        parts = parts[:limit] + ["..."]
    return ", ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _were(n: int) -> str:
    return "was" if n == 1 else "were"


def parse_pdf(
    path: str | os.PathLike,
    *,
    password: str | None = None,
    max_bytes: int,
    max_pages: int,
    ocr: bool = True,
    progress: Progress | None = None,
    pages: Iterable[int] | None = None,
    max_ocr_pages: int = Settings.model_fields["max_ocr_pages"].default,
) -> ParsedPDF:
    """Extract cleaned text per physical page, OCR'ing pages without usable text.

    `pages` (1-based numbers) restricts the work to a subset (tests, previews);
    `page_count` is still the file's. `max_ocr_pages` bounds OCR per call (OCR costs
    seconds per page on CPU); pages beyond it stay empty and a warning says so.
    `progress(stage, done, total)` is called with stage "parse" then "ocr": once with
    done=0 when a stage starts and after every page; an exception it raises (e.g. to
    cancel) propagates. Raises DocumentError / EncryptedPDFError with a fix.
    """
    source = _open(path, password, max_bytes, max_pages)
    try:
        scans = _scan_pages(source, _page_indices(source, pages), progress)
        warnings = list(source.warnings) + _reader_warnings(scans)
        run = _ocr_pass(source, scans, ocr, max_ocr_pages, progress)
        warnings += _ocr_warnings(scans, run, ocr, max_ocr_pages)
        outline, labels = _outline(source) or _headings(source, scans), _labels(source)
        result = ParsedPDF(
            pages=[ParsedPage(number=s.number, text=s.text, ocr=s.number in run.done,
                              outline=outline.get(s.number, ()), label=labels.get(s.number, "")) for s in scans],
            page_count=source.page_count,
            ocr_pages=sorted(run.done),
            empty_pages=[s.number for s in scans if not s.text],
            warnings=warnings,
        )
        if all(not p.text for p in result.pages):
            raise _no_text_error(source.name, scans, ocr, run.error, bool(run.attempted))
        return result
    finally:
        source.close()


_OUTLINE_MAX = 5000  # entries read: a hostile outline may be huge (cycles are cut by pypdfium2)


def _outline(source: _Source) -> dict[int, tuple[str, ...]]:
    """Outline (bookmark) titles per 1-based page they point to: search favours the page where a
    section named by the question starts. A missing or broken outline gives {}: it is optional."""
    if source.pdfium is None:
        return {}
    import pypdfium2 as pdfium  # loaded with the document, as in _pdf_open

    found: dict[int, list[str]] = {}
    try:
        with PDFIUM_LOCK:
            for n, mark in enumerate(source.pdfium.get_toc()):
                if n >= _OUTLINE_MAX:
                    break
                dest = mark.get_dest()
                index = dest.get_index() if dest is not None else None
                if index is not None and 0 <= index < source.page_count:
                    found.setdefault(index + 1, []).append(" ".join(mark.get_title().split())[:200])
    except (pdfium.PdfiumError, ValueError, UnicodeError):
        return {}
    return {page: tuple(titles) for page, titles in found.items()}


def _headings(source: _Source, scans: list[_PageScan]) -> dict[int, tuple[str, ...]]:
    """Without an outline, the titles set in a larger type play its part (`_headings`)."""
    if source.pdfium is None:
        return {}
    readable = [s.number - 1 for s in scans if s.text and not (s.failed or s.fallback or s.reason == "garbled")]
    return detect_headings(source.pdfium, readable)


def _labels(source: _Source) -> dict[int, str]:
    """Printed page numbers (PDF page labels: "iv", "22") per 1-based page where they differ
    from the physical number, so a citation matches what the reader sees on the page."""
    if source.pdfium is None:
        return {}
    import pypdfium2 as pdfium

    labels: dict[int, str] = {}
    try:
        with PDFIUM_LOCK:
            for index in range(source.page_count):
                label = " ".join(source.pdfium.get_page_label(index).split())[:40]
                if label and label != str(index + 1):
                    labels[index + 1] = label
    except (pdfium.PdfiumError, ValueError, UnicodeError):
        return {}
    return labels


def _page_indices(source: _Source, pages: Iterable[int] | None) -> list[int]:
    """0-based indices of the pages to read: all, or the 1-based `pages` after checking them."""
    if pages is None:
        return list(range(source.page_count))
    wanted = sorted(set(int(p) for p in pages))
    bad = [p for p in wanted if not 1 <= p <= source.page_count]
    if not wanted:
        raise ValueError("pages is empty")
    if bad:
        raise ValueError(f"pages {bad} are outside 1..{source.page_count}")
    return [p - 1 for p in wanted]


def _scan_pages(source: _Source, indices: list[int], progress: Progress | None) -> list[_PageScan]:
    """Pass 1: the text layer of every page, with the reason to OCR it if any."""
    scans: list[_PageScan] = []
    if progress:
        progress("parse", 0, len(indices))
    for done, index in enumerate(indices, 1):
        scans.append(_scan_page(source, index))
        if progress:
            progress("parse", done, len(indices))
    return scans


def _reader_warnings(scans: list[_PageScan]) -> list[str]:
    warnings = []
    fallback = [s.number for s in scans if s.fallback]
    if fallback:
        warnings.append(f"{_plural(len(fallback), 'page')} could not be read by the main PDF reader and "
                        f"{_were(len(fallback))} read by the fallback reader: {_ranges(fallback)}.")
    failed = [s.number for s in scans if s.failed]
    if failed:
        warnings.append(f"{_plural(len(failed), 'page')} could not be read at all and {_were(len(failed))} "
                        f"left empty: {_ranges(failed)}.")
    return warnings


@dataclass
class _OcrRun:
    """What pass 2 did: pages whose OCR text was kept, pages tried, and why OCR could not run."""

    done: set[int] = field(default_factory=set)
    attempted: set[int] = field(default_factory=set)
    failed_pages: list[int] = field(default_factory=list)
    error: str | None = None


def _ocr_unavailable(source: _Source, wanted: list[_PageScan], ocr: bool) -> str | None:
    if wanted and source.pdfium is None:
        return "the file could only be read by the repair reader, which cannot render pages"
    if wanted and ocr:
        try:
            ocr_mod.get_engine()
        except ocr_mod.OCRUnavailable as exc:
            return f"the OCR engine could not be loaded ({exc})"
    return None


def _ocr_pass(source: _Source, scans: list[_PageScan], ocr: bool, max_ocr_pages: int,
              progress: Progress | None) -> _OcrRun:
    """Pass 2: OCR the pages that want it, at most `max_ocr_pages` of them."""
    wanted = [s for s in scans if s.reason]
    run = _OcrRun(error=_ocr_unavailable(source, wanted, ocr))
    todo = wanted[:max(0, max_ocr_pages)] if ocr and run.error is None else []
    if todo and progress:
        progress("ocr", 0, len(todo))
    with ThreadPoolExecutor(ocr_mod.WORKERS, thread_name_prefix="ocr") as pool:
        pages = [pool.submit(_ocr_page, source, scan.number) for scan in todo]
        try:
            _collect_ocr(todo, pages, run, progress)
        finally:  # a cancel raised by `progress`, or the engine gone: pages not started stay so
            for page in pages:
                page.cancel()
    return run


def _ocr_page(source: _Source, number: int) -> str:
    """Render page `number` (under PDFium's lock) and read it; runs in an OCR worker thread."""
    return clean_text(ocr_mod.ocr_image(_render_for_ocr(source, number - 1)))


def _collect_ocr(todo: list[_PageScan], pages: list[Future[str]], run: _OcrRun, progress: Progress | None) -> None:
    """Take the OCR'd pages in page order as they finish (several are read at once)."""
    for done, (scan, page) in enumerate(zip(todo, pages), 1):
        try:
            text = page.result()
        except ocr_mod.OCRUnavailable as exc:
            run.error = f"the OCR engine could not be loaded ({exc})"
            return
        except Exception:
            run.failed_pages.append(scan.number)
            text = ""
        run.attempted.add(scan.number)
        _keep_ocr_text(scan, text, run)
        if progress:
            progress("ocr", done, len(todo))


def _keep_ocr_text(scan: _PageScan, text: str, run: _OcrRun) -> None:
    """A mostly-image page keeps its OCR text only if it is longer than its text layer."""
    if scan.reason == "image":
        if len(text) > len(scan.text):
            scan.text = text
            run.done.add(scan.number)
    else:
        scan.text = text
        if text:
            run.done.add(scan.number)


def _ocr_warnings(scans: list[_PageScan], run: _OcrRun, ocr: bool, max_ocr_pages: int) -> list[str]:
    warnings = []
    if run.failed_pages:
        warnings.append(f"OCR failed on {_plural(len(run.failed_pages), 'page')}: {_ranges(run.failed_pages)}.")
    wanted = [s for s in scans if s.reason]
    skipped = [s.number for s in wanted if s.number not in run.attempted and s.reason != "image"]
    if not ocr and skipped:
        warnings.append(f"OCR is off, so {_plural(len(skipped), 'page')} without usable text (scanned or "
                        f"garbled) {_were(len(skipped))} left empty: {_ranges(skipped)}.")
    elif run.error and skipped:
        warnings.append(f"OCR unavailable: {run.error}, so {_plural(len(skipped), 'page')} without usable "
                        f"text {_were(len(skipped))} left empty: {_ranges(skipped)}.")
    elif skipped:
        warnings.append(f"OCR is limited to {max_ocr_pages} pages per file; {_plural(len(skipped), 'more page')} "
                        f"without usable text {_were(len(skipped))} left empty: {_ranges(skipped)}.")
    garbled_ocr = [s.number for s in wanted if s.reason == "garbled" and s.number in run.done]
    if garbled_ocr:
        warnings.append(f"{_plural(len(garbled_ocr), 'page')} had a garbled text layer and "
                        f"{_were(len(garbled_ocr))} read with OCR instead: {_ranges(garbled_ocr)}.")
    return warnings


def _no_text_error(name: str, scans: list[_PageScan], ocr: bool, ocr_error: str | None,
                   ocr_ran: bool) -> DocumentError:
    if not any(s.reason for s in scans):
        return DocumentError(f"{name} has no extractable text: its pages are blank.",
                             "Check that this is the right file.", code="doc_blank", params={"file": name})
    if not ocr:
        return DocumentError(f"{name} has no extractable text (scanned PDF?).",
                             "Turn OCR on (the ocr setting) so scanned pages are read as images.",
                             code="doc_scanned_no_ocr", params={"file": name})
    if ocr_error:
        return DocumentError(f"{name} has no extractable text (scanned PDF?) and OCR is unavailable.",
                             f"Fix OCR ({ocr_error}): reinstall rapidocr and openvino from requirements.txt.")
    if ocr_ran:
        return DocumentError(f"{name} has no extractable text (scanned PDF?), and OCR found none either.",
                             "Check that the pages hold legible text; a cleaner, higher-resolution scan may help.")
    return DocumentError(f"{name} has no extractable text (scanned PDF?).",
                         "Raise max_ocr_pages so its scanned pages are OCR'd.")
