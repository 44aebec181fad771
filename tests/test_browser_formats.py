"""A Word document end to end in a real browser: upload on the Documents page, ask on the Chat page
(Ollama double), the citation says heading path and paragraphs, the preview is the section with the
cited passage highlighted (no page image). Same app and browser set-up as tests/test_browser_e2e.py."""

from __future__ import annotations

import re
from pathlib import Path

import docx
import pytest

from tests.ollama_double import OllamaDouble
from tests.support import CHROMIUM
from tests.test_browser_e2e import browser_page, nav, running_app, settle

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
]

PASSAGE = "Connect the red wire to terminal four before you switch the pump on."
FILLER = ("The wiring of the pump follows the colour code printed on the housing, and every cable is "
          "fastened with the clips that come in the box. ")


def _manual(tmp_path: Path) -> Path:
    """A DOCX whose section "Install > Wiring" is long enough to be cut into several chunks."""
    document = docx.Document()
    document.add_heading("Install", level=1)
    document.add_paragraph("Unpack the pump and keep the box for the clips.")
    document.add_heading("Wiring", level=2)
    for _ in range(3):
        document.add_paragraph(FILLER * 2)
    document.add_paragraph(PASSAGE)
    document.add_heading("Cleaning", level=1)
    document.add_paragraph("Rinse the filter with warm water once a month.")
    path = tmp_path / "pump-manual.docx"
    document.save(path)
    return path


def test_a_docx_is_uploaded_cited_with_heading_and_paragraph_and_previewed_as_its_section(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    manual = _manual(tmp_path)
    with OllamaDouble() as double, running_app(tmp_path, double.url, AGENT_CHUNK_SIZE="300",
                                               AGENT_CHUNK_OVERLAP="0") as app, browser_page(app) as page:
        page.goto(f"{app.base}/documents")
        page.get_by_text("Add documents", exact=False).first.wait_for()
        page.locator("input[type=file]").set_input_files(str(manual))
        expect(page.get_by_text("pump-manual.docx: added", exact=False)).to_be_visible()
        expect(page.get_by_text("Documents in “default” (1)")).to_be_visible()

        nav(page, "Chat")
        double.reply_tool_call("search_documents", {"query": "red wire terminal four"})
        double.reply("Connect the red wire to terminal four first [1].")
        box = page.get_by_placeholder("Ask a question about your documents")
        box.fill("Which terminal does the red wire go to?")
        box.press("Enter")
        message = page.locator("[data-testid=stChatMessage]").last
        link = message.get_by_role("link", name="[1]")
        expect(link).to_be_visible(timeout=30_000)
        assert re.fullmatch(r"pump-manual\.docx Install > Wiring, ¶ \d(–\d)?", link.get_attribute("title") or "")
        expect(page.locator("[data-testid=stChatMessage]").get_by_role("button", name="Stop")).to_have_count(0)

        page.get_by_text("Sources (", exact=False).last.click()
        header = page.get_by_text(re.compile(r"\[1\] pump-manual\.docx · Install > Wiring, ¶ \d"))
        expect(header).to_be_visible()
        assert "p. " not in header.inner_text()
        page.get_by_text("Show the section").first.click()
        settle(page, 500)
        marked = page.locator("[data-testid=stMarkdownContainer] span").filter(has_text="terminal four")
        expect(marked.first).to_be_visible()
        background = marked.first.evaluate("e => getComputedStyle(e).backgroundColor")
        assert background not in ("rgba(0, 0, 0, 0)", "transparent"), background  # the passage is highlighted
        preview = marked.first.evaluate("e => e.closest('[data-testid=stMarkdownContainer]').innerText")
        assert "Wiring" in preview and "Rinse the filter" not in preview  # the section, not the document
        assert len(marked.first.inner_text()) < len(preview)  # only the cited passage is marked
        assert not page.locator("[data-testid=stImage] img").count(), "no page image for a Word document"
