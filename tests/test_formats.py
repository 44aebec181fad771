"""Non-PDF readers: detection by content, decoding, locations, hostile input."""
from __future__ import annotations

import pytest

from agent.errors import DocumentError
from agent.ingest.chunking import chunk_pages
from agent.ingest.formats import detect, html, markdown, read_sections, text


def test_detect_by_content_not_extension():
    assert detect("report.txt", b"%PDF-1.7\n") == "pdf"
    assert detect("page.txt", b"<!DOCTYPE html><html>") == "html"
    assert detect("notes.md", b"# Title") == "markdown"
    assert detect("notes.log", b"plain") == "text"


@pytest.mark.parametrize("head", [b"\x89PNG\r\n\x1a\n", b"\x7fELF\x02\x01\x00\x00", b"PK\x03\x04rest"])
def test_unsupported_lists_supported_types(head):
    with pytest.raises(DocumentError) as err:
        detect("x.bin", head)
    assert "PDF" in err.value.fix and "Markdown" in err.value.fix


def test_named_pdf_that_is_not_one_is_refused():
    with pytest.raises(DocumentError):
        detect("fake.pdf", b"hello")


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
    for a, b in zip(sections, sections[1:]):
        assert b.line_start == a.line_end + 1
    assert "line 61" in sections[1].text.split("\n")[0]


def test_one_huge_line_is_cut_not_kept_whole():
    sections = text.read(b"a" * (text.MAX_LINE * 3 + 5))
    assert max(len(s.text) for s in sections) <= text.MAX_LINE * text.LINES_PER_SECTION + text.LINES_PER_SECTION
    assert sum(len(s.text.replace("\n", "")) for s in sections) == text.MAX_LINE * 3 + 5


def test_markdown_heading_paths():
    sections = markdown.read(b"intro\n# A\nalpha\n## B\nbeta\n# C\ngamma\n")
    assert [(s.heading, s.line_start) for s in sections] == [("", 1), ("A", 2), ("A > B", 4), ("C", 6)]


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
