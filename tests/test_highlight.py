"""The cited passage, highlighted: boxes from PDFium's text layer cover the chunk's words, and the
rendered page shows them; the source label shows the printed page number (issue 12 item 3)."""

import io

import pypdfium2 as pdfium
from PIL import Image

from agent.app.sources import highlight_boxes, page_label, render_page_png
from agent.config import load_settings
from agent.ingest.chunking import chunk_pages
from agent.ingest.parse import parse_pdf
from tests.support import GEOLOGY, needs_devset


def geology_chunks():
    settings = load_settings(environ={})
    parsed = parse_pdf(GEOLOGY, ocr=False, max_bytes=settings.max_upload_mb * 2**20, max_pages=settings.max_pages)
    return chunk_pages(parsed.pages, file=GEOLOGY.name, doc_id="g", chunk_size=settings.chunk_size,
                       chunk_overlap=settings.chunk_overlap)


@needs_devset
def test_boxes_cover_the_chunks_words_and_nothing_far_from_them():
    chunks = geology_chunks()
    middle = next(c for c in chunks if c.metadata["page"] == 2 and c.metadata["start"] > 0)
    document = pdfium.PdfDocument(str(GEOLOGY))
    try:
        page = document[1]
        boxes = highlight_boxes(page, middle.page_content)
        assert boxes, "the chunk is found in the page's text layer"
        textpage = page.get_textpage()
        height = page.get_height()
        inside = " ".join(textpage.get_text_bounded(left - 1, height - bottom - 1, right + 1, height - top + 1)
                          for left, top, right, bottom in boxes)
        other = geology_chunks()[0].page_content  # page 1's first chunk: not on this page
        assert not highlight_boxes(page, other)
    finally:
        document.close()
    words = [w.strip(".,;:()") for w in middle.page_content.split()]  # the text layer spaces out punctuation
    covered = sum(1 for w in words if w in inside)
    assert covered / len(words) > 0.95, [w for w in words if w not in inside]
    assert len(inside.split()) < len(words) * 1.6  # the boxes hold the chunk's lines, not the page


@needs_devset
def test_the_rendered_page_marks_the_passage_in_yellow():
    chunk = geology_chunks()[1]
    plain = Image.open(io.BytesIO(render_page_png(GEOLOGY, chunk.metadata["page"], width=600)))
    marked = Image.open(io.BytesIO(render_page_png(GEOLOGY, chunk.metadata["page"], width=600,
                                                   highlight=chunk.page_content)))
    assert plain.size == marked.size
    changed = sum(1 for a, b in zip(plain.convert("RGB").getdata(), marked.convert("RGB").getdata()) if a != b)
    yellow = sum(1 for r, g, b in marked.convert("RGB").getdata() if r > 200 and g > 180 and b < 170)
    assert changed > 0.02 * plain.size[0] * plain.size[1] and yellow > 0.5 * changed


def test_source_label_shows_the_printed_page_when_it_differs():
    assert page_label({"page": 26, "page_label": "22"}, "en") == "p. 22 (PDF page 26)"
    assert page_label({"page": 26, "page_label": "22"}, "zh") == "第 22 页（PDF 第 26 页）"
    assert page_label({"page": 3}, "en") == "p. 3"


@needs_devset
def test_a_passage_whose_middle_was_changed_by_cleaning_is_still_found_by_its_ends():
    chunk = next(c for c in geology_chunks() if c.metadata["page"] == 2)
    text = chunk.page_content
    changed = text[: len(text) // 2] + "ﬁ" + text[len(text) // 2 + 1:]  # e.g. a ligature folded by cleaning
    document = pdfium.PdfDocument(str(GEOLOGY))
    try:
        exact, by_ends = highlight_boxes(document[1], text), highlight_boxes(document[1], changed)
        assert by_ends == exact and exact
        elsewhere = next(c for c in geology_chunks() if c.metadata["page"] == 3).page_content
        assert highlight_boxes(document[1], text[:300] + elsewhere[-300:]) == []  # its end is on another page
    finally:
        document.close()


def test_a_tall_thin_page_renders_within_the_pixel_cap(tmp_path):
    from agent.app.sources import MAX_PAGE_PIXELS
    from tests.support import build_pdf

    content = b"BT /F1 1 Tf 0 500 Td (x) Tj ET"
    pdf = tmp_path / "thin.pdf"
    pdf.write_bytes(build_pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 1 1000] /Contents 4 0 R >>",
                               b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content)]))
    image = Image.open(io.BytesIO(render_page_png(pdf, 1)))
    assert image.width * image.height <= MAX_PAGE_PIXELS * 1.05  # rounding up; 900 px wide: 900 x 900,000
    normal = Image.open(io.BytesIO(render_page_png(GEOLOGY, 1)))
    assert normal.width == 900, "an ordinary page keeps the display width"
