"""End to end in a real browser: `streamlit run` + Debian's Chromium driven by Playwright.

The Ollama double runs in this process; the app runs as a subprocess pointed at it and
at a temporary data directory. The browser uploads a PDF on the Documents page, asks a
question on the Chat page, watches the answer stream in, and checks that a source cites
the right file and page. Screenshots of the three pages are saved under docs/.
Every request the browser makes outside 127.0.0.1 is blocked (and would fail the test).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from agent.config import ENV_VARS
from bench.common import free_port
from tests.conftest import DEVSET_PDFS
from tests.ollama_double import OllamaDouble

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GEOLOGY = DEVSET_PDFS / "squad_Geology.pdf"
GNUPLOT = DEVSET_PDFS / "gnuplot.pdf"  # 311 pages, 1305 chunks
CHROMIUM = shutil.which("chromium")
QUESTION = "What do petrologists use electron microprobes in the laboratory for?"  # devset q014, gold page 3
ANSWER = ("Petrologists use electron microprobes in the laboratory to identify rocks: they measure the "
          "chemistry of the minerals in a sample [squad_Geology.pdf p.3]. <script>window.pwned = 1</script>")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-background-networking", "--disable-gpu", "--no-first-run",
                 "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
]


def wait_for_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


@contextlib.contextmanager
def app_in_browser(tmp_path: Path, double: OllamaDouble) -> Iterator[tuple[Any, str]]:
    """`streamlit run` on a free port against `double`, and a Chromium page that may only talk to
    127.0.0.1; at the end, no request left the machine and the server log holds no traceback."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "streamlit.log"
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS.values()}
    env.update(OLLAMA_HOST=double.url, AGENT_DATA_DIR=str(tmp_path / "data"),
               AGENT_EMBEDDING="ollama:nomic-embed-text", STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    with open(log_path, "wb") as log:
        app = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
             "--server.headless", "true", "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    outside: list[str] = []
    try:
        wait_for_http(f"{base}/_stcore/health", 40)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US")

                def guard(route):  # nothing may leave the machine
                    if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
                        return route.continue_()
                    outside.append(route.request.url)
                    return route.abort()

                context.route("**/*", guard)
                page = context.new_page()
                page.set_default_timeout(30_000)
                yield page, base
            finally:
                browser.close()
    finally:
        app.terminate()
        try:
            app.wait(10)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait(5)
    assert not outside, f"requests outside 127.0.0.1: {outside}"
    log_text = log_path.read_text(errors="replace")
    assert "Traceback" not in log_text, log_text[-3000:]


@pytest.mark.skipif(not GEOLOGY.exists(), reason="devset PDFs not found at /work/shared/devset")
def test_upload_ask_and_see_cited_source(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    DOCS.mkdir(exist_ok=True)
    with OllamaDouble(chunk_delay=0.04) as double, app_in_browser(tmp_path, double) as (page, base):
        # Documents: upload a PDF and see it ingested and listed.
        page.goto(f"{base}/documents")
        page.get_by_text("Add PDF files").wait_for()
        page.locator("input[type=file]").set_input_files(str(GEOLOGY))
        expect(page.get_by_text("squad_Geology.pdf: added, 4 pages")).to_be_visible()
        expect(page.get_by_text("Documents in 'default' (1)")).to_be_visible()
        expect(page.get_by_text("Documents to delete")).to_be_visible()  # widgets past the table drawn
        expect(page.locator("[data-testid=stDataFrame] canvas").first).to_be_attached()
        page.wait_for_timeout(1500)  # the data grid paints its canvas after mounting
        page.screenshot(path=str(DOCS / "documents.png"))

        # Chat: ask, watch the answer stream, open the sources.
        double.reply_tool_call("search_documents", {"query": "electron microprobes petrologists"})
        double.reply(ANSWER, first_token_delay=0.5, chunk_delay=0.08)
        page.get_by_role("link", name="Chat").click()
        box = page.get_by_placeholder("Ask a question about your documents")
        box.fill(QUESTION)
        box.press("Enter")
        stop = page.locator("[data-testid=stChatMessage]").get_by_role("button", name="Stop", exact=True)
        expect(stop).to_be_visible()  # our Stop button: the answer is still streaming
        expect(page.get_by_text("to identify rocks", exact=False)).to_be_visible()
        expect(page.get_by_text("[squad_Geology.pdf p.3]", exact=False)).to_be_visible()
        expect(stop).to_have_count(0)  # finished
        sources = page.get_by_text("Sources (", exact=False).last
        sources.click()
        cited = page.get_by_text("squad_Geology.pdf · p. 3", exact=False)
        expect(cited.first).to_be_visible()
        page.get_by_text("Show the page").first.click()
        expect(page.locator("[data-testid=stImage] img").first).to_be_visible()
        assert page.evaluate("() => window.pwned") is None, "model output ran as HTML"
        expect(page.get_by_text("<script>window.pwned = 1</script>", exact=False)).to_be_visible()
        page.set_viewport_size({"width": 1360, "height": 1500})
        page.locator("[data-testid=stChatMessage]").first.scroll_into_view_if_needed()
        page.wait_for_timeout(800)
        page.screenshot(path=str(DOCS / "chat.png"))
        page.set_viewport_size({"width": 1360, "height": 900})

        # Stop: a long answer is cut short, its partial text kept and marked incomplete.
        double.reply_tool_call("search_documents", {"query": "rocks"})
        double.reply(" ".join(f"rock{i}" for i in range(150)), chunk_delay=0.05)
        box.fill("Tell me everything about rocks")
        box.press("Enter")
        expect(page.get_by_text("rock5 ", exact=False).first).to_be_visible()
        stop.click()
        expect(stop).to_have_count(0)
        # agent mode: the engine stores the turn once the model's current call ends
        expect(page.get_by_text("Incomplete answer: Stopped by the user.")).to_be_visible(timeout=20_000)
        assert "rock149" not in page.inner_text("body")
        expect(box).to_be_enabled()
        assert double.last_chat()["messages"][-1]["role"] == "tool"

        # Settings: the page renders; screenshot.
        page.get_by_role("link", name="Settings").click()
        expect(page.get_by_text("Saved to", exact=False)).to_be_visible()
        page.get_by_role("tab", name="Prompts").click()
        expect(page.get_by_text("Must keep: {context} {question}", exact=False)).to_be_visible()
        page.wait_for_timeout(500)
        page.screenshot(path=str(DOCS / "settings.png"))


@pytest.mark.skipif(not GNUPLOT.exists(), reason="devset PDFs not found at /work/shared/devset")
def test_an_upload_finishes_while_the_user_is_on_another_page(tmp_path: Path) -> None:
    """Issue 13, item 1: leaving the page mid-ingestion used to discard the upload."""
    from playwright.sync_api import expect

    with OllamaDouble() as double, app_in_browser(tmp_path, double) as (page, base):
        double.embed_delay = 0.15  # ~6 s of embedding: the user is away for part of it
        page.goto(f"{base}/documents")
        page.get_by_text("Add PDF files").wait_for()
        page.locator("input[type=file]").set_input_files(str(GNUPLOT))
        expect(page.get_by_text("Embedding chunks", exact=False).first).to_be_visible(timeout=60_000)
        page.get_by_role("link", name="Chat").click()
        expect(page.get_by_placeholder("Ask a question about your documents")).to_be_visible()
        page.wait_for_timeout(1000)
        page.get_by_test_id("stSidebarNavLink").filter(has_text="Documents").click()
        expect(page.get_by_text("gnuplot.pdf: added, 311 pages", exact=False)).to_be_visible(timeout=90_000)
        expect(page.get_by_text("Documents in 'default' (1)")).to_be_visible()
        assert not list((tmp_path / "data" / "uploads").glob("*")), "the temp upload is removed"
