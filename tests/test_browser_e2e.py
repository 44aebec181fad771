"""End to end in a real browser: `streamlit run` + Debian's Chromium driven by Playwright.

The Ollama double runs in this process; the app runs as a subprocess pointed at it and at
a temporary data directory. The tests upload a PDF, ask questions, watch answers stream,
copy one, reload, go down to a phone's width, walk the whole Chinese UI looking for any
English left on screen, pull a model, and watch the Ollama status recover by itself.

Screenshots go to a temp dir; `scripts/screenshots.sh` sets SCREENSHOT_DIR=docs to refresh
the README's images (a normal test run never rewrites tracked files). Every request the
browser makes outside 127.0.0.1 is blocked and fails the test.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from agent.config import ENV_VARS
from tests.ollama_double import OllamaDouble
from tests.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DEVSET_PDFS,
    free_port,
    streamlit_server,
    wait_for_http,
)

GEOLOGY = DEVSET_PDFS / "squad_Geology.pdf"
#: How long the app may take to answer its health check: a bound on a wait on a possibly busy machine, not
#: a speed goal (bench.startup measures start-up).
STARTUP_WAIT = 120
QUESTION = "What do petrologists use electron microprobes in the laboratory for?"  # devset q014, gold page 3
ANSWER = ("Petrologists use electron microprobes in the laboratory to identify rocks: they measure the "
          "chemistry of the minerals in a sample [1]. <script>window.pwned = 1</script>")
ANSWER_ZH = "岩石学家在实验室里用电子探针鉴定岩石：测量样品中矿物的化学成分【1】。"
# The texts a user reads, per block: visible, not an icon ligature (translate="no"), not code, not
# the document's own text.
VISIBLE_TEXT_JS = """() => {
  const DATA = '[data-testid=stText]';  // excerpts quoted from the user's (English) PDF: data, not UI
  const blocks = new Map();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement;
    if (!node.textContent.trim() || !el || el.closest('[translate="no"], code, script, style, ' + DATA)) continue;
    const box = el.getBoundingClientRect(), style = getComputedStyle(el);
    if (box.width < 2 || box.height < 2 || style.visibility === 'hidden' || style.opacity === '0') continue;
    const block = el.closest('p, li, h1, h2, h3, h4, label, button, td, th, div') || el;
    blocks.set(block, (blocks.get(block) || '') + node.textContent);
  }
  return [...blocks.values()].map(t => t.trim());
}"""
# English a Chinese screen may show: names of things (and of the language switch's English), not sentences.
NAMES = re.compile(r"^English$|squad_Geology\.pdf|llama3\.2(:latest)?|gemma:2b|qwen3(:latest)?|nomic-embed-text(:latest)?|"
                   r"mistral(:latest)?|ollama:\S+|https?://\S+|\bOllama\b|\bMarkdown\b|\bPDF\b|\bOCR\b|\b[KMG]B\b|\d+(\.\d+)?\s*[KMG]?B\b|num_ctx|"
                   r"num_predict|keep_alive|\bdefault\b|\bp\.\d+|\d+(\.\d+)*|\b[A-Z][A-Z_]{3,}\b|\S*/\S*|\{\w+\}")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.skipif(not GEOLOGY.exists(), reason="devset PDFs not found at /work/shared/devset"),
]


def screenshot_dir(tmp_path: Path) -> Path:
    """docs/ when scripts/screenshots.sh asks for it, else the test's temp dir."""
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class App:
    """A running `streamlit run` and what the tests check after it ends."""

    base: str
    log_path: Path
    outside: list[str] = field(default_factory=list)  # requests the browser tried to send off the machine

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_app(tmp_path: Path, ollama_url: str, **extra_env: str) -> Iterator[App]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS.values()}
    env.update(OLLAMA_HOST=ollama_url, AGENT_DATA_DIR=str(tmp_path / "data"), AGENT_EMBEDDING="ollama:nomic-embed-text",
               STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", **extra_env)
    app = App(f"http://127.0.0.1:{port}", tmp_path / "streamlit.log")
    with open(app.log_path, "wb") as log, streamlit_server(env, port, log) as process:
        wait_for_http(f"{app.base}/_stcore/health", STARTUP_WAIT, process)
        yield app
    assert not app.outside, f"requests outside 127.0.0.1: {app.outside}"
    log = app.log()
    assert "Traceback" not in log, log[-3000:]
    assert "use_container_width" not in log and "deprecat" not in log.lower(), log[-3000:]


@contextmanager
def browser_page(app: App, **context_args: Any) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(**{"viewport": {"width": 1360, "height": 900}, "locale": "en-US",
                                             **context_args})

            def guard(route):  # nothing may leave the machine
                if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
                    return route.continue_()
                app.outside.append(route.request.url)
                return route.abort()

            context.route("**/*", guard)
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def nav(page: Any, title: str) -> None:
    page.get_by_test_id("stSidebarNavLink").filter(has_text=title).click()
    page.locator("h1").filter(has_text=title).wait_for()


def english_left(page: Any) -> list[str]:
    """Visible texts with an English word left once names (files, models, units) are removed."""
    left = []
    for text in page.evaluate(VISIBLE_TEXT_JS):
        if re.search(r"[A-Za-z]{2,}", NAMES.sub(" ", text)):
            left.append(text)
    return left


def settle(page: Any, ms: int = 1200) -> None:
    """Let Streamlit finish the run (no element marked stale), then paint."""
    page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=20_000)
    page.wait_for_timeout(ms)


# ---- English: upload, ask, copy, reload, phone width, stop, settings --------------------------------
def test_english_walk_upload_ask_copy_reload_phone(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    shots = screenshot_dir(tmp_path)
    with OllamaDouble(chunk_delay=0.04) as double, running_app(tmp_path, double.url) as app, \
            browser_page(app, timezone_id="Asia/Shanghai") as page:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.base)
        upload_and_list(page, app, expect)
        page.screenshot(path=str(shots / "documents.png"))
        nav(page, "Chat")
        ask_and_watch_the_status(page, double, expect)
        page.set_viewport_size({"width": 1360, "height": 1500})
        page.locator("[data-testid=stChatMessage]").last.evaluate("e => e.scrollIntoView({block: 'start'})")
        settle(page, 800)
        page.screenshot(path=str(shots / "chat.png"))
        page.set_viewport_size({"width": 1360, "height": 900})
        copy_and_reload(page, expect)
        phone_width(page, app.base, expect)
        stop_a_long_answer(page, double, expect)
        nav(page, "Settings")
        page.get_by_role("tab", name="Prompts").click()
        expect(page.get_by_text("Must keep: {context} {question}", exact=False)).to_be_visible()
        settle(page, 500)
        page.screenshot(path=str(shots / "settings.png"))


def upload_and_list(page: Any, app: App, expect: Any) -> None:
    page.goto(f"{app.base}/documents")
    page.get_by_text("Add documents", exact=False).first.wait_for()
    dropzone = page.get_by_test_id("stFileUploaderDropzone")
    assert "Choose files" in dropzone.evaluate(
        "e => getComputedStyle(e.querySelector('button [data-testid=stMarkdownContainer]'), '::after').content")
    page.locator("input[type=file]").set_input_files(str(GEOLOGY))
    expect(page.get_by_text("squad_Geology.pdf: added, 4 pages, 22 chunks", exact=False)).to_be_visible()
    expect(page.get_by_text("Documents in “default” (1)")).to_be_visible()
    expect(page.get_by_text("Documents to delete")).to_be_visible()  # widgets past the table drawn
    expect(page.locator("[data-testid=stDataFrame] canvas").first).to_be_attached()
    settle(page, 1500)  # the data grid paints its canvas after mounting


def ask_and_watch_the_status(page: Any, double: OllamaDouble, expect: Any) -> None:
    """While the model is silent the status line counts; once text streams it is gone."""
    double.reply_tool_call("search_documents", {"query": "electron microprobes petrologists"})
    double.reply(ANSWER, first_token_delay=2.5, chunk_delay=0.15)
    box = page.get_by_placeholder("Ask a question about your documents")
    box.fill(QUESTION)
    box.press("Enter")
    message = page.locator("[data-testid=stChatMessage]").last
    status = message.get_by_text(re.compile(r"The model is reading 5 excerpts… \d+ s"))
    expect(status).to_be_visible(timeout=15_000)
    assert "……" not in status.inner_text() and "…… " not in page.inner_text("body")
    expect(page.get_by_text("to identify rocks", exact=False)).to_be_visible()
    stop = message.get_by_role("button", name="Stop", exact=True)
    expect(stop).to_be_visible()  # still streaming (32 words at 0.15 s each) ...
    assert not message.get_by_text(re.compile(r"… \d+ s")).count()  # ... and the clock is gone
    link = message.get_by_role("link", name="[1]")
    expect(link).to_be_visible()
    assert re.fullmatch(r"squad_Geology\.pdf p\. \d", link.get_attribute("title") or "")
    expect(page.locator("[data-testid=stChatMessage]").get_by_role("button", name="Stop")).to_have_count(0)
    page.get_by_text("Sources (", exact=False).last.click()
    expect(page.get_by_text("squad_Geology.pdf · p. 3", exact=False).first).to_be_visible()
    assert not page.get_by_text(re.compile(r"score \d")).count(), "no raw retrieval scores"
    target = (link.get_attribute("href") or "").split("#")[-1]
    link.click()  # the [1] in the answer jumps to source 1 in the list: the anchor right above its header
    assert page.url.endswith(f"#{target}")
    after = page.evaluate("t => document.getElementById(t).closest('[data-testid=stElementContainer]')"
                          ".nextElementSibling.innerText", target)
    assert re.match(r"\[1\] squad_Geology\.pdf · p\. \d", after), after
    page.get_by_text("Show the page").first.click()
    image = page.locator("[data-testid=stImage] img").first
    expect(image).to_be_visible()
    assert highlighted_pixels(page, image.get_attribute("src") or "") > 2_000, "the cited passage is highlighted"
    assert page.evaluate("() => window.pwned") is None, "model output ran as HTML"
    expect(page.get_by_text("<script>window.pwned = 1</script>", exact=False)).to_be_visible()


def highlighted_pixels(page: Any, src: str) -> int:
    """Pixels of the page image under the translucent yellow fill (white paper seen through it)."""
    import numpy as np
    from PIL import Image

    png = page.request.get(src).body()
    r, g, b = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int).transpose(2, 0, 1)
    return int(((r > 240) & (g > 225) & (g < 250) & (b > 140) & (b < 190)).sum())


def copy_and_reload(page: Any, expect: Any) -> None:
    page.get_by_role("button", name="Copy").last.click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == ANSWER
    assert "c=" in page.url, "the open conversation is in the URL"
    page.reload()
    expect(page.get_by_text("to identify rocks", exact=False)).to_be_visible()  # reopened after a reload
    expect(page.get_by_test_id("stSidebar").get_by_text("Today")).to_be_visible()


def phone_width(page: Any, base: str, expect: Any) -> None:
    """390 px: the cited page fits the screen; the documents table's toolbar leaves its heading readable."""
    page.set_viewport_size({"width": 390, "height": 844})
    settle(page)
    page.get_by_text("Sources (", exact=False).last.click()  # closed again after the reload
    page.get_by_text("Show the page").first.click()
    image = page.locator("[data-testid=stImage] img").first
    expect(image).to_be_visible()
    settle(page, 500)
    image.scroll_into_view_if_needed()
    box = image.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390 + 0.5, box
    page.goto(f"{base}/documents")  # on a phone the sidebar is folded away: open the page by its address
    heading = page.get_by_text("Documents in “default” (1)")
    expect(heading).to_be_visible()
    grid = page.get_by_test_id("stDataFrame").first
    grid.hover()
    settle(page, 500)
    toolbar = page.get_by_test_id("stElementToolbar").first
    if toolbar.count() and toolbar.is_visible():
        top, bottom = toolbar.bounding_box(), heading.bounding_box()
        assert top["y"] >= bottom["y"] + bottom["height"] - 1, (top, bottom)  # below the heading, not over it
    page.set_viewport_size({"width": 1360, "height": 900})
    page.goto(base)


def stop_a_long_answer(page: Any, double: OllamaDouble, expect: Any) -> None:
    double.reply_tool_call("search_documents", {"query": "rocks"})
    double.reply(" ".join(f"rock{i}" for i in range(150)), chunk_delay=0.05)
    box = page.get_by_placeholder("Ask a question about your documents")
    box.fill("Tell me everything about rocks")
    box.press("Enter")
    stop = page.locator("[data-testid=stChatMessage]").get_by_role("button", name="Stop", exact=True)
    expect(page.get_by_text("rock5 ", exact=False).first).to_be_visible()
    stop.click()
    expect(stop).to_have_count(0)
    # agent mode: the engine stores the turn once the model's current call ends
    expect(page.get_by_text("Incomplete answer: Stopped by the user.")).to_be_visible(timeout=20_000)
    assert "rock149" not in page.inner_text("body")
    expect(box).to_be_enabled()
    assert double.last_chat()["messages"][-1]["role"] == "tool"


# ---- Chinese: the whole walk, no English left on screen ----------------------------------------------
def test_chinese_walk_upload_chat_settings_pull_has_no_english(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    shots = screenshot_dir(tmp_path)
    with OllamaDouble(chunk_delay=0.03) as double, running_app(tmp_path, double.url) as app, \
            browser_page(app, timezone_id="Asia/Shanghai") as page:
        page.goto(app.base)
        page.get_by_test_id("stSidebar").get_by_text("中文", exact=True).click()
        page.locator("h1").filter(has_text="对话").wait_for()
        nav(page, "文档")  # the language switch survives the page change
        zh_upload(page, expect)
        assert not english_left(page), english_left(page)
        page.screenshot(path=str(shots / "documents-zh.png"))
        nav(page, "对话")
        zh_chat(page, double, expect)
        assert not english_left(page), english_left(page)
        page.set_viewport_size({"width": 1360, "height": 1500})
        page.locator("[data-testid=stChatMessage]").last.evaluate("e => e.scrollIntoView({block: 'start'})")
        settle(page, 800)
        page.screenshot(path=str(shots / "chat-zh.png"))
        page.set_viewport_size({"width": 1360, "height": 900})
        nav(page, "设置")
        assert page.get_by_role("spinbutton", name="请求超时（秒）").input_value() == "300", "300, not 300.00"
        settle(page)
        assert not english_left(page), english_left(page)
        page.screenshot(path=str(shots / "settings-zh.png"))
        zh_pull(page, double, expect)
        assert not english_left(page), english_left(page)


def zh_upload(page: Any, expect: Any) -> None:
    selector = "[data-testid=stFileUploaderDropzone] button [data-testid=stMarkdownContainer]"
    page.wait_for_function(  # the page's <style> may arrive a moment after the uploader it restyles
        "s => (getComputedStyle(document.querySelector(s) || document.body, '::after').content || '').includes('选择文件')",
        arg=selector, timeout=20_000)
    settle(page)
    assert not english_left(page), english_left(page)  # "Upload", "200MB per file • PDF" are gone
    page.locator("input[type=file]").set_input_files(str(GEOLOGY))
    expect(page.get_by_text("squad_Geology.pdf：已添加，4 页，22 个片段", exact=False)).to_be_visible()
    expect(page.get_by_text("“default” 中的文档（1）")).to_be_visible()
    settle(page, 1500)


def zh_chat(page: Any, double: OllamaDouble, expect: Any) -> None:
    double.reply_tool_call("search_documents", {"query": "电子探针"})
    double.reply(ANSWER_ZH, first_token_delay=1.5, chunk_delay=0.1)
    box = page.get_by_placeholder("就你的文档提一个问题")
    box.fill("岩石学家在实验室里用电子探针做什么？")
    box.press("Enter")
    status = page.locator("[data-testid=stChatMessage]").last.get_by_text(re.compile(r"模型正在阅读 5 段摘录…… \d+ 秒"))
    expect(status).to_be_visible(timeout=15_000)
    assert not english_left(page), english_left(page)  # the status line too
    expect(page.get_by_text("矿物的化学成分", exact=False).first).to_be_visible()  # streamed, then redrawn
    expect(page.locator("[data-testid=stChatMessage]").get_by_role("button", name="停止")).to_have_count(0)
    page.get_by_text("来源（", exact=False).last.click()
    expect(page.get_by_text("squad_Geology.pdf · 第 3 页", exact=False).first).to_be_visible()
    expect(page.locator("[data-testid=stChatMessage]").last.get_by_role("link", name="[1]")).to_be_visible()
    page.get_by_text("显示该页").first.click()
    image = page.locator("[data-testid=stImage] img").first
    expect(image).to_be_visible()
    assert highlighted_pixels(page, image.get_attribute("src") or "") > 2_000, "the cited passage is highlighted"
    settle(page)


def zh_pull(page: Any, double: OllamaDouble, expect: Any) -> None:
    double.pull_delay = 1.0
    page.get_by_role("textbox", name="下载模型").fill("mistral")
    page.get_by_role("textbox", name="下载模型").press("Enter")
    page.get_by_role("button", name="下载", exact=True).click()
    bar = page.get_by_test_id("stProgress")
    expect(bar.first).to_be_visible()
    expect(page.get_by_text(re.compile(r"mistral：正在下载"))).to_be_visible(timeout=15_000)
    assert not english_left(page), english_left(page)
    expect(page.get_by_text("mistral 已下载，可以使用。")).to_be_visible(timeout=30_000)
    assert "mistral:latest" in [m.name for m in double.models]
    settle(page)


# ---- Ollama absent at first launch, back without a click; dark mode ----------------------------------
def test_ollama_absent_is_calm_then_recovers_by_itself_in_dark_mode(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from agent.chat import embedded

    if not embedded.embedded_available():
        pytest.skip("the embedded offline model is not installed: without it the app cannot answer")
    port = free_port()
    with running_app(tmp_path, f"http://127.0.0.1:{port}", AGENT_CONNECT_RETRIES="1") as app, \
            browser_page(app, color_scheme="dark") as page:
        page.goto(app.base)
        sidebar = page.get_by_test_id("stSidebar")
        notice = sidebar.get_by_text("Ollama is not running at", exact=False)
        expect(notice).to_be_visible(timeout=30_000)
        assert not page.locator("[data-testid=stAlertContentError]").count(), "a first launch is not an error"
        background = page.locator("[data-testid=stApp]").evaluate("e => getComputedStyle(e).backgroundColor")
        red, green, blue = (int(v) for v in re.findall(r"\d+", background)[:3])
        assert red + green + blue < 150, f"dark mode follows the system: {background}"
        with OllamaDouble(port=port):
            # no click, no reload: the status re-probes by itself
            expect(sidebar.get_by_text("Ollama 0.12.0", exact=False)).to_be_visible(timeout=20_000)
            expect(notice).to_have_count(0)
            expect(sidebar.get_by_text("Chat model: llama3.2", exact=False)).to_be_visible()


# ---- an upload goes on while the user is elsewhere (issue 13, item 1) ---------------------------------
GNUPLOT = DEVSET_PDFS / "gnuplot.pdf"  # 311 pages, 1305 chunks


def test_an_upload_finishes_while_the_user_is_on_another_page(tmp_path: Path) -> None:
    """Leaving the Documents page mid-ingestion used to interrupt it and discard the upload."""
    from playwright.sync_api import expect

    with OllamaDouble() as double, running_app(tmp_path, double.url) as app, browser_page(app) as page:
        double.embed_delay = 0.15  # ~6 s of embedding: the user is away for part of it
        page.goto(f"{app.base}/documents")
        page.get_by_text("Add documents", exact=False).first.wait_for()
        page.locator("input[type=file]").set_input_files(str(GNUPLOT))
        expect(page.get_by_text("Embedding chunks", exact=False).first).to_be_visible(timeout=60_000)
        nav(page, "Chat")
        page.wait_for_timeout(1000)
        nav(page, "Documents")
        expect(page.get_by_text("gnuplot.pdf: added, 311 pages", exact=False)).to_be_visible(timeout=90_000)
        expect(page.get_by_text("Documents in “default” (1)")).to_be_visible()
        assert not list((tmp_path / "data" / "uploads").rglob("*.pdf")), "the temp upload is removed"


# ---- model output that asks the browser to fetch something --------------------------------------------
def test_images_in_an_answer_make_the_browser_fetch_nothing_but_the_app(tmp_path: Path) -> None:
    """A prompt-injected document gets the model to write image Markdown carrying a secret in its URL."""
    from playwright.sync_api import expect

    secret = "http://127.0.0.1:9/p.png?q=SECRET"
    answer = (f"Rocks ![leak]({secret}) and ![far](https://example.com/t.png) and ![ref][r] and "
              f"<img src='{secret}&h=1'> wow![1]\n\n[r]: {secret}&ref=1")
    with OllamaDouble(chunk_delay=0.02) as double, running_app(tmp_path, double.url) as app, \
            browser_page(app) as page:
        elsewhere: list[str] = []

        def only_the_app(route: Any) -> Any:
            if urlsplit(route.request.url).netloc == urlsplit(app.base).netloc:
                return route.continue_()
            elsewhere.append(route.request.url)
            return route.abort()

        page.route("**/*", only_the_app)
        page.goto(app.base)
        double.reply(answer)
        box = page.get_by_placeholder("Ask a question about your documents")
        box.fill("What about rocks?")
        box.press("Enter")
        message = page.locator("[data-testid=stChatMessage]").last
        # .first: while the streamed text gives way to the final Markdown, the message may hold both for a moment
        expect(message.get_by_text("Rocks", exact=False).first).to_be_visible()
        expect(page.locator("[data-testid=stChatMessage]").get_by_role("button", name="Stop")).to_have_count(0)
        settle(page)
        page.reload()  # the stored turn, drawn again from the conversation database
        expect(page.get_by_text("Rocks", exact=False).first).to_be_visible()
        settle(page)
        assert page.locator("[data-testid=stChatMessage] img").count() == 0
        expect(page.get_by_role("link", name="leak")).to_be_visible()  # still readable, as a link nobody loads
        assert elsewhere == [], elsewhere
