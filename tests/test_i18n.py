"""UI wording (agent/app/i18n.py, agent/app/_wording.py): codes translated, values shown literally."""

from __future__ import annotations

import re
import string
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.app._wording import ERRORS, FIELD_HELP
from agent.app.i18n import (
    STRINGS,
    count,
    day_label,
    error_text,
    field_help,
    local_time,
    md,
    md_literal,
    md_plain,
    status_text,
    t,
)
from agent.chat.llm import model_not_found
from agent.config import Settings, update_settings
from agent.errors import AgentError, PromptError, SettingsError
from agent.prompts import validate

ROOT = Path(__file__).resolve().parents[1]
ASCII_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]{2,}")
# Words a Chinese sentence may keep: product names, commands, placeholders, units, URLs.
ALLOWED = {"Ollama", "OLLAMA_HOST", "PDF", "OCR", "README", "ollama", "serve", "pull", "python", "agent",
           "reindex", "collection", "num_ctx", "llama3", "qwen3", "SmolLM2", "http", "HOST", "PORT", "local",
           "library", "com", "question", "context", "language", "history", "Markdown", "keep_alive", "CPU",
           "PostgreSQL"}


def codes_set_in_agent() -> set[str]:
    """Every code agent/ sets (`code="x"`, also in conditional expressions); the translator
    itself (i18n.py) only reads codes."""
    found = set()
    for path in (ROOT / "agent").rglob("*.py"):
        if path.name == "i18n.py":
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.search(r"\bcode\s*=", line):
                found |= set(re.findall(r"""(?:\bcode\s*=\s*|\belse\s*\(?)["']([a-z_]+)["']""", line))
    return found


def test_every_code_the_library_raises_has_both_wordings() -> None:
    raised = codes_set_in_agent()
    assert {"ollama_unreachable", "model_not_found", "doc_encrypted", "prompt_missing", "stopped",
            "prompt_truncated"} <= raised
    missing = sorted(c for c in raised if c not in ERRORS and f"note_{c}" not in STRINGS)
    assert not missing, missing
    for code, entry in ERRORS.items():
        assert set(entry) == {"en", "zh"}, code
        assert {_fields(entry["en"][0] + entry["en"][1])} == {_fields(entry["zh"][0] + entry["zh"][1])}, code


def _fields(template: str) -> frozenset[str]:
    return frozenset(f for _, f, _, _ in string.Formatter().parse(template) if f)


def test_chinese_error_wording_has_no_english_words_but_names() -> None:
    for code, entry in ERRORS.items():
        text = re.sub(r"`[^`]*`|\{[^}]*\}|\S+\.\S+", "", " ".join(entry["zh"]))
        assert not set(ASCII_WORD.findall(text)) - ALLOWED, (code, text)


def test_field_help_exists_for_every_field_on_the_settings_page() -> None:
    shown = set(re.findall(r'values\["([a-z_]+)"\]\s*=', (ROOT / "pages" / "settings.py").read_text()))
    assert shown and shown <= set(FIELD_HELP), sorted(shown - set(FIELD_HELP))
    for field, entry in FIELD_HELP.items():
        assert field in Settings.model_fields and set(entry) == {"en", "zh"}, field
        assert not set(ASCII_WORD.findall(entry["zh"])) - ALLOWED - {"auto", "AGENT_DATA_DIR"}, field
        assert "_" not in entry["en"].replace("OLLAMA_HOST", ""), "no internal names in a tooltip"
    assert field_help("num_ctx", "zh").startswith("模型一次")


def test_error_text_words_the_code_in_the_language() -> None:
    err = model_not_found("llama3.2", "http://127.0.0.1:11434")
    assert error_text(err, "zh").startswith("Ollama 中没有安装模型 `llama3.2`。")
    assert error_text(err, "en").startswith("The model `llama3.2` is not installed in Ollama.")
    assert error_text(None, "zh", code="stopped", message="Stopped by the user.") == "已按你的要求停止。"
    # a stored turn with an unknown code, or an error without one: its own message, literally
    assert error_text(None, "zh", code="gone_code", message="raw") == "raw"
    assert error_text(AgentError("a __b__", "run `x__y`"), "zh") == "a \\_\\_b\\_\\_  \nrun `x__y`"


def test_settings_errors_are_plain_words() -> None:
    with pytest.raises(SettingsError) as caught:
        update_settings(Settings(), chunk_overlap=900)
    assert error_text(caught.value, "en") == "The chunk overlap must be smaller than the chunk size.  \nNothing was saved."
    assert error_text(caught.value, "zh").startswith("分块重叠必须小于分块大小。")
    with pytest.raises(SettingsError) as caught:
        update_settings(Settings(), keep_alive="soon")
    assert "“soon” is not a duration" in error_text(caught.value, "en")


def test_prompt_errors_show_placeholders_verbatim() -> None:
    with pytest.raises(PromptError) as caught:
        validate("answer_prompt", "Use {context.__class__} and {question}")
    text = error_text(caught.value, "en")
    assert "`{context.__class__}`" in text and "answer_prompt" not in text  # a code span: no bold "class"
    with pytest.raises(PromptError) as caught:
        validate("answer_prompt", "{question} {extra}")
    assert error_text(caught.value, "zh") == "必须包含 `{context}`，且此处不能使用 `{extra}`（可用：`{context}, {language}, {question}`）。"


def test_md_fills_values_literally_and_code_spans_verbatim() -> None:
    assert md("{file}: added", file="__init__.pdf") == "\\_\\_init\\_\\_.pdf: added"
    assert md("run `ollama pull {model}`", model="a_b`c") == "run `ollama pull a_b'c`"
    assert md_literal("1. intro.pdf") == "1\\. intro.pdf" and md_literal("v0.12.0") == "v0.12.0"
    assert md_literal("<img src=x>") == "\\<img src=x\\>"
    assert md_plain("Start `ollama serve` for my_file") == "Start `ollama serve` for my\\_file"


def test_counts_say_one_page_not_one_pages() -> None:
    assert count("n_pages", 1, "en") == "1 page" and count("n_pages", 3, "en") == "3 pages"
    assert count("n_pages", 1, "zh") == "1 页"
    assert status_text("read", {"n": 1}, "en") == "The model is reading 1 excerpt"
    assert status_text("search", {}, "zh") == "正在检索文档"
    assert not any(v.rstrip().endswith("…") for k, e in STRINGS.items() if k.startswith("status_") for v in e.values())


def test_times_are_local_not_iso_utc() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    assert local_time("2026-12-03T07:48:56+00:00", shanghai) == "2026-12-03 15:48"
    assert local_time("not a date", shanghai) == "not a date"
    now = datetime(2026, 12, 3, 20, 0, tzinfo=timezone.utc)  # 04:00 on Dec 4 in Shanghai
    assert day_label("2026-12-03T17:00:00+00:00", shanghai, "en", now) == "Today"  # 01:00 Dec 4 local
    assert day_label("2026-12-03T07:00:00+00:00", shanghai, "zh", now) == "昨天"
    assert day_label("2026-11-20T07:00:00+00:00", shanghai, "en", now) == "2026-11-20"


def test_every_string_in_both_languages_and_no_debris() -> None:
    for key, entry in STRINGS.items():
        assert set(entry) == {"en", "zh"} and all(entry.values()), key
        assert "!r}" not in entry["en"] + entry["zh"], key
    assert t("page_chat", "zh") == "对话"
