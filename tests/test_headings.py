"""Headings by type size stand in for a missing PDF outline (agent/ingest/_headings.py)."""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium

from agent.ingest.parse import parse_pdf
from tests.support import DEVSET_PDFS, build_pdf

BODY = [b"This paragraph explains how the tool reads its configuration file.",
        b"Every option has a default and can be changed on the command line.",
        b"The remaining lines of body text make the ten point size the common one."]


def _page(heading: bytes, heading_op: bytes) -> bytes:
    lines = b"".join(b"BT /F1 10 Tf 72 %d Td (%s) Tj ET\n" % (640 - 14 * i, line) for i, line in enumerate(BODY * 3))
    return b"BT " + heading_op + b" (" + heading + b") Tj ET\n" + lines


def _pdf(tmp_path: Path, pages: list[bytes]) -> Path:
    n = len(pages)
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(n))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, n),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, content in enumerate(pages):
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
                       b" /Contents %d 0 R >>" % (5 + 2 * i))
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    path = tmp_path / "manual.pdf"
    path.write_bytes(build_pdf(objects))
    return path


def test_titles_set_larger_than_the_body_become_the_pages_section_titles(tmp_path):
    pdf = _pdf(tmp_path, [_page(b"Installing the tool", b"/F1 20 Tf 72 700 Td"),
                          _page(b"Removing it", b"/F1 10 Tf 2 0 0 2 72 700 Tm")])  # 10 pt scaled x2 draws 20 pt
    pages = parse_pdf(pdf, max_bytes=10**6, max_pages=10, ocr=False).pages
    assert [p.outline for p in pages] == [("Installing the tool",), ("Removing it",)]


def test_a_document_in_one_size_has_no_detected_headings(tmp_path):
    pdf = _pdf(tmp_path, [_page(b"Not a heading at all", b"/F1 10 Tf 72 700 Td")])
    assert parse_pdf(pdf, max_bytes=10**6, max_pages=10, ocr=False).pages[0].outline == ()


def test_the_documents_title_names_no_section(tmp_path):
    title = b"BT /F1 28 Tf 72 740 Td (The Tool Manual) Tj ET\n"
    pdf = _pdf(tmp_path, [title + _page(b"Installing the tool", b"/F1 20 Tf 72 700 Td"),
                          _page(b"Removing it", b"/F1 20 Tf 72 700 Td")])
    pages = parse_pdf(pdf, max_bytes=10**6, max_pages=10, ocr=False).pages
    assert [p.outline for p in pages] == [("Installing the tool",), ("Removing it",)]
    geology = parse_pdf(DEVSET_PDFS / "squad_Geology.pdf", max_bytes=10**7, max_pages=50, ocr=False).pages
    assert all(p.outline == () for p in geology), "its only large text is the title on page 1"


def test_a_pdf_with_an_outline_keeps_its_bookmark_titles():
    pages = parse_pdf(DEVSET_PDFS / "asymptote-manual-zh-cn.pdf", max_bytes=10**8, max_pages=500, ocr=False,
                      pages=range(1, 11)).pages
    titled = [p for p in pages if p.outline]
    assert titled, "the manual's bookmarks point into its first pages"
    manual = pdfium.PdfDocument(DEVSET_PDFS / "asymptote-manual-zh-cn.pdf")
    bookmarks = {" ".join(m.get_title().split()) for m in manual.get_toc()}
    assert all(set(p.outline) <= bookmarks for p in titled)
