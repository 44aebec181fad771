"""Non-PDF readers: detection by content, decoding, locations, hostile input."""
from __future__ import annotations

import io
import itertools
import json
import re
import time
import zipfile

import docx
import pptx
import pytest

from agent.errors import DocumentError
from agent.ingest.chunking import chunk_pages
from agent.ingest.formats import detect, html, markdown, read_sections, text


def test_detect_by_content_not_extension():
    assert detect("report.txt", b"%PDF-1.7\n") == "pdf"
    assert detect("page.txt", b"<!DOCTYPE html><html>") == "html"
    assert detect("notes.md", b"# Title") == "markdown"
    assert detect("notes.log", b"plain") == "text"


@pytest.mark.parametrize("head", [b"GIF89a\x01\x00", b"\x7fELF\x02\x01\x00\x00"])
def test_unsupported_lists_supported_types(head):
    with pytest.raises(DocumentError) as err:
        detect("x.bin", head)
    assert "PDF" in err.value.fix and "Markdown" in err.value.fix


def test_named_pdf_that_is_not_one_goes_to_the_pdf_parser_to_explain():
    assert detect("fake.pdf", b"hello") == "pdf"


@pytest.mark.parametrize("encoded", ["第一行中文\n第二行".encode("gb18030"), "第一行中文\n第二行".encode("utf-16"),
                                     "第一行中文\n第二行".encode("utf-8-sig"), "第一行中文\n第二行".encode()])
def test_text_encodings_decode(encoded):
    assert text.decode(encoded) == "第一行中文\n第二行"


def test_undecodable_text_is_refused():
    with pytest.raises(DocumentError):
        text.decode(b"\xff\xfe" + b"\x00\xd8")  # UTF-16 BOM then a lone surrogate


def test_text_sections_carry_line_ranges_that_cover_the_file():
    data = "\n".join(f"line {i}" for i in range(1, 151)).encode()
    sections = text.read(data)
    assert sections[0].line_start == 1 and sections[-1].line_end == 150
    for a, b in itertools.pairwise(sections):
        assert b.line_start == a.line_end + 1
    assert "line 61" in sections[1].text.split("\n")[0]


def test_one_huge_line_is_cut_not_kept_whole():
    sections = text.read(b"a" * (text.MAX_LINE * 3 + 5))
    assert max(len(s.text) for s in sections) <= text.MAX_LINE * text.LINES_PER_SECTION + text.LINES_PER_SECTION
    assert sum(len(s.text.replace("\n", "")) for s in sections) == text.MAX_LINE * 3 + 5


def test_markdown_heading_paths():
    sections = markdown.read(b"intro\n# A\nalpha\n\n## B\nbeta\n# C\ngamma\n\n")
    assert [(s.heading, s.line_start, s.line_end) for s in sections] == \
        [("", 1, 1), ("A", 2, 3), ("A > B", 5, 6), ("C", 7, 8)]  # a range ends at its section's last written line


def test_html_drops_scripts_and_iframes_and_keeps_headings():
    page = (b"<html><head><script>alert(1)</script></head><body><h1>Setup</h1><p>Turn &amp; push</p>"
            b"<iframe src='http://x'>frame text</iframe><script>steal()</script><h2>Wiring</h2><p>red wire</p>")
    sections = html.read(page)
    joined = " ".join(s.text for s in sections)
    assert "alert" not in joined and "steal" not in joined and "frame text" not in joined
    assert [(s.heading, s.text) for s in sections] == [("Setup", "Setup\nTurn & push"), ("Setup > Wiring", "Wiring\nred wire")]


def test_chunks_never_cross_sections_and_carry_location():
    sections = markdown.read(b"# A\n" + b"alpha " * 200 + b"\n# B\n" + b"beta " * 200)
    chunks = chunk_pages(sections, file="n.md", doc_id="d", chunk_size=300, chunk_overlap=30)
    for c in chunks:
        words = set(c.page_content.replace("#", " ").split()) - {"A", "B"}
        assert not {"alpha", "beta"} <= words
        assert c.metadata["loc_kind"] == "section"
        assert c.metadata["heading"] == {1: "A", 2: "B"}[c.metadata["page"]]
        assert words <= ({"alpha"} if c.metadata["page"] == 1 else {"beta"})


def test_text_chunks_have_line_metadata():
    chunks = chunk_pages(text.read(b"one\ntwo\n"), file="t.txt", doc_id="d", chunk_size=300, chunk_overlap=0)
    assert chunks[0].metadata["loc_kind"] == "lines"
    assert (chunks[0].metadata["line_start"], chunks[0].metadata["line_end"]) == (1, 2)


def test_read_sections_refuses_over_limit_and_empty(tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 2048)
    with pytest.raises(DocumentError):
        read_sections(big, "big.txt", max_bytes=1024)
    empty = tmp_path / "e.md"
    empty.write_bytes(b"\n\n")
    with pytest.raises(DocumentError):
        read_sections(empty, "e.md", max_bytes=1024)
    assert read_sections(big, "big.txt", max_bytes=4096)[0] == "text"


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _docx_bytes() -> bytes:
    document = docx.Document()
    document.add_paragraph("Preface text")
    document.add_heading("Install", level=1)
    document.add_paragraph("Unpack the box.")
    document.add_heading("Wiring", level=2)
    document.add_paragraph("Connect the red wire.")
    soft = document.add_paragraph("Then the blue one,")
    soft.add_run().add_break()  # a line break inside the paragraph (Shift+Enter)
    soft.add_run("and tighten both.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Volts", "12"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx_sections_have_heading_paths_and_paragraph_numbers(tmp_path):
    kind, sections = read_sections(_write(tmp_path, "r.bin", _docx_bytes()), "r.bin", max_bytes=10**7)
    assert kind == "docx"
    assert [s.heading for s in sections] == ["", "Install", "Install > Wiring"]
    assert "Volts | 12" in sections[2].text and "red wire" in sections[2].text
    assert [s.para_first for s in sections] == [1, 0, 0]  # the preface has no heading line; the others open with it
    chunks = chunk_pages(sections, file="r.docx", doc_id="d", chunk_size=40, chunk_overlap=0)

    def where(passage):
        meta = next(c.metadata for c in chunks if c.page_content.endswith(passage))
        return meta["heading"], meta["para_start"], meta["para_end"]

    assert where("Preface text") == ("", 1, 1)
    assert where("Connect the red wire.") == ("Install > Wiring", 1, 1)  # in a chunk with its heading's title
    assert where("Then the blue one, and tighten both.") == ("Install > Wiring", 2, 2)  # one paragraph, one ¶
    assert where("Volts | 12") == ("Install > Wiring", 3, 3)


def _paragraph_locations(sections, chunk_size=40):
    chunks = chunk_pages(sections, file="f", doc_id="d", chunk_size=chunk_size, chunk_overlap=0)
    return [(c.metadata["heading"], c.metadata["para_start"], c.metadata["para_end"], c.page_content) for c in chunks]


def test_html_chunks_carry_heading_and_paragraph_numbers():
    page = (b"<body><p>Before any heading.</p><h1>Setup</h1><p>Unpack the box.</p><ul><li>Check the cable.</li>"
            b"<li>Check the plug.</li></ul><h2>Wiring</h2><p>Connect the red\n  wire.</p><p>Blue<br>next.</p>"
            b"<pre>step 1\nstep 2</pre></body>")
    numbered = {"Before any heading.": ("", 1), "Setup": ("Setup", 0), "Unpack the box.": ("Setup", 1),
                "Check the cable.": ("Setup", 2), "Check the plug.": ("Setup", 3), "Wiring": ("Setup > Wiring", 0),
                "Connect the red wire.": ("Setup > Wiring", 1), "Blue next.": ("Setup > Wiring", 2),
                "step 1": ("Setup > Wiring", 3), "step 2": ("Setup > Wiring", 4)}  # a source line break is a space
    for size in (22, 40, 400):  # every block fits in a chunk; chunks take one or more blocks
        locations = _paragraph_locations(html.read(page), chunk_size=size)
        assert "".join(chunk for *_, chunk in locations).replace("\n", "") == "".join(numbered)
        for heading, start, end, chunk in locations:
            lines = [numbered[line] for line in chunk.split("\n")]
            assert {h for h, _ in lines} == {heading}
            assert (start, end) == (max(lines[0][1], 1), max(lines[-1][1], 1))


def test_html_section_without_a_heading_title_line_counts_from_its_first_block():
    sections = html.read(b"<h1> </h1><p>Only a paragraph.</p>")
    assert [(s.heading, s.para_first) for s in sections] == [("", 1)]


def test_pptx_one_section_per_slide(tmp_path):
    deck = pptx.Presentation()
    for title in ("Budget", "Timeline"):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = f"{title} details"
    out = io.BytesIO()
    deck.save(out)
    kind, sections = read_sections(_write(tmp_path, "d.pptx", out.getvalue()), "d.pptx", max_bytes=10**7)
    assert kind == "pptx"
    assert [(s.number, s.loc_kind, s.heading) for s in sections] == [(1, "slide", "Budget"), (2, "slide", "Timeline")]
    assert "Timeline details" in sections[1].text


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


_CONTAINER = (b'<?xml version="1.0"?><container xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
              b'<rootfiles><rootfile full-path="OEBPS/book.opf"/></rootfiles></container>')
_OPF = (b'<package xmlns="http://www.idpf.org/2007/opf"><manifest><item id="c1" href="one.xhtml"/>'
        b'<item id="c2" href="two.xhtml"/></manifest><spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>')


def test_epub_chapters_in_spine_order(tmp_path):
    data = _zip({"mimetype": b"application/epub+zip", "META-INF/container.xml": _CONTAINER, "OEBPS/book.opf": _OPF,
                 "OEBPS/one.xhtml": b"<html><body><h1>Chapter One</h1><p>The harbour.</p></body></html>",
                 "OEBPS/two.xhtml": b"<html><body><h1>Chapter Two</h1><script>x()</script><p>The storm.</p></body></html>"})
    kind, sections = read_sections(_write(tmp_path, "b.epub", data), "b.epub", max_bytes=10**7)
    assert kind == "epub"
    assert [(s.number, s.heading) for s in sections] == [(1, "Chapter One"), (2, "Chapter Two")]
    assert "x()" not in sections[1].text
    assert [(h, a, b) for h, a, b, _ in _paragraph_locations(sections)] == [("Chapter One", 1, 1), ("Chapter Two", 1, 1)]


def test_zip_bomb_refused_by_declared_size(tmp_path):
    data = _zip({"word/document.xml": b"\0" * 5_000_000})  # deflates to a few KB
    assert len(data) < 100_000
    with pytest.raises(DocumentError) as err:
        read_sections(_write(tmp_path, "bomb.docx", data), "bomb.docx", max_bytes=200_000)
    assert "zip bomb" in err.value.fix


def test_zip_bomb_refused_when_declared_sizes_lie(tmp_path):
    data = bytearray(_zip({"word/document.xml": b"\0" * 5_000_000}))
    # rewrite the central directory's uncompressed size (offset 24 in the entry) to a small lie
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24:cd + 28] = (100).to_bytes(4, "little")
    with pytest.raises(DocumentError):
        read_sections(_write(tmp_path, "liar.docx", bytes(data)), "liar.docx", max_bytes=200_000)


@pytest.mark.parametrize("members", [
    {"word/document.xml": b"<w:document><unclosed"},  # malformed XML
    {"word/document.xml": b"<x/>"},  # missing [Content_Types].xml and relationships
    {"ppt/presentation.xml": b"<p/>"},
    {"META-INF/container.xml": b"<container/>"},  # EPUB naming no package
    {"META-INF/container.xml": b"<!DOCTYPE x [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;'>]><c>&b;</c>"},
    {"random.txt": b"hello"},  # a zip that is none of the formats
])
def test_malformed_containers_refused_cleanly(tmp_path, members):
    with pytest.raises(DocumentError):
        read_sections(_write(tmp_path, "bad.docx", _zip(members)), "bad.docx", max_bytes=10**7)


def test_truncated_zip_refused(tmp_path):
    with pytest.raises(DocumentError):
        read_sections(_write(tmp_path, "cut.docx", _docx_bytes()[:3000]), "cut.docx", max_bytes=10**7)


def test_password_protected_office_file_refused():
    with pytest.raises(DocumentError) as err:
        detect("secret.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    assert "password" in err.value.message


def _png(text_lines: list[str]) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 40)
    picture = Image.new("RGB", (1200, 120 + 70 * len(text_lines)), "white")
    draw = ImageDraw.Draw(picture)
    for i, line in enumerate(text_lines):
        draw.text((60, 60 + 70 * i), line, fill="black", font=font)
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


@pytest.mark.slow
def test_png_text_is_read_by_ocr(tmp_path):
    pytest.importorskip("rapidocr")
    kind, sections = read_sections(_write(tmp_path, "photo.png", _png(["The pump runs at 40 litres per minute"])),
                                   "photo.png", max_bytes=10**7)
    assert kind == "image" and sections[0].ocr and sections[0].loc_kind == "image"
    assert "litres" in sections[0].text.lower()


@pytest.mark.parametrize("data", [b"this is not a picture", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_png_that_is_not_an_image_is_refused(tmp_path, data):
    with pytest.raises(DocumentError):
        read_sections(_write(tmp_path, "fake.png", data), "fake.png", max_bytes=10**7)


def test_truncated_png_is_refused(tmp_path):
    with pytest.raises(DocumentError):
        read_sections(_write(tmp_path, "cut.png", _png(["hello"])[:200]), "cut.png", max_bytes=10**7)


def test_pipeline_ingests_markdown_and_keeps_what_was_indexed(workspace, tmp_path):
    from agent.ingest.pipeline import ingest_file

    def ingest(path):
        return ingest_file(path, workspace.collection(), workspace.embeddings, workspace.settings)

    notes = _write(tmp_path, "notes.md", b"# Pumps\nThe pump runs at 40 litres per minute.\n# Valves\nClose slowly.\n")
    added = ingest(notes)
    assert added.status == "added" and added.pages == 2
    metas = [d.metadata for d in workspace.collection().documents]
    assert {(m["heading"], m["loc_kind"]) for m in metas} == {("Pumps", "section"), ("Valves", "section")}
    for bad in (_write(tmp_path, "broken.docx", _zip({"word/document.xml": b"<w:document><unclosed"})),
                _write(tmp_path, "x.bin", b"\x7fELF\x02\x01\x00\x00")):
        result = ingest(bad)
        assert result.status == "failed" and result.message
    assert [d.metadata for d in workspace.collection().documents] == metas


def test_section_preview_returns_the_section_and_the_passage_span(tmp_path):
    from agent.app.sources import section_preview

    path = _write(tmp_path, "notes.md", b"# Pumps\nThe pump runs at 40 litres per minute.\n# Valves\nClose slowly.\n")
    text, (start, end) = section_preview(path, {"page": 2, "text": "Close slowly."})
    assert text == "# Valves\nClose slowly." and text[start:end] == "Close slowly."
    assert section_preview(path, {"page": 9, "text": "x"}) == ("", (-1, -1))


def test_location_labels_and_highlighted_section(tmp_path):
    from agent.app.sources import page_label, section_markdown

    assert page_label({"page": 3, "loc_kind": "slide"}) == "slide 3"
    assert page_label({"page": 1, "loc_kind": "lines", "line_start": 1, "line_end": 60}, "zh") == "第 1–60 行"
    assert page_label({"page": 2, "loc_kind": "section", "heading": "Pumps > Wiring"}) == "Pumps > Wiring"
    assert page_label({"page": 26, "page_label": "22"}) == "p. 22 (PDF page 26)"
    paragraphs = {"page": 2, "loc_kind": "section", "heading": "Setup > Wiring", "para_start": 2, "para_end": 4}
    assert page_label(paragraphs) == "Setup > Wiring, ¶ 2–4"
    assert page_label(paragraphs, "zh") == "Setup > Wiring，第 2–4 段"
    assert page_label({**paragraphs, "para_end": 2}) == "Setup > Wiring, ¶ 2"
    assert page_label({"page": 5, "loc_kind": "section", "para_start": 1, "para_end": 1}, "zh") == "第 5 节，第 1 段"
    assert page_label({"page": 2, "loc_kind": "section", "heading": "A > B", "line_start": 4, "line_end": 5}) == \
        "A > B, lines 4–5"
    path = _write(tmp_path, "n.md", b"# Pumps\nThe pump runs at 40 litres.\n")
    assert ":orange-background[The pump runs at 40 litres\\.]" in section_markdown(path, {"page": 1,
                                                                                       "text": "The pump runs at 40 litres."})


def test_cli_ingests_markdown_and_refuses_an_unsupported_type(ollama, tmp_path):
    from tests.support import double_environ, run_cli

    env = double_environ(ollama, AGENT_DATA_DIR=str(tmp_path / "data"))
    notes = _write(tmp_path, "notes.md", b"# Pumps\nThe pump runs at 40 litres per minute.\n")
    elf = _write(tmp_path, "tool.bin", b"\x7fELF\x02\x01\x00\x00" * 10)
    result = run_cli(["ingest", str(notes), str(elf)], env)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert "ADDED     notes.md" in result.stdout
    assert "FAILED    tool.bin" in result.stdout and "Word (.docx)" in result.stdout
    listed = json.loads(run_cli(["docs", "--json"], env).stdout)
    assert [(d["file"], d["kind"]) for d in listed] == [("notes.md", "markdown")]
    assert " notes.md " in (listing := run_cli(["docs"], env).stdout) and " Markdown " in listing, listing


def test_a_50_mb_text_file_of_one_line_is_cut_into_bounded_sections(tmp_path):
    size = 50 * 1024 * 1024
    path = _write(tmp_path, "one-line.txt", b"word " * (size // 5))
    t0 = time.perf_counter()
    kind, sections = read_sections(path, "one-line.txt", max_bytes=size + 1)
    assert kind == "text" and time.perf_counter() - t0 < 20
    assert max(len(s.text) for s in sections) <= (text.MAX_LINE + 1) * text.LINES_PER_SECTION
    assert sections[-1].line_end == -(-size // text.MAX_LINE)  # every piece of the line is kept, numbered


def test_paragraph_locations_reach_sources_and_ask_json():
    from langchain_core.documents import Document

    from agent.chat.answer import Answer
    from agent.search.retrieval import Hit

    chunk = chunk_pages(html.read(b"<h1>Setup</h1><p>Unpack.</p><p>Plug in the cable.</p>"), file="m.html",
                        doc_id="d", chunk_size=20, chunk_overlap=0)[-1]
    source = Hit(Document(page_content=chunk.page_content, metadata=chunk.metadata), 0.5).source()
    assert (source["loc_kind"], source["heading"], source["para_start"], source["para_end"]) == ("section", "Setup", 2, 2)
    shown = Answer("x [1]", [{**source, "number": 1, "cited": True}], "m", "c", "rag").as_json()["sources"][0]
    assert {k: shown[k] for k in ("loc_kind", "heading", "para_start", "para_end")} == \
        {"loc_kind": "section", "heading": "Setup", "para_start": 2, "para_end": 2}
    assert "line_start" not in shown  # only the keys a source has


def test_an_image_source_reads_as_the_image_not_a_page(tmp_path, monkeypatch):
    from agent.app.sources import is_image_source, page_label
    from agent.cli import _where
    from agent.ingest import ocr

    monkeypatch.setattr(ocr, "ocr_image", lambda image: "The pump runs at 40 litres per minute")
    kind, sections = read_sections(_write(tmp_path, "photo.jpg.bin", _png(["x"])), "photo.jpg.bin", max_bytes=10**7)
    assert kind == "image" and sections[0].loc_kind == "image"  # by content: the name says nothing
    meta = chunk_pages(sections, file="photo.png", doc_id="d", chunk_size=300, chunk_overlap=0)[0].metadata
    assert meta["loc_kind"] == "image" and meta["ocr"]
    source = {"file": "photo.png", "page": 1, "loc_kind": "image", "heading": ""}
    assert (page_label(source), page_label(source, "zh"), _where(source)) == ("image", "图片", "image")
    old = {"file": "scan.JPG", "page": 1}  # indexed before the "image" location: the file name decides
    assert is_image_source(old) and page_label(old) == "image"
    assert not is_image_source({"file": "a.pdf", "page": 1}) and page_label({"file": "a.pdf", "page": 1}) == "p. 1"


def test_the_type_is_the_detected_format_and_older_records_fall_back_to_the_extension(workspace, tmp_path):
    from agent.ingest.formats import type_label
    from agent.ingest.pipeline import ingest_file
    from agent.workspace import Workspace

    collection = workspace.collection()
    for name, data in (("report.bin", _docx_bytes()), ("page.txt", b"<!DOCTYPE html><h1>Pumps</h1><p>40 l/min</p>"),
                       ("notes.md", b"# Valves\nClose slowly.\n")):
        assert ingest_file(_write(tmp_path, name, data), collection, workspace.embeddings, workspace.settings).ok
    types = {i.file: type_label(i.file, i.kind) for i in collection.document_infos()}
    assert types == {"report.bin": "DOCX", "page.txt": "HTML", "notes.md": "Markdown"}  # by content, not name
    manifest = json.loads(collection.manifest_path.read_text(encoding="utf-8"))
    for record in manifest["documents"].values():
        del record["kind"]  # as written before the format was recorded
    collection.manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    old = Workspace(workspace.settings).collection()  # a fresh process's view
    assert {i.file: type_label(i.file, i.kind) for i in old.document_infos()} == \
        {"report.bin": "BIN", "page.txt": "Text", "notes.md": "Markdown"}
    assert (type_label("a.JPG", "image"), type_label("scan.bin", "image"), type_label("a.pdf", "pdf")) == \
        ("JPEG", "Image", "PDF")


def test_cli_ask_shows_a_docx_source_by_heading_and_paragraph(ollama, tmp_path):
    from agent.cli import _print_sources
    from agent.config import load_settings
    from agent.ingest.pipeline import ingest_file
    from agent.workspace import Workspace
    from tests.support import double_environ, run_cli

    env = double_environ(ollama, AGENT_DATA_DIR=str(tmp_path / "data"))
    workspace = Workspace(load_settings(tmp_path / "data", environ=env))
    assert ingest_file(_write(tmp_path, "r.docx", _docx_bytes()), workspace.collection(), workspace.embeddings,
                       workspace.settings).ok
    ollama.reply_tool_call("search_documents", {"query": "red wire"})
    ollama.reply("Connect the red wire [1].")
    data = json.loads(run_cli(["ask", "Which wire do I connect?", "--json"], env).stdout)
    wiring = next(s for s in data["sources"] if "red wire" in s["text"])
    assert (wiring["loc_kind"], wiring["heading"], wiring["para_start"]) == ("section", "Install > Wiring", 1)
    shown = io.StringIO()
    _print_sources(data["sources"], shown)  # what `ask` prints under the answer
    assert re.search(r"\[\d\] r\.docx Install > Wiring, ¶ 1(–\d)? ", shown.getvalue()), shown.getvalue()
