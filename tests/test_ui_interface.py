"""Issue 15 in AppTest: the interface a person expects (bilingual, honest status, models, small frictions).

Each test drives the real pages against the Ollama double, as tests/test_ui_apptest.py does,
and checks what a user would see. The browser-only parts (clipboard, 390 px, dark mode, the
live re-probe, no English on a Chinese screen) are in tests/test_browser_e2e.py.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from agent.chat.conversations import Turn
from agent.chat.embedded import EMBEDDED_MODEL_NAME
from agent.config import load_settings
from agent.workspace import Workspace
from tests.ollama_double import OllamaDouble
from tests.support import (
    GEOLOGY,
    ROOT,
    ask,
    ingest,
    needs_devset,
    plain,
    run_app,
    texts,
    until,
)

ENGLISH_WORD = re.compile(r"[A-Za-z][A-Za-z_]{2,}")
NAMES = {"Ollama", "OLLAMA_HOST", "PDF", "OCR", "PostgreSQL", "num_ctx", "num_predict", "keep_alive", "llama3", "qwen3",
         "MB", "CPU", "auto", "local", "com", "library", "context", "question", "language", "history"}


def english_words(text: str) -> set[str]:
    """ASCII words left in Chinese text, minus names, placeholders, paths and code spans."""
    text = re.sub(r"`[^`]*`|\{[^}]*\}|\S*[/\\.:]\S*|\b[A-Z][A-Z_]{3,}\b", " ", plain(text))
    return set(ENGLISH_WORD.findall(text)) - NAMES


def open_app(**query: str) -> AppTest:
    """A new session opened at a URL with these query parameters (a reload)."""
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    for name, value in query.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def switch_to_chinese(at):
    at.segmented_control[0].set_value("zh").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# ---- bilingual -------------------------------------------------------------------------------------
def test_language_switch_survives_page_changes(data_dir: Path, double: OllamaDouble) -> None:
    at = switch_to_chinese(run_app())
    assert [t.value for t in at.title] == ["对话"]
    for page, title in (("pages/documents.py", "文档"), ("pages/settings.py", "设置"), ("pages/chat.py", "对话")):
        at.switch_page(page).run()
        assert [t.value for t in at.title] == [title], page
    at.segmented_control[0].set_value("en").run()
    at.switch_page("pages/documents.py").run()
    assert [t.value for t in at.title] == ["Documents"]


def test_chinese_settings_have_chinese_tooltips_and_choices(data_dir: Path, double: OllamaDouble) -> None:
    at = switch_to_chinese(run_app("pages/settings.py"))
    widgets = [*at.text_input, *at.number_input, *at.selectbox, *at.toggle, *at.text_area]
    helps = {w.label: w.help for w in widgets if w.help}
    assert len(helps) >= 20, helps
    leftover = {label: english_words(help_) for label, help_ in helps.items() if english_words(help_)}
    assert not leftover, leftover
    mode = next(s for s in at.selectbox if s.label == "模式")
    assert [mode.format_func(o) for o in mode.options] == ["自动", "智能体（模型调用检索工具）", "每次都检索"]
    embedding = next(s for s in at.selectbox if s.label == "向量模型")
    assert embedding.format_func("local") == "本地（离线多语言模型）"
    assert embedding.format_func("ollama:nomic-embed-text") == "Ollama：nomic-embed-text"
    timeout = next(n for n in at.number_input if n.label == "请求超时（秒）")
    assert timeout.value == 300 and timeout.proto.format == "%.0f", "300, not 300.00"


def test_chinese_errors_and_statuses_are_chinese(data_dir: Path, double: OllamaDouble,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_UI_LANGUAGE", "zh")
    monkeypatch.setenv("AGENT_MODE", "agent")
    monkeypatch.setenv("AGENT_CHAT_MODEL", "gemma:2b")  # no tools: agent mode cannot work
    at = ask(run_app(), "你好？")
    errors = plain("\n".join(e.value for e in at.error))
    assert "模型 `gemma:2b` 不支持工具调用，而智能体模式需要它。" in errors, errors
    assert not english_words(errors), english_words(errors)


def test_invalid_prompt_error_is_plain_and_not_mangled(data_dir: Path, double: OllamaDouble) -> None:
    at = run_app("pages/settings.py")
    next(ta for ta in at.text_area if ta.label == "Answer prompt").set_value("{context.__class__} {question}")
    next(b for b in at.button if b.label == "Save").click().run()
    errors = "\n".join(e.value for e in at.error)
    assert "`{context.__class__}` is not a placeholder." in errors  # a code span: shown verbatim, not bold
    assert "answer_prompt" not in errors


@needs_devset
def test_upload_messages_name_the_users_file_and_count_pages(data_dir: Path, double: OllamaDouble) -> None:
    at = run_app("pages/documents.py")
    broken = b"%PDF-1.4\n" + b"\x00garbage" * 50
    locked = (Path(GEOLOGY).parent / "libreoffice-writer-password.pdf").read_bytes()
    at.file_uploader[0].set_value([("My_Report.pdf", broken, "application/pdf"),
                                   ("locked.pdf", locked, "application/pdf")]).run()
    until(at, lambda at: "My_Report.pdf: not added." in texts(at) and any(ti.key and ti.key.startswith("pw-")
                                                                         for ti in at.text_input))
    assert "upload-" not in texts(at), "no temp file names"
    next(ti for ti in at.text_input if ti.key and ti.key.startswith("pw-")).set_value("openpassword")
    next(b for b in at.button if b.label == "Add with this password").click().run()
    until(at, lambda at: "locked.pdf: added, 1 page, 1 chunk," in texts(at))  # "1 page", not "1 pages"
    table = at.dataframe[0].value
    added = plain(table.iloc[0][next(c for c in table.columns if "Added" in str(c))])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", added), f"local time, not ISO UTC: {added}"


# ---- status that tells the truth -------------------------------------------------------------------
def test_sidebar_shows_the_mode_actually_in_effect(data_dir: Path, double: OllamaDouble,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_MODE", "always_retrieve")  # llama3.2 could call tools: the setting wins
    at = run_app()
    status = [plain(c.value) for c in at.sidebar.caption if "Chat model" in c.value]
    assert status == ["Chat model: llama3.2 · searches before every answer"], status


def test_first_launch_without_ollama_is_a_calm_notice(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.chat import embedded

    if not embedded.embedded_available():
        pytest.skip("the embedded offline model is not installed: without it the app cannot answer")
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    monkeypatch.setenv("AGENT_CONNECT_RETRIES", "1")
    at = run_app()
    assert not at.error, [e.value for e in at.error]
    notice = plain("\n".join(i.value for i in at.sidebar.info))
    assert "Ollama is not running at `http://127.0.0.1:9`" in notice and "offline demo model" in notice


def test_demo_model_answers_carry_the_warning_next_to_them(data_dir: Path, double: OllamaDouble) -> None:
    """Said under the answer too (the sidebar is hidden on a phone); also a reload reopens it."""
    store = Workspace(load_settings()).conversations
    store.append_turn("c-demo", Turn("What is rock?", "Rock is stone.", [], EMBEDDED_MODEL_NAME))
    at = open_app(c="c-demo")  # the URL of the conversation, as after a reload
    assert "Rock is stone." in texts(at)
    assert any("offline demo model" in plain(c.value) for c in at.main.caption), texts(at)


def test_ollama_truncation_is_said_under_the_answer(data_dir: Path, double: OllamaDouble) -> None:
    double.reply_tool_call("search_documents", {"query": "x"})
    double.reply("An answer.", prompt_eval_count=8192)  # what Ollama reports after cutting the prompt
    at = ask(run_app(), "Question?")
    at.run()
    warnings = plain("\n".join(w.value for w in at.warning))
    assert "Ollama cut the start of the prompt to fit its context window (8192 tokens)" in warnings


# ---- models ------------------------------------------------------------------------------------------
def pull_until_done(at, rounds: int = 40):
    for _ in range(rounds):
        if any("downloaded and ready" in s.value for s in at.success) or at.error:
            return at
        at.run()
    raise AssertionError(texts(at))


def test_settings_page_pulls_lists_and_deletes_models(data_dir: Path, double: OllamaDouble) -> None:
    at = run_app("pages/settings.py")
    table = at.dataframe[-1].value
    assert {"Model", "Context (tokens)", "Loaded"} <= set(table.columns)
    assert dict(zip(table["Model"], table["Context (tokens)"]))["llama3.2:latest"] == 131072
    double.pull_delay = 0.2
    at.text_input(key="pull_name").set_value("mistral").run()
    at.button(key="pull_btn").click().run()
    assert at.get("progress"), "a progress bar while it downloads"
    pull_until_done(at)
    assert "mistral:latest" in [m.name for m in double.models]
    assert "mistral:latest" in list(at.dataframe[-1].value["Model"]), texts(at)
    at.selectbox(key="delete_model_name").set_value("mistral:latest").run()
    assert any("This deletes `mistral:latest` from Ollama" in w.value for w in at.warning), "asks first"
    at.button(key="delete_model_btn").click().run()
    assert "mistral:latest" not in [m.name for m in double.models]
    assert at.session_state["delete_model_popover"] is False


def test_model_not_found_answer_offers_the_pull(data_dir: Path, double: OllamaDouble,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_CHAT_MODEL", "mistral")
    at = ask(run_app(), "Hello?")
    offer = [b for b in at.main.button if b.label == "Download mistral"]
    assert offer, [b.label for b in at.button]
    offer[0].click().run()
    pull_until_done(at)
    assert "mistral:latest" in [m.name for m in double.models]


def test_one_model_picker_and_a_context_warning(data_dir: Path, double: OllamaDouble,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_NUM_CTX", "16384")
    at = run_app("pages/settings.py")
    picker = next(s for s in at.selectbox if s.label == "Chat model")
    sidebar_like = [picker.format_func(o) for o in picker.options]
    assert "gemma:2b · no tools" in sidebar_like and not any("nomic" in o for o in sidebar_like)
    assert not at.warning or all("context window" not in w.value for w in at.warning)
    monkeypatch.setenv("AGENT_CHAT_MODEL", "gemma:2b")  # trained with 8192 tokens
    at = run_app("pages/settings.py")
    assert any("larger than `gemma:2b` supports (8192 tokens)" in w.value for w in at.warning), texts(at)


# ---- small things --------------------------------------------------------------------------------------
def test_conversation_list_has_dates_and_search(data_dir: Path, double: OllamaDouble) -> None:
    store = Workspace(load_settings()).conversations
    store.append_turn("old", Turn("Basalt and granite", "Both are rocks."))
    store.append_turn("new", Turn("Tell me about volcanoes", "Hot."))
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE conversations SET updated = '2025-06-01T08:00:00+00:00' WHERE id = 'old'")
    at = run_app()
    captions = [c.value for c in at.sidebar.caption]
    assert "Today" in captions and "2025-06-01" in captions
    at.text_input(key="conversation_search").set_value("granite").run()
    titles = [b.label for b in at.sidebar.button if b.key and b.key.startswith("conv-")]
    assert titles == ["Basalt and granite"]


def test_the_open_conversation_is_in_the_url(data_dir: Path, double: OllamaDouble) -> None:
    double.reply_tool_call("search_documents", {"query": "x"})
    double.reply("Kept.")
    at = ask(run_app(), "Remember me")
    conversation = at.session_state["conversation"]
    assert at.query_params["c"] == conversation
    fresh = open_app(c=conversation)  # a reload: a new session with the same URL
    assert "Kept." in texts(fresh) and "Remember me" in texts(fresh)


@needs_devset
def test_upload_into_a_new_collection_offers_it_to_the_chat(data_dir: Path, double: OllamaDouble) -> None:
    at = run_app("pages/documents.py")
    at.text_input(key="new_collection").set_value("manuals")
    at.button(key="create_collection_btn").click().run()
    at.file_uploader[0].set_value([("squad_Geology.pdf", GEOLOGY.read_bytes(), "application/pdf")]).run()
    until(at, lambda at: any("The chat does not search “manuals” yet." in i.value for i in at.info))
    at.switch_page("pages/chat.py").run()
    yes = [b for b in at.main.button if b.label == "Search it in the chat too"]
    assert yes, "offered on the chat page too"
    yes[0].click().run()
    assert json.loads((data_dir / "settings.json").read_text())["collections"] == ["default", "manuals"]
    assert not any("does not search" in i.value for i in at.info)


def test_answers_have_a_copy_button_and_no_raw_scores(data_dir: Path, double: OllamaDouble) -> None:
    if GEOLOGY.exists():
        ingest(GEOLOGY)
    double.reply_tool_call("search_documents", {"query": "rocks"})
    double.reply("Rocks are **old**.")
    at = ask(run_app(), "Rocks?")
    at.run()
    copies = [node for node in at.main.get("bidi_component") if "copy" in str(node.proto)]
    assert copies, "a copy button under the answer"
    sources = "\n".join(md.value for e in at.expander for md in e.markdown)
    assert "score" not in sources.lower() and not re.search(r"\b0\.\d{3}\b", sources)


def test_no_deprecated_width_api_in_the_pages() -> None:
    for path in [ROOT / "streamlit_app.py", *(ROOT / "pages").glob("*.py")]:
        assert "use_container_width" not in path.read_text(), path
