"""PDF parsing layer: bad input, encryption, limits, text cleaning, garbled detection, OCR.

Fixtures are generated in tmp_path by the tests themselves (Pillow renders text to
an image and saves it as an image-only PDF; pypdf writes blank-page and zero-page
PDFs and page subsets); nothing binary is committed. Real PDFs come from the
shared devset (shared/devset/pdfs, see its README and manifest.json).
"""

from __future__ import annotations

import io
import logging
import random
import re
import threading
import time
from pathlib import Path

import pypdf
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw, ImageFont

import agent.ingest.parse as parse_mod
from agent.errors import DocumentError, EncryptedPDFError
from agent.ingest import ocr as ocr_mod
from agent.ingest.parse import clean_text, inspect_pdf, is_garbled, parse_pdf
from tests.support import build_pdf

_HERE = Path(__file__).resolve()
PDFS = next((p for p in (_HERE.parents[2] / "shared" / "devset" / "pdfs", Path("/work/shared/devset/pdfs"))
             if p.is_dir()), None)
needs_devset = pytest.mark.skipif(PDFS is None, reason="shared/devset/pdfs is missing")

MB = 1024 * 1024
LIMITS = {"max_bytes": 200 * MB, "max_pages": 3000}
CJK = re.compile(r"[\u4e00-\u9fff]")
CJK_SPACE_CJK = re.compile(r"[\u4e00-\u9fff] +[\u4e00-\u9fff]")


def devset(name: str) -> Path:
    return PDFS / name


def nows(text: str) -> str:
    return re.sub(r"\s+", "", text)


def pypdf_text(path: Path, page: int, password: str | None = None) -> str:
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    reader = pypdf.PdfReader(str(path))
    if password:
        reader.decrypt(password)
    return reader.pages[page - 1].extract_text()


def assert_helpful(exc: DocumentError, *words: str) -> None:
    """One sentence naming the problem, plus a non-empty fix."""
    assert exc.message and exc.message.endswith("."), exc.message
    assert exc.fix, f"no fix for: {exc.message}"
    for word in words:
        assert word.lower() in (exc.message + " " + exc.fix).lower(), (word, exc.message, exc.fix)


def make_scan_pdf(path: Path, lines: list[str], size: int = 40) -> Path:
    """An image-only PDF: Pillow renders `lines` to a bitmap and saves it as a PDF page."""
    img = Image.new("L", (1240, 120 + 75 * len(lines)), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=size)
    for i, line in enumerate(lines):
        draw.text((80, 60 + 75 * i), line, fill=0, font=font)
    img.save(path, "PDF", resolution=150)
    return path


SCAN_LINES = ["Quarterly report for the harbour", "The quick brown fox jumps over", "the lazy dog near the river."]


@pytest.fixture(scope="module")
def scan_pdf(tmp_path_factory) -> Path:
    return make_scan_pdf(tmp_path_factory.mktemp("scan") / "scan.pdf", SCAN_LINES)


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    with pytest.raises(DocumentError) as err:
        parse_pdf(tmp_path / "nope.pdf", **LIMITS)
    assert_helpful(err.value, "not found")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.pdf"
    path.write_bytes(b"")
    with pytest.raises(DocumentError) as err:
        inspect_pdf(path, **LIMITS)
    assert_helpful(err.value, "empty.pdf", "0 bytes")


def test_garbage_named_pdf(tmp_path):
    path = tmp_path / "garbage.pdf"
    path.write_bytes(random.Random(7).randbytes(4096).replace(b"%PDF-", b"xxxxx"))
    with pytest.raises(DocumentError) as err:
        parse_pdf(path, **LIMITS)
    assert not isinstance(err.value, EncryptedPDFError)
    assert_helpful(err.value, "garbage.pdf", "not a PDF")


def test_png_renamed_pdf(tmp_path):
    path = tmp_path / "photo.pdf"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(path, "PNG")
    with pytest.raises(DocumentError) as err:
        parse_pdf(path, **LIMITS)
    assert_helpful(err.value, "not a PDF", "PNG image")


def test_text_file_renamed_pdf(tmp_path):
    path = tmp_path / "notes.pdf"
    path.write_text("These are my meeting notes.\n会议记录：下周一开会。\n" * 20, encoding="utf-8")
    with pytest.raises(DocumentError) as err:
        parse_pdf(path, **LIMITS)
    assert_helpful(err.value, "not a PDF", "plain-text file")


@needs_devset
def test_invalid_pdf_is_rejected():
    with pytest.raises(DocumentError) as err:
        parse_pdf(devset("invalid.pdf"), **LIMITS)
    assert not isinstance(err.value, EncryptedPDFError)
    assert_helpful(err.value, "could not be read as a PDF", "re-save")


def test_zero_page_pdf(tmp_path):
    path = tmp_path / "nopages.pdf"
    pypdf.PdfWriter().write(path)
    with pytest.raises(DocumentError) as err:
        inspect_pdf(path, **LIMITS)
    assert_helpful(err.value, "no pages")


# --------------------------------------------------------------------------- encryption


@needs_devset
def test_encrypted_without_password():
    with pytest.raises(EncryptedPDFError) as err:
        parse_pdf(devset("libreoffice-writer-password.pdf"), **LIMITS)
    assert_helpful(err.value, "password", "--password")
    assert "wrong" not in err.value.message


@needs_devset
def test_encrypted_wrong_password():
    with pytest.raises(EncryptedPDFError) as err:
        inspect_pdf(devset("libreoffice-writer-password.pdf"), password="not-it", **LIMITS)
    assert_helpful(err.value, "password", "wrong", "--password")


@needs_devset
def test_encrypted_right_password():
    path = devset("libreoffice-writer-password.pdf")
    assert inspect_pdf(path, password="openpassword", **LIMITS) == 1
    parsed = parse_pdf(path, password="openpassword", **LIMITS)
    assert "Lorem ipsum dolor sit amet" in parsed.pages[0].text
    assert nows(pypdf_text(path, 1, "openpassword"))[:200] in nows(parsed.pages[0].text)


# --------------------------------------------------------------------------- limits


def test_oversized_by_bytes_is_checked_before_reading(tmp_path):
    path = tmp_path / "big.pdf"
    path.write_bytes(b"not a pdf at all " * 200)  # 3.4 KB, and not a PDF either
    with pytest.raises(DocumentError) as err:
        parse_pdf(path, max_bytes=1000, max_pages=10)
    # The size check comes first: the message is about size, not about the header.
    assert_helpful(err.value, "larger than", "limit")
    assert "not a PDF" not in err.value.message


@pytest.fixture(scope="module")
def many_pages_pdf(tmp_path_factory) -> Path:
    writer = pypdf.PdfWriter()
    for _ in range(10_000):
        writer.add_blank_page(width=72, height=72)
    path = tmp_path_factory.mktemp("many") / "many.pdf"
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def test_oversized_by_pages_is_refused_quickly(many_pages_pdf):
    for func in (inspect_pdf, parse_pdf):
        start = time.perf_counter()
        with pytest.raises(DocumentError) as err:
            func(many_pages_pdf, max_bytes=200 * MB, max_pages=3000)
        elapsed = time.perf_counter() - start
        assert elapsed < 2.0, f"{func.__name__} took {elapsed:.2f}s to refuse 10,000 pages"
        assert_helpful(err.value, "10,000 pages", "3,000", "split")
    start = time.perf_counter()
    assert inspect_pdf(many_pages_pdf, max_bytes=200 * MB, max_pages=20_000) == 10_000
    assert time.perf_counter() - start < 2.0


def test_blank_pages_only(tmp_path):
    path = tmp_path / "blank.pdf"
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.write(path)
    with pytest.raises(DocumentError) as err:
        parse_pdf(path, **LIMITS)
    assert_helpful(err.value, "no extractable text", "blank")


# --------------------------------------------------------------------------- real text


@needs_devset
def test_damaged_file_text_recovered():
    parsed = parse_pdf(devset("zen_of_python_corrupted.pdf"), **LIMITS)
    text = parsed.pages[0].text
    assert "Beautiful is better than ugly." in text
    assert "Readability counts." in text
    assert parsed.ocr_pages == [] and parsed.empty_pages == []


def test_pypdf_repair_when_pdfium_cannot_open(tmp_path):
    """A trailer without /Root: PDFium refuses the file, pypdf's lenient reader finds the catalog."""
    raw = _text_pdf_bytes("Recovered words on a damaged page")
    path = tmp_path / "damaged.pdf"
    path.write_bytes(raw.replace(b"/Root 1 0 R", b"/Roo 1 0 R"))
    with pytest.raises(pdfium.PdfiumError):
        pdfium.PdfDocument(str(path))
    assert inspect_pdf(path, **LIMITS) == 1
    parsed = parse_pdf(path, **LIMITS)
    assert parsed.pages[0].text == "Recovered words on a damaged page"
    assert any("damaged" in w and "repaired" in w for w in parsed.warnings)


def _text_pdf_bytes(text: str) -> bytes:
    """A one-page PDF with `text` in a standard font (hand-written, classic xref table)."""
    stream = f"BT /F1 18 Tf 40 150 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 300] /Resources << /Font << /F1 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return build_pdf(objects)


@needs_devset
def test_page_numbers_map_to_physical_pages():
    path = devset("squad_Apollo_program.pdf")
    parsed = parse_pdf(path, **LIMITS)
    assert parsed.page_count == 8 and [p.number for p in parsed.pages] == list(range(1, 9))
    for page in parsed.pages:
        theirs = nows(pypdf_text(path, page.number))
        ours = nows(page.text)
        assert theirs[:300] in ours and theirs[-300:] in ours, page.number
        others = [nows(p.text) for p in parsed.pages if p.number != page.number]
        assert not any(theirs[:300] in other for other in others)


@needs_devset
def test_long_manual_evidence_on_gold_pages():
    """Every `manual` question's evidence (whitespace removed) is on its gold page's text."""
    import json

    questions = [json.loads(line) for line in (PDFS.parent / "questions.jsonl").read_text().splitlines() if line]
    manual = [q for q in questions if q.get("kind") == "manual"]
    assert len(manual) == 50
    for file in ("gnuplot.pdf", "asymptote-manual-zh-cn.pdf"):
        qs = [q for q in manual if q["file"] == file]
        gold = sorted({q["page"] for q in qs})
        parsed = parse_pdf(devset(file), pages=gold, **LIMITS)
        by_number = {p.number: nows(p.text) for p in parsed.pages}
        for q in qs:
            assert nows(q["evidence"]) in by_number[q["page"]], (q["id"], q["page"])


@needs_devset
def test_chinese_text_has_no_inserted_spaces():
    path = devset("asymptote-manual-zh-cn.pdf")
    parsed = parse_pdf(path, pages=[21, 38], **LIMITS)
    page21, page38 = parsed.pages
    assert page21.number == 21 and not page21.ocr
    assert not CJK_SPACE_CJK.search(page21.text) and not CJK_SPACE_CJK.search(page38.text)
    # "控\n制结构" wraps a word across lines in the PDF: the break is removed ...
    assert "相似的控制结构" in page21.text
    # ... while code lines keep theirs, and justified text loses PDFium's spurious spaces.
    assert "real x;\n" in page21.text
    assert "在形如 z1 .. tension t1 and t2 .. z2 的路向中" in page38.text
    assert nows(pypdf_text(path, 21))[:60] in nows(page21.text)


@needs_devset
def test_table_page_keeps_cells():
    parsed = parse_pdf(devset("health.pdf"), **LIMITS)
    theirs = nows(pypdf_text(devset("health.pdf"), 1))
    assert theirs[:200] in nows(parsed.pages[0].text)
    assert "\n" in parsed.pages[0].text  # rows stay on their own lines


def test_unicode_file_name(tmp_path):
    path = tmp_path / "中文 文件名.pdf"
    path.write_bytes(_text_pdf_bytes("Hello from a file with a Chinese name"))
    parsed = parse_pdf(path, **LIMITS)
    assert parsed.pages[0].text == "Hello from a file with a Chinese name"


def test_progress_is_reported_per_page(tmp_path):
    writer = pypdf.PdfWriter()
    for _ in range(3):
        writer.append(pypdf.PdfReader(io.BytesIO(_text_pdf_bytes("Some words"))))
    path = tmp_path / "three.pdf"
    writer.write(path)
    events = []
    parse_pdf(path, progress=lambda stage, done, total: events.append((stage, done, total)), **LIMITS)
    assert events == [("parse", 0, 3), ("parse", 1, 3), ("parse", 2, 3), ("parse", 3, 3)]


@needs_devset
def test_parse_is_deterministic_and_thread_safe():
    files = ["squad_Geology.pdf", "cmrc2018_wiki_zh_sample.pdf", "asymptote-manual-zh-cn.pdf"]
    sequential = {f: parse_pdf(devset(f), **LIMITS) for f in files}
    results: dict[str, object] = {}

    def work(name: str) -> None:
        results[name] = parse_pdf(devset(name), **LIMITS)

    threads = [threading.Thread(target=work, args=(f,)) for f in files * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == sequential


# --------------------------------------------------------------------------- cleaning


def test_clean_text_rules():
    assert clean_text("infor-\nmation retrieval") == "information retrieval"
    assert clean_text("well-known") == "well-known"
    assert clean_text("isosur\ufffeface") == "isosurface"  # PDFium's hyphenation marker
    assert clean_text("ﬁnd the ﬂow") == "find the flow"  # ligatures (NFKC)
    assert clean_text("ＡＢＣ１２３") == "ABC123"  # fullwidth letters/digits (NFKC)
    assert clean_text("你好，世界：（一）") == "你好，世界：（一）"  # fullwidth CJK punctuation kept
    assert clean_text("10² m³") == "10² m³"  # superscripts not flattened
    assert clean_text("a\x00b\x07c\ue000d\ufffde") == "abcde"  # NUL, controls, private use, U+FFFD
    assert clean_text("  lots   of\t\tspace  \r\nnext line ") == "lots of space\nnext line"
    assert clean_text("para one\n\n\n\npara two") == "para one\n\npara two"
    assert clean_text("中 文 字 符") == "中文字符"
    assert clean_text("Chapter 1 ........ 7") == "Chapter 1 ... 7"
    wrapped = "这是一个很长的中文句子，它在排版时被换行到了下一行的中间位置，需要\n重新连接起来才能正确检索。"
    assert clean_text(wrapped) == wrapped.replace("\n", "")
    heading = "第一章\n引言"  # short lines keep their break
    assert clean_text(heading) == heading
    assert clean_text("") == ""


# --------------------------------------------------------------------------- garbled detection


GOOD_SAMPLES = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Le cœur a ses raisons que la raison ne connaît point. Où êtes-vous allé ? Très bien, merci.",
    "Größenwahn und Übermut führen selten zum Ziel, sagte der Bürgermeister in München.",
    "Москва — столица России, крупнейший по численности населения город страны.",
    "مرحبا بكم في هذا المستند الذي يحتوي على نص عربي طويل بما فيه الكفاية للاختبار",
    "日本語のテキストはひらがなとカタカナと漢字を混ぜて書きます。東京タワーへ行きました。",
    "한국어 문장은 띄어쓰기를 사용합니다. 서울은 대한민국의 수도입니다. 漢字도 가끔 씁니다.",
    "यह एक हिंदी वाक्य है जो परीक्षण के लिए पर्याप्त लंबा होना चाहिए ताकि नियम काम करे।",
    "设 ε > 0，则存在 δ 使得 |f(x) − f(y)| < ε。函数 f(x) 在区间 [a, b] 上连续。",
    "Year | 2019 | 2020 | 2021\nCases | 1,234 | 5,678 | 9,012\nRate | 3.4% | 5.6% | 7.8%",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; } // dot product\nreturn sum;",
]
GARBLED_SAMPLES = [
    "\ue001\ue002\ue003 \ue004\ue005\ue006\ue007 \ue008\ue009\ue00a\ue00b\ue00c \ue00d\ue00e\ue00f\ue010 ab" * 2,
    "中文文档的内容应该被正确提取出来".encode("utf-8").decode("cp1252", errors="replace"),
    "中文文档的内容应该被正确提取".encode("gbk").decode("latin-1"),
    "(cid:12)(cid:45)(cid:77)(cid:3)(cid:101)(cid:9)(cid:33)(cid:61) (cid:7)(cid:8)(cid:90)",
    "\x01\x02\x03\x04\x05 \x06\x07\x08\x0e\x0f \x10\x11\x12\x13\x14 \x15\x16\x17\x18\x19 ab",
    "၂ٺč҂\u0dfeĎ֥؋ࡥ LATEX 2ε ࢺക ࠇ 111 ٳᇒਔࢳ ႇ໓ቔᆀğ Tobias ᇏ໓يၲğ CTEX षؿཬቆ",
    "!\"#$%&'()*+,/:;<=>?@[\\]^`{|}~" * 3,
]


@pytest.mark.parametrize("text", GOOD_SAMPLES)
def test_is_garbled_accepts_real_text(text):
    assert not is_garbled(text)


@pytest.mark.parametrize("text", GARBLED_SAMPLES)
def test_is_garbled_flags_broken_text(text):
    assert is_garbled(text)


def test_is_garbled_ignores_short_text():
    assert not is_garbled("\ue001\ue002")
    assert not is_garbled("")


@needs_devset
def test_no_false_positives_on_any_devset_page():
    """Every page of every devset PDF, as PDFium extracts it (what the parser judges), is not garbled."""
    flagged = []
    for path in sorted(PDFS.glob("*.pdf")):
        if path.name == "invalid.pdf":
            continue
        password = "openpassword" if "password" in path.name else None
        doc = pdfium.PdfDocument(str(path), password=password)
        try:
            for index in range(len(doc)):
                page = doc[index]
                text = page.get_textpage().get_text_range()
                if is_garbled(text):
                    flagged.append((path.name, index + 1))
        finally:
            doc.close()
    assert flagged == []


@needs_devset
def test_lshort_pypdf_text_is_flagged_pdfium_text_is_not():
    path = devset("lshort-zh-cn.pdf")
    doc = pdfium.PdfDocument(str(path))
    try:
        for number in (1, 21, 37, 64, 110):
            garbage = pypdf_text(path, number)
            assert not CJK.search(garbage)
            assert is_garbled(garbage), number
            assert not is_garbled(doc[number - 1].get_textpage().get_text_range()), number
    finally:
        doc.close()
    # The parser uses PDFium first, which decodes this file's CJK fonts: no OCR needed.
    parsed = parse_pdf(path, pages=[21], **LIMITS)
    assert parsed.pages[0].ocr is False
    assert "支持 UTF-8 编码" in parsed.pages[0].text


# --------------------------------------------------------------------------- OCR


def test_lines_to_text_reading_order():
    def box(x0, y0, x1, y1):
        return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]

    result = [
        [box(300, 12, 500, 40), "world", 0.9],
        [box(10, 10, 200, 38), "hello", 0.9],
        [box(10, 60, 100, 90), "中文", 0.9],
        [box(110, 62, 200, 92), "文本", 0.9],
        [box(10, 110, 200, 140), "low score", 0.2],
    ]
    assert ocr_mod.lines_to_text(result) == "hello world\n中文文本"


def test_ocr_engine_loads():
    assert ocr_mod.available(), "RapidOCR failed to load; are rapidocr and openvino (and opencv's libGL) installed?"


def test_image_only_pdf_is_ocrd(scan_pdf):
    events = []
    parsed = parse_pdf(scan_pdf, progress=lambda *e: events.append(e), **LIMITS)
    page = parsed.pages[0]
    assert page.ocr is True and parsed.ocr_pages == [1] and parsed.empty_pages == []
    words = set(re.findall(r"[a-z]+", page.text.lower()))
    assert {"quick", "brown", "fox", "lazy", "river"} <= words, page.text
    assert "The quick brown fox jumps over" in page.text  # word spaces kept (200 dpi render)
    assert ("ocr", 1, 1) in events and events[-1] == ("ocr", 1, 1)


def test_image_only_pdf_without_ocr_is_refused(scan_pdf):
    with pytest.raises(DocumentError) as err:
        parse_pdf(scan_pdf, ocr=False, **LIMITS)
    assert_helpful(err.value, "no extractable text (scanned PDF?)", "OCR")


def test_ocr_unavailable_does_not_crash(scan_pdf, tmp_path, monkeypatch):
    def broken():
        raise ocr_mod.OCRUnavailable("ImportError: no module named rapidocr_onnxruntime")

    monkeypatch.setattr(ocr_mod, "get_engine", broken)
    with pytest.raises(DocumentError) as err:
        parse_pdf(scan_pdf, **LIMITS)
    assert_helpful(err.value, "no extractable text", "rapidocr")
    # A mixed file: the text page is kept, the scanned page stays empty with a warning.
    writer = pypdf.PdfWriter()
    writer.append(pypdf.PdfReader(io.BytesIO(_text_pdf_bytes("A page with a real text layer"))))
    writer.append(pypdf.PdfReader(str(scan_pdf)))
    mixed = tmp_path / "mixed.pdf"
    writer.write(mixed)
    parsed = parse_pdf(mixed, **LIMITS)
    assert parsed.pages[0].text == "A page with a real text layer"
    assert parsed.pages[1].text == "" and parsed.empty_pages == [2] and parsed.ocr_pages == []
    assert any("OCR unavailable" in w for w in parsed.warnings)


def test_ocr_budget_is_bounded(scan_pdf, tmp_path):
    writer = pypdf.PdfWriter()
    writer.append(pypdf.PdfReader(io.BytesIO(_text_pdf_bytes("Text page"))))
    for _ in range(3):
        writer.append(pypdf.PdfReader(str(scan_pdf)))
    path = tmp_path / "scans.pdf"
    writer.write(path)
    parsed = parse_pdf(path, max_ocr_pages=1, **LIMITS)
    assert parsed.ocr_pages == [2] and parsed.empty_pages == [3, 4]
    assert any("limited to 1 pages" in w and "3-4" in w for w in parsed.warnings)


@needs_devset
def test_garbled_lshort_pages_are_ocrd(tmp_path, monkeypatch):
    """When the text layer comes out as mojibake (here: PDFium made to fail, so pypdf's
    mojibake is all there is), the page is detected as garbled and OCR'd into Chinese."""
    reader = pypdf.PdfReader(str(devset("lshort-zh-cn.pdf")))
    writer = pypdf.PdfWriter()
    for number in (1, 4):
        writer.add_page(reader.pages[number - 1])
    path = tmp_path / "lshort-2pages.pdf"
    writer.write(path)

    def pdfium_fails(doc, index):
        raise pdfium.PdfiumError("simulated failure")

    monkeypatch.setattr(parse_mod, "_pdfium_page_text", pdfium_fails)
    parsed = parse_pdf(path, **LIMITS)
    assert parsed.ocr_pages == [1, 2]
    first, second = parsed.pages
    assert first.ocr and second.ocr
    assert len(CJK.findall(first.text)) >= 20 and "简短" in first.text and "介绍" in first.text
    assert "致谢" in second.text
    assert not CJK_SPACE_CJK.search(first.text + second.text)
    assert any("garbled" in w for w in parsed.warnings)


def test_outline_titles_are_kept_per_page(tmp_path):
    """PDF bookmarks name the sections that start on a page; search uses them (chunk metadata `outline`)."""
    reader = pypdf.PdfReader(io.BytesIO(_text_pdf_bytes("Some words on a page")))
    writer = pypdf.PdfWriter()
    for _ in range(3):
        writer.add_page(reader.pages[0])
    chapter = writer.add_outline_item(title="2  Installing\nthe tools", page_number=1)
    writer.add_outline_item(title="2.1 Unpacking", page_number=1, parent=chapter)
    writer.add_outline_item(title="3 Usage", page_number=2)
    path = tmp_path / "outline.pdf"
    with open(path, "wb") as f:
        writer.write(f)
    parsed = parse_pdf(path, **LIMITS)
    assert [p.outline for p in parsed.pages] == [(), ("2 Installing the tools", "2.1 Unpacking"), ("3 Usage",)]
    from agent.ingest.chunking import chunk_pages
    chunks = chunk_pages(parsed.pages, file="outline.pdf", doc_id="d", chunk_size=800, chunk_overlap=100)
    assert [c.metadata.get("outline") for c in chunks] == [None, ["2 Installing the tools", "2.1 Unpacking"],
                                                           ["3 Usage"]]


def test_circular_outline_does_not_hang_the_parse(tmp_path):
    """A bookmark that is its own next sibling (and child): read once, the parse completes."""
    stream = b"BT /F1 18 Tf 40 150 Td (Looping bookmarks) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /Outlines 6 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 300] /Resources << /Font << /F1 5 0 R >> >> "
         b"/Contents 4 0 R >>"),
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Outlines /First 7 0 R /Last 7 0 R /Count 1 >>",
        b"<< /Title (Loop) /Parent 6 0 R /Next 7 0 R /First 7 0 R /Last 7 0 R /Count 1 /Dest [3 0 R /Fit] >>",
    ]
    path = tmp_path / "loop.pdf"
    path.write_bytes(build_pdf(objects))
    t0 = time.perf_counter()
    parsed = parse_pdf(path, **LIMITS)
    assert time.perf_counter() - t0 < 10
    assert parsed.pages[0].text == "Looping bookmarks" and set(parsed.pages[0].outline) == {"Loop"}


def test_page_labels_are_read_where_they_differ_from_the_physical_number(tmp_path):
    """Front matter numbered i, ii and the body from 21: citations show what is printed on the page."""
    from pypdf.constants import PageLabelStyle

    from agent.ingest.chunking import chunk_pages

    reader = pypdf.PdfReader(io.BytesIO(_text_pdf_bytes("Some words on a page")))
    writer = pypdf.PdfWriter()
    for _ in range(4):
        writer.add_page(reader.pages[0])
    writer.set_page_label(0, 1, style=PageLabelStyle.LOWERCASE_ROMAN)
    writer.set_page_label(2, 3, style=PageLabelStyle.DECIMAL, start=21)
    labelled = tmp_path / "labelled.pdf"
    with open(labelled, "wb") as f:
        writer.write(f)
    parsed = parse_pdf(labelled, **LIMITS)
    assert [(p.number, p.label) for p in parsed.pages] == [(1, "i"), (2, "ii"), (3, "21"), (4, "22")]
    chunks = chunk_pages(parsed.pages, file="labelled.pdf", doc_id="d", chunk_size=200, chunk_overlap=0)
    assert {(c.metadata["page"], c.metadata["page_label"]) for c in chunks} == {(1, "i"), (2, "ii"), (3, "21"), (4, "22")}
    plain = tmp_path / "plain.pdf"
    plain.write_bytes(_text_pdf_bytes("Some words on a page"))
    page = parse_pdf(plain, **LIMITS).pages[0]
    assert page.label == ""  # no labels: the physical number is the printed one
    assert "page_label" not in chunk_pages([page], file="p.pdf", doc_id="d", chunk_size=200, chunk_overlap=0)[0].metadata
