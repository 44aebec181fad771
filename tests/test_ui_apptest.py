"""The Streamlit UI, run headless with `streamlit.testing.v1.AppTest` against the Ollama double.

Each test points the app at a fresh data directory and an `OllamaDouble` through the
environment (as an operator would), then drives the real pages: chat, documents,
settings. Ollama embeddings (`/api/embed` of the double) keep ingestion fast.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from agent.app.i18n import STRINGS, t
from agent.config import load_settings
from agent.ingest.pipeline import ingest_file
from agent.workspace import Workspace
from tests.ollama_double import OllamaDouble
from tests.support import (
    APP,
    DEVSET_PDFS,
    ENCRYPTED,
    GEOLOGY,
    ROOT,
    TIMEOUT,
    ask,
    ingest,
    needs_devset,
    plain,
    rows_read,
    run_app,
    seed_turns,
    succeeded,
    texts,
    until,
)


# ---- chat ------------------------------------------------------------------------------------
@needs_devset
def test_chat_turn_streams_and_shows_sources(data_dir: Path, double: OllamaDouble) -> None:
    ingest(GEOLOGY)
    double.reply_tool_call("search_documents", {"query": "what do geologists study"})
    double.reply("Geologists study the **solid Earth** and its history [1]. Also the Moon [9].", chunk_delay=0.01)
    at = run_app()
    ask(at, "What do geologists study?")

    assert double.pending == 0
    assert double.last_chat()["stream"] is True  # the answer was streamed from the model
    answer = [m for m in at.chat_message if m.name == "assistant"]
    assert answer, "no assistant message"
    body = "\n".join(md.value for md in answer[-1].markdown)
    link = re.search(r'\[\\\[1\\\]\]\(#(source-[\w-]+-1) "squad_Geology\.pdf p\. \d+"\)', body)
    assert "solid Earth" in body and link, body  # [1] links to source 1, its file and page on hover
    assert "~~\\[9\\]~~" in body and "(#source-" not in body.split("Moon")[1]  # invented: struck, no link
    assert any("[9]" in plain(w.value) and "no excerpt" in w.value for w in answer[-1].warning)
    expander = [e for e in at.expander if e.label.startswith("Sources")]
    assert expander, [e.label for e in at.expander]
    sources = "\n".join(md.value for md in expander[0].markdown)
    assert "squad\\_Geology\\.pdf" in sources and "p. " in sources
    assert re.search(r"\*\*\[1\] squad.*:green-badge\[cited\]", sources)
    assert sources.count(":green-badge[cited]") == 1
    assert f'id="{link.group(1)}"' in expander[0].get("html")[0].proto.body  # the link's target
    assert expander[0].text, "excerpts are shown as plain text"
    # the turn is stored: the conversation is listed in the sidebar and survives a rerun
    at.run()
    assert any("What do geologists study" in b.label for b in at.sidebar.button)
    assert "solid Earth" in texts(at)


@needs_devset
def test_source_page_renders_as_image(data_dir: Path, double: OllamaDouble) -> None:
    ingest(GEOLOGY)
    double.reply_tool_call("search_documents", {"query": "geology"})
    double.reply("Geology is an earth science [squad_Geology.pdf p.1].")
    at = ask(run_app(), "What is geology?")
    at.toggle(key=next(tg.key for tg in at.toggle if tg.key and tg.key.startswith("page-"))).set_value(True).run()
    assert not at.exception
    assert at.image, "the cited page is shown as an image"


def test_markdown_source_preview_is_its_section_with_the_passage_highlighted(data_dir: Path, double: OllamaDouble,
                                                                              tmp_path: Path) -> None:
    notes = tmp_path / "pumps.md"
    notes.write_text("# Pumps\nThe pump runs at 40 litres per minute.\n", encoding="utf-8")
    ingest(notes)
    double.reply_tool_call("search_documents", {"query": "pump litres"})
    double.reply("It runs at 40 litres per minute [pumps.md].")
    at = ask(run_app(), "How fast is the pump?")
    at.toggle(key=next(tg.key for tg in at.toggle if tg.key and tg.key.startswith("page-"))).set_value(True).run()
    assert not at.exception and not at.image
    previews = [md.value for md in at.markdown if md.value.startswith(":orange-background[")]
    assert previews and "40 litres per minute" in previews[0], [md.value for md in at.markdown]
    assert any(md.value.endswith("· Pumps, lines 1–2") for md in at.markdown)  # heading path and lines


def test_image_source_is_labelled_image_and_previewed_as_the_picture(data_dir: Path, double: OllamaDouble,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from agent.ingest import ocr

    monkeypatch.setattr(ocr, "ocr_image", lambda image: "The pump runs at 40 litres per minute.")
    photo = tmp_path / "pump.png"
    Image.new("RGB", (64, 48), "white").save(photo)
    ingest(photo)
    double.reply_tool_call("search_documents", {"query": "pump litres"})
    double.reply("It runs at 40 litres per minute [1].")
    at = ask(run_app(), "How fast is the pump?")
    assert any("pump\\.png** · image · OCR" in md.value for md in at.markdown), [md.value for md in at.markdown]
    assert not any("p. 1" in md.value for md in at.markdown)
    at.toggle(key=next(tg.key for tg in at.toggle if tg.key and tg.key.startswith("page-"))).set_value(True).run()
    assert not at.exception and len(at.image) == 1
    assert any(tg.label == "Show the image" for tg in at.toggle)
    assert not any(md.value.startswith(":orange-background[") for md in at.markdown)  # no section text


def test_model_output_is_not_rendered_as_html(data_dir: Path, double: OllamaDouble) -> None:
    evil = 'Look <script>window.pwned=1</script><img src=x onerror="alert(1)"> done'
    double.reply_tool_call("search_documents", {"query": "x"})
    double.reply(evil)
    at = ask(run_app(), "Say something")
    shown = [md for md in at.markdown if "<script>" in md.value]
    assert shown, "the answer text is shown (as text)"
    assert all(not md.proto.allow_html for md in at.markdown)
    assert not at.get("html")
    # also after a rerun, when it comes from the stored conversation
    at.run()
    assert [md for md in at.markdown if "<script>" in md.value]
    assert all(not md.proto.allow_html for md in at.markdown)


def test_incomplete_answer_keeps_partial_text(data_dir: Path, double: OllamaDouble) -> None:
    double.reply_tool_call("search_documents", {"query": "x"})
    double.reply_stream_error_after(4, "The first part of the answer and then more text", "model runner crashed")
    at = ask(run_app(), "Tell me")
    assert "The first part" in texts(at)
    warnings = [w.value for w in at.warning if "Incomplete answer" in w.value]
    assert warnings and "model runner crashed" in warnings[0]
    assert not at.exception


def test_ask_again_after_an_incomplete_answer(data_dir: Path, double: OllamaDouble) -> None:
    double.reply_tool_call("search_documents", {"query": "x"})
    double.reply_stream_error_after(2, "Half an answer that breaks", "model runner crashed")
    at = ask(run_app(), "Tell me about rocks")
    again = [b for b in at.button if b.label == "Ask again"]
    assert len(again) == 1
    double.reply_tool_call("search_documents", {"query": "rocks"})
    double.reply("A complete answer this time.")
    again[0].click().run()
    for _ in range(20):  # the answer runs in a worker: rerun until it is stored and shown
        if "A complete answer this time." in texts(at):
            break
        at.run()
    assert "A complete answer this time." in texts(at)
    asked = [m["content"] for m in double.last_chat()["messages"] if m["role"] == "user"]
    assert len(asked) == 1 and "Question / 问题: Tell me about rocks\n" in asked[0]  # the broken turn not replayed
    assert not at.exception


def test_unreachable_ollama_shows_message_and_fix(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("AGENT_BACKEND", "ollama")
    monkeypatch.setenv("AGENT_CONNECT_RETRIES", "1")
    at = run_app()
    errors = [plain(e.value) for e in at.error]
    assert len(errors) == 1 and "Cannot reach Ollama" in errors[0] and "ollama serve" in errors[0]
    ask(at, "Hello?")
    errors = plain("\n".join(e.value for e in at.error))
    assert "Cannot reach Ollama" in errors
    assert not at.exception


def test_timeout_is_reported(data_dir: Path, double: OllamaDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_REQUEST_TIMEOUT", "1")
    double.reply_tool_call("search_documents", {"query": "x"}, first_token_delay=3)
    at = ask(run_app(), "Slow one?")
    errors = plain("\n".join(e.value for e in at.error))
    assert "did not answer within 1 s" in errors and "timeout" in errors.lower()
    assert not at.exception


def test_agent_mode_without_tools_explains_the_fix(data_dir: Path, double: OllamaDouble,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_MODE", "agent")
    monkeypatch.setenv("AGENT_CHAT_MODEL", "gemma:2b")  # the double's gemma has no tools
    at = ask(run_app(), "Hello?")
    errors = plain("\n".join(e.value for e in at.error))
    assert "does not support tool calling" in errors and "“always retrieve”" in errors
    assert "always_retrieve" not in errors, "plain words, not the internal setting value"
    assert not at.exception


def test_embedded_backend_is_said_plainly(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.chat import embedded

    monkeypatch.setenv("AGENT_BACKEND", "embedded")
    at = run_app()
    sidebar = plain("\n".join(str(e.value) for e in [*at.sidebar.warning, *at.sidebar.error, *at.sidebar.caption]))
    if embedded.embedded_available():
        assert "Offline demo model" in sidebar and "ollama serve" in sidebar  # Backend.notice
    else:
        assert "embedded offline model is not installed" in sidebar
    assert not at.exception


def test_model_not_pulled_shows_fix(data_dir: Path, double: OllamaDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_CHAT_MODEL", "mistral-nonexistent")
    at = ask(run_app(), "Hello?")
    errors = plain("\n".join(e.value for e in at.error))
    assert "not installed" in errors and "ollama pull mistral-nonexistent" in errors
    assert not at.exception


def test_model_picker_lists_models_and_saves_choice(data_dir: Path, double: OllamaDouble) -> None:
    at = run_app()
    picker = next(s for s in at.sidebar.selectbox if s.label == "Chat model")
    assert "gemma:2b" in picker.options[1] or any("gemma:2b" in o for o in picker.options)
    assert not any("nomic-embed" in o for o in picker.options), "embedding models are not chat models"
    picker.set_value("gemma:2b").run()
    assert json.loads((data_dir / "settings.json").read_text())["chat_model"] == "gemma:2b"
    status = [plain(c.value) for c in at.sidebar.caption if "Chat model" in c.value]
    assert status == ["Chat model: gemma:2b · searches before every answer"], status  # the mode in effect


def test_conversation_rename_export_delete(data_dir: Path, double: OllamaDouble) -> None:
    double.reply_tool_call("search_documents", {"query": "x"})
    double.reply("First answer.")
    at = ask(run_app(), "First question")
    at.sidebar.text_input[0].set_value("Renamed chat")
    next(b for b in at.sidebar.button if b.label == "Rename").click().run()
    assert any(b.label == "Renamed chat" for b in at.sidebar.button)
    download = at.get("download_button")
    assert download, "export button shown"
    next(b for b in at.sidebar.button if b.label == "Delete conversation").click().run()
    assert not any(b.label == "Renamed chat" for b in at.sidebar.button)
    assert Workspace(load_settings()).conversations.list() == []


def test_long_conversation_opens_at_its_end_and_loads_earlier_turns(data_dir: Path, double: OllamaDouble) -> None:
    seed_turns(Workspace(load_settings()).conversations, "long", 2000)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["c"] = "long"  # a reload of the conversation's URL
    with rows_read() as rows:
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    questions = [m.markdown[0].value for m in at.chat_message if m.name == "user"]
    assert len(questions) == 20 and questions[-1] == "Question 1999?" and questions[0] == "Question 1980?"
    assert rows[0] < 200, rows  # the page read 2000 turns before
    earlier = next(b for b in at.button if b.label.startswith("Load earlier"))
    assert earlier.label == "Load earlier turns (1980 more)"
    earlier.click().run()
    questions = [m.markdown[0].value for m in at.chat_message if m.name == "user"]
    assert len(questions) == 40 and questions[0] == "Question 1960?" and questions[-1] == "Question 1999?"


# ---- documents -------------------------------------------------------------------------------
@needs_devset
def test_upload_ingests_and_lists_the_pdf(data_dir: Path, double: OllamaDouble) -> None:
    at = run_app("pages/documents.py")
    uploader = at.file_uploader[0]
    assert uploader.accept_multiple_files and {".pdf", ".docx", ".md", ".png"} <= set(uploader.allowed_type)
    uploader.set_value([("squad_Geology.pdf", GEOLOGY.read_bytes(), "application/pdf")]).run()
    assert not at.exception, [e.value for e in at.exception]
    until(at, succeeded("squad_Geology.pdf: added, 4 pages"))
    table = at.dataframe[0].value
    assert list(table["File"]) == ["squad_Geology.pdf"]
    assert not list((data_dir / "uploads").glob("*")), "the temp upload is removed"
    infos = Workspace(load_settings()).collection("default").document_infos()
    assert [i.file for i in infos] == ["squad_Geology.pdf"]


def test_documents_table_type_is_the_detected_format(data_dir: Path, double: OllamaDouble, tmp_path: Path) -> None:
    page = tmp_path / "manual.txt"  # named text, holds HTML
    page.write_bytes(b"<!DOCTYPE html><html><body><h1>Pumps</h1><p>40 litres per minute.</p></body></html>")
    ingest(page)
    at = run_app("pages/documents.py")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(zip(table["File"], table["Type"])) == [("manual.txt", "HTML")]


def test_documents_table_type_words_are_translated(data_dir: Path, double: OllamaDouble, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_UI_LANGUAGE", "zh")
    notes = tmp_path / "notes.md.bak"  # plain text under a name that says nothing
    notes.write_text("The pump runs at 40 litres per minute.\n", encoding="utf-8")
    ingest(notes)
    table = run_app("pages/documents.py").dataframe[0].value
    assert list(table.iloc[:, 1]) == ["文本"]


@needs_devset
def test_encrypted_upload_asks_for_password_and_retries(data_dir: Path, double: OllamaDouble) -> None:
    at = run_app("pages/documents.py")
    at.file_uploader[0].set_value([("locked.pdf", ENCRYPTED.read_bytes(), "application/pdf")]).run()
    until(at, lambda at: any("encrypted" in plain(w.value) for w in at.warning))
    assert len(list((data_dir / "uploads").rglob("*.pdf"))) == 1, "the upload is kept for the retry"
    at.text_input(key=next(ti.key for ti in at.text_input if ti.key and ti.key.startswith("pw-"))).set_value("wrong")
    next(b for b in at.button if b.label == "Add with this password").click().run()
    until(at, lambda at: any("does not open" in plain(e.value) for e in at.error))
    at.text_input(key=next(ti.key for ti in at.text_input if ti.key and ti.key.startswith("pw-"))).set_value("openpassword")
    next(b for b in at.button if b.label == "Add with this password").click().run()
    until(at, succeeded("locked.pdf: added"))
    assert not list((data_dir / "uploads").rglob("*.pdf"))


@needs_devset
def test_delete_document_and_collections(data_dir: Path, double: OllamaDouble) -> None:
    ingest(GEOLOGY)
    at = run_app("pages/documents.py")
    assert list(at.dataframe[0].value["File"]) == ["squad_Geology.pdf"]
    doc_id = Workspace(load_settings()).collection("default").document_infos()[0].doc_id
    at.multiselect(key="del-default").set_value([doc_id]).run()
    assert any("This removes squad_Geology.pdf" in plain(w.value) for w in at.warning), "asks first"
    assert Workspace(load_settings()).collection("default").document_infos(), "nothing deleted before the confirm"
    at.button(key="delete_documents_btn").click().run()
    assert any("Deleted: squad_Geology.pdf" in plain(s.value) for s in at.success)
    assert at.session_state["delete_documents_popover"] is False, "the confirmation closes"
    assert not at.dataframe
    # create a collection, then delete it
    at.text_input(key="new_collection").set_value("manuals")
    at.button(key="create_collection_btn").click().run()
    assert at.selectbox(key="doc_collection").value == "manuals"
    at.button(key="delete_collection_btn").click().run()
    assert "manuals" not in at.selectbox(key="doc_collection").options
    assert at.session_state["delete_collection_popover"] is False, "closed: it must not offer the next collection"


# ---- settings --------------------------------------------------------------------------------
def _prompt_area(at: AppTest, label: str):
    return next(ta for ta in at.text_area if ta.label == label)


def test_prompt_edit_is_saved_and_used_by_the_next_request(data_dir: Path, double: OllamaDouble) -> None:
    at = run_app("pages/settings.py")
    _prompt_area(at, "System prompt").set_value("You are TESTBOT, a terse librarian. {language}")
    next(b for b in at.button if b.label == "Save").click().run()
    assert not at.exception
    stored = json.loads((data_dir / "settings.json").read_text())
    assert stored["system_prompt"].startswith("You are TESTBOT")
    assert "ollama_host" not in stored and "embedding" not in stored, "env-pinned values are not written"
    assert any("Saved" in plain(s.value) for s in at.success)

    double.reply_tool_call("search_documents", {"query": "x"})
    double.reply("Done.")
    at.switch_page("pages/chat.py").run()
    ask(at, "Anything?")
    system = double.last_chat()["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("You are TESTBOT, a terse librarian.")


def test_invalid_prompt_is_refused_and_nothing_saved(data_dir: Path, double: OllamaDouble) -> None:
    at = run_app("pages/settings.py")
    _prompt_area(at, "Answer prompt").set_value("Answer this: {question} using {unknown_thing}")
    next(b for b in at.button if b.label == "Save").click().run()
    errors = plain("\n".join(e.value for e in at.error))
    assert "must contain `{context}`" in errors and "`{unknown_thing}` cannot be used here" in errors
    assert "answer_prompt" not in errors, "no internal field names"
    assert "Nothing was saved" in errors
    assert not (data_dir / "settings.json").exists()
    assert not at.exception


def test_invalid_number_combination_is_refused(data_dir: Path, double: OllamaDouble) -> None:
    at = run_app("pages/settings.py")
    next(n for n in at.number_input if n.label.startswith("Chunk overlap")).set_value(900)
    next(b for b in at.button if b.label == "Save").click().run()
    errors = plain("\n".join(e.value for e in at.error))
    assert "The chunk overlap must be smaller than the chunk size." in errors, texts(at)
    assert "chunk_overlap" not in errors, "no internal field names"
    assert not (data_dir / "settings.json").exists()


def test_pinned_fields_are_disabled_and_reset_works(data_dir: Path, double: OllamaDouble) -> None:
    at = run_app("pages/settings.py")
    host = next(ti for ti in at.text_input if ti.label == "Ollama host")
    assert host.disabled and "OLLAMA_HOST" in host.help
    next(n for n in at.number_input if n.label == "Temperature").set_value(0.7)
    next(b for b in at.button if b.label == "Save").click().run()
    assert json.loads((data_dir / "settings.json").read_text()) == {"temperature": 0.7}
    at.button(key="reset_confirm").click().run()
    assert json.loads((data_dir / "settings.json").read_text()) == {}
    assert next(n for n in at.number_input if n.label == "Temperature").value == pytest.approx(0.2)


def test_chinese_interface(data_dir: Path, double: OllamaDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_UI_LANGUAGE", "zh")
    at = run_app()
    assert any(title.value == "对话" for title in at.title)
    at.switch_page("pages/settings.py").run()
    assert any(ta.label == "系统提示词" for ta in at.text_area)


def test_saving_the_interface_language_switches_the_ui(data_dir: Path, double: OllamaDouble) -> None:
    at = run_app("pages/settings.py")
    next(s for s in at.selectbox if s.label == "Interface language").set_value("zh")
    next(b for b in at.button if b.label == "Save").click().run()
    assert not at.exception
    assert any(title.value == "设置" for title in at.title)
    assert json.loads((data_dir / "settings.json").read_text()) == {"ui_language": "zh"}


def test_embedding_mismatch_is_explained_on_every_page(data_dir: Path, double: OllamaDouble,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if not GEOLOGY.exists():
        pytest.skip("devset PDFs not found")
    ingest(GEOLOGY)  # built with ollama:nomic-embed-text
    monkeypatch.setenv("AGENT_EMBEDDING", "ollama:other-embed")
    at = run_app()
    assert any("was built with the embedding model" in e.value and "reindex" in plain(e.value) for e in at.error)
    at.switch_page("pages/documents.py").run()
    assert any("was built with the embedding model" in plain(e.value) for e in at.error)
    assert any(b.label == "Re-index the collection" for b in at.button)
    assert not at.exception


def test_auto_language_follows_browser_locale(data_dir: Path, double: OllamaDouble) -> None:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.context = {"locale": "zh-CN"}
    at.run()
    assert any(title.value == "对话" for title in at.title)


# ---- pieces ----------------------------------------------------------------------------------
def test_every_ui_string_has_both_languages_and_every_key_exists() -> None:
    for key, entry in STRINGS.items():
        assert set(entry) == {"en", "zh"}, key
        assert all(entry.values()), key
    used = set()
    for source in [APP, *(ROOT / "pages").glob("*.py")]:
        used |= set(re.findall(r"""\b[Tt]\(\s*["']([a-z_]+)["']\s*[,)]""", source.read_text()))
    assert used and not used - set(STRINGS), sorted(used - set(STRINGS))
    assert t("sources_n", "zh", n=3) == "来源（3）"


def test_answer_job_stop_keeps_partial_answer(data_dir: Path, double: OllamaDouble) -> None:
    from agent.app.jobs import AnswerJob
    from agent.chat.engine import ChatEngine

    double.reply_tool_call("search_documents", {"query": "x"})
    double.reply(" ".join(f"word{i}" for i in range(200)), chunk_delay=0.02)
    engine = ChatEngine(Workspace(load_settings()))
    job = AnswerJob(engine, "Long answer please", "c1").start()
    pieces = []
    for piece in job.follow(poll=0.05):
        pieces.append(piece)
        if len(pieces) == 5:
            job.stop()
    assert job.wait(10)
    assert job.answer.incomplete and job.answer.error == "Stopped by the user."
    assert 5 <= len(pieces) < 200
    turn = engine.workspace.conversations.get("c1").turns[-1]
    assert turn.incomplete and turn.answer == job.answer.text and turn.answer.startswith("word0")


def test_answer_job_survives_the_ui_going_away(data_dir: Path, double: OllamaDouble) -> None:
    """A rerun interrupts the page's stream; the job goes on and a new follower replays it."""
    from agent.app.jobs import AnswerJob
    from agent.chat.engine import ChatEngine

    double.reply_tool_call("search_documents", {"query": "x"})
    double.reply("one two three four five six", chunk_delay=0.05)
    job = AnswerJob(ChatEngine(Workspace(load_settings())), "Q", "c2").start()
    first = job.follow(poll=0.05)
    next(first)
    first.close()  # what a Streamlit rerun does to the generator
    assert "".join(job.follow(poll=0.05)) == "one two three four five six"
    assert not job.answer.error


def test_stale_uploads_are_cleaned_fresh_ones_kept(tmp_path: Path) -> None:
    import os

    from agent.app.uploads import clean_stale_uploads, save_upload
    from agent.config import load_settings

    settings = load_settings(tmp_path, environ={})
    old, fresh = save_upload(settings, b"%PDF-1.4"), save_upload(settings, b"%PDF-1.4")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    assert clean_stale_uploads(settings) == 1
    assert not old.exists() and fresh.exists()


def test_ui_helpers(tmp_path: Path) -> None:
    from agent.app.jobs import stage_fraction
    from agent.app.settings_edit import resolve_language
    from agent.app.sources import md_escape, render_page_png

    assert resolve_language("auto", "zh-TW") == "zh" and resolve_language("auto", None) == "en"
    assert resolve_language("en", "zh-CN") == "en"
    assert stage_fraction("parse", 0, 4) == 0.0 and stage_fraction("index", 1, 1) == 1.0
    assert stage_fraction("embed", 5, 10) == pytest.approx(0.775)
    assert md_escape("a_b*c.pdf") == "a\\_b\\*c\\.pdf"
    if GEOLOGY.exists():
        png = render_page_png(GEOLOGY, 1, width=200)
        assert png.startswith(b"\x89PNG")


def test_settings_changes_never_write_env_values(tmp_path: Path) -> None:
    from agent.app.settings_edit import save_changes
    from agent.errors import SettingsError

    environ = {"OLLAMA_HOST": "http://127.0.0.1:1234", "AGENT_RETRIEVAL_K": "9"}
    settings = load_settings(tmp_path, environ=environ)
    new = save_changes(settings, environ=environ, temperature=0.5)
    assert new.temperature == 0.5 and new.retrieval_k == 9
    assert json.loads((tmp_path / "settings.json").read_text()) == {"temperature": 0.5}
    with pytest.raises(SettingsError):
        save_changes(settings, environ=environ, retrieval_k=3)
    with pytest.raises(SettingsError):
        save_changes(settings, environ=environ, num_ctx=10)
    assert json.loads((tmp_path / "settings.json").read_text()) == {"temperature": 0.5}


# ---- nothing a user does loses work (issue 13) ------------------------------------------------------
GNUPLOT = DEVSET_PDFS / "gnuplot.pdf"  # 311 pages: its ingestion takes seconds


@needs_devset
def test_upload_goes_on_while_the_user_is_on_another_page(data_dir: Path, double: OllamaDouble) -> None:
    double.embed_delay = 0.1  # ~4 s of embedding: the user leaves and comes back meanwhile
    at = run_app("pages/documents.py")
    at.file_uploader[0].set_value([("gnuplot.pdf", GNUPLOT.read_bytes(), "application/pdf")]).run()
    assert at.get("progress"), "the running job shows its progress"
    at.switch_page("pages/chat.py").run()  # a page change reruns the script: the old code lost the upload here
    assert not at.exception
    at.switch_page("pages/documents.py").run()
    assert at.get("progress") or any("gnuplot.pdf: added" in s.value for s in at.success), texts(at)
    until(at, succeeded("gnuplot.pdf: added, 311 pages"), seconds=90)
    assert list(at.dataframe[0].value["File"]) == ["gnuplot.pdf"]
    at.run()
    assert sum("gnuplot.pdf: added" in s.value for s in at.success) == 1  # reported once, not again per run
    assert not list((data_dir / "uploads").glob("*"))


@needs_devset
def test_reindex_asks_for_a_password_it_does_not_store(data_dir: Path, double: OllamaDouble,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    workspace = Workspace(settings)
    for pdf, password in ((GEOLOGY, None), (ENCRYPTED, "openpassword")):
        assert ingest_file(pdf, workspace.collection(), workspace.embeddings, settings, password=password).ok
    monkeypatch.setenv("AGENT_CHUNK_SIZE", "400")  # a setting that needs a re-index
    at = run_app("pages/documents.py")
    at.button(key="reindex-default").click().run()
    until(at, lambda at: any("kept its previous index" in plain(w.value) for w in at.warning))
    assert sorted(at.dataframe[0].value["File"]) == [ENCRYPTED.name, "squad_Geology.pdf"]  # nothing dropped
    field = next(ti for ti in at.text_input if ti.key and ti.key.startswith("reindex-pw-"))
    field.set_value("openpassword")
    next(b for b in at.button if b.label.startswith("Re-index") and "with this password" in b.label).click().run()
    until(at, lambda at: f"{ENCRYPTED.name}: re-indexed" in texts(at))
    assert "openpassword" not in (data_dir / "collections" / "default" / "manifest.json").read_text()
    results = at.session_state["reindex_reports"]["default"]["results"]
    assert [r.file for r in results] == [ENCRYPTED.name] and results[0].seconds > 0  # a real time, not 0.0


@needs_devset
def test_delete_errors_stay_on_screen(data_dir: Path, double: OllamaDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.errors import StoreError
    from agent.ingest import pipeline

    ingest(GEOLOGY)
    ingest(DEVSET_PDFS / "squad_Harvard_University.pdf")
    real = pipeline.remove_document

    def remove(collection, doc):  # one of the two deletions fails
        info = collection.infos.get(doc)
        if info is not None and info.file.startswith("squad_Harvard"):
            raise StoreError("Cannot write to collection 'default': disk full.", "Free some space.")
        return real(collection, doc)

    monkeypatch.setattr(pipeline, "remove_document", remove)
    at = run_app("pages/documents.py")
    both = [info.doc_id for info in Workspace(load_settings()).collection().document_infos()]
    at.multiselect(key="del-default").set_value(both).run()
    at.button(key="delete_documents_btn").click().run()
    assert any("disk full" in plain(e.value) for e in at.error), texts(at)  # was drawn, then wiped by a rerun
    assert any("Deleted: squad_Geology.pdf" in plain(s.value) for s in at.success), texts(at)
    assert list(at.dataframe[0].value["File"]) == ["squad_Harvard_University.pdf"]


def test_a_second_save_after_saving_the_interface_language_is_kept(data_dir: Path, double: OllamaDouble) -> None:
    at = run_app("pages/settings.py")
    switch = at.sidebar.button_group[0]
    remembered = (switch.id, switch.value)  # what the browser holds for that widget
    next(s for s in at.selectbox if s.label == "Interface language").set_value("zh")
    next(b for b in at.button if b.label == "Save").click().run()
    assert any(title.value == "设置" for title in at.title)
    for widget in at.sidebar.button_group:
        # the same widget drawn again without a value set by the app: the browser keeps its own
        # value and sends it back with the next interaction (what reverted the language)
        if widget.id == remembered[0] and not widget.proto.set_value:
            widget.set_value(remembered[1])
    next(n for n in at.number_input if n.label == "记忆轮数").set_value(9)
    next(b for b in at.button if b.label == "保存").click().run()
    assert not at.exception
    assert json.loads((data_dir / "settings.json").read_text()) == {"ui_language": "zh", "memory_turns": 9}
    assert any(title.value == "设置" for title in at.title)  # still Chinese


def test_a_hand_edited_settings_file_does_not_lock_the_ui(data_dir: Path, double: OllamaDouble) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "settings.json").write_text(json.dumps({"chunk_size": 200, "chunk_overlap": 300}))
    at = run_app()
    pages = (("pages/chat.py", "Chat"), ("pages/documents.py", "Documents"), ("pages/settings.py", "Settings"))
    for page, title in pages:
        at.switch_page(page).run()
        assert not at.exception and any(t.value == title for t in at.title), texts(at)
        assert any("chunk_overlap" in w.value for w in at.sidebar.warning), texts(at)
        assert not any("environment" in e.value for e in at.error)  # the environment is not blamed
    assert next(n for n in at.number_input if n.label.startswith("Chunk overlap")).value == 120
    next(n for n in at.number_input if n.label == "Temperature").set_value(0.7)
    next(b for b in at.button if b.label == "Save").click().run()
    assert json.loads((data_dir / "settings.json").read_text()) == {"chunk_size": 200, "temperature": 0.7}
    assert not at.sidebar.warning


def test_a_failed_first_question_is_kept_and_can_be_asked_again(data_dir: Path, double: OllamaDouble,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_CHAT_MODEL", "mistral-nonexistent")
    at = ask(run_app(), "What do geologists study?")
    at.run()
    shown = [e.value for e in at.main.error if "not installed" in e.value]
    assert len(shown) == 1, shown  # once in the conversation (the sidebar status says it once as well)
    assert len([e for e in at.sidebar.error if "not installed" in e.value]) == 1
    assert any(b.label == "Ask again" for b in at.button)
    reloaded = run_app()  # a reload is a new session
    titles = [b.label for b in reloaded.sidebar.button]
    assert "What do geologists study?" in titles, titles


def test_settings_page_takes_bounds_and_choices_from_the_model(data_dir: Path, double: OllamaDouble) -> None:
    from agent.app.settings_edit import field_bounds, field_choices

    at = run_app("pages/settings.py")
    numbers = {n.key.split("-")[1]: n for n in at.number_input}
    assert len(numbers) == 14
    for field, widget in numbers.items():
        low, high = field_bounds(field)
        assert (widget.min, widget.max) == (low, high), field
    choices = {s.key.split("-")[1]: s for s in at.selectbox if s.key and s.key.startswith("set-")}
    for field in ("backend", "mode", "answer_language", "ui_language"):
        assert choices[field].options == [t(f"opt_{o}", "en") for o in field_choices(field)], field


def test_store_and_database_url_are_in_settings_and_locked_when_set_by_env(
        data_dir: Path, double: OllamaDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    at = run_app("pages/settings.py")
    store = next(s for s in at.selectbox if s.label.startswith("Store"))
    url = next(t for t in at.text_input if t.label == "PostgreSQL URL")
    assert store.value == "local" and not store.disabled and not url.disabled
    monkeypatch.setenv("AGENT_STORE", "local")
    monkeypatch.setenv("AGENT_DATABASE_URL", "postgresql://me@/db?host=/run/pg")
    at = run_app("pages/settings.py")
    store = next(s for s in at.selectbox if s.label.startswith("Store"))
    url = next(t for t in at.text_input if t.label == "PostgreSQL URL")
    assert store.disabled and "AGENT_STORE" in store.help
    assert url.disabled and "AGENT_DATABASE_URL" in url.help and url.value.endswith("host=/run/pg")
