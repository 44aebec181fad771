"""Settings and prompts page: edit, validate, save to data/settings.json, reset to defaults.

Fields pinned by environment variables are shown disabled. Prompts are validated
(`agent.prompts.validate`) before anything is saved; a refused edit leaves the file as
it was. Saved settings take effect on the next question (the engine is cached per
settings value).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from agent import prompts
from agent.app.i18n import t
from agent.app.settings_edit import (
    field_bounds,
    field_choices,
    reset_to_defaults,
    resolve_language,
    save_changes,
)
from agent.errors import AgentError
from pages import (
    browser_locale,
    error_text,
    page_setup,
    set_language,
    settings_problem_text,
    show_error,
)

ctx = page_setup()
T = ctx.t
S = st.session_state
settings = ctx.settings
S.setdefault("settings_gen", 0)
GEN = S["settings_gen"]
FIELDS = type(settings).model_fields
NEEDS_REINDEX = {"embedding", "chunk_size", "chunk_overlap"}
#: the +/- step of each number field (bounds come from the Settings model)
STEPS: dict[str, float] = {"request_timeout": 10, "temperature": 0.05, "num_ctx": 512, "num_predict": 64,
                           "repeat_penalty": 0.05, "memory_turns": 1, "retrieval_k": 1, "chunk_size": 50,
                           "chunk_overlap": 10, "max_upload_mb": 10, "max_pages": 100}


def key(field: str) -> str:
    return f"set-{field}-{GEN}"


def common(field: str) -> dict[str, Any]:
    """Label, help (the field's description, or the pinning variable) and disabled state."""
    pinned = ctx.pinned.get(field)
    description = FIELDS[field].description or ""
    return {"label": T(f"field_{field}"), "key": key(field), "disabled": bool(pinned),
            "help": T("pinned_by", var=pinned) if pinned else description}


def number(field: str) -> Any:
    value = getattr(settings, field)
    kind = float if isinstance(value, float) else int
    low, high = field_bounds(field)
    return st.number_input(min_value=None if low is None else kind(low), max_value=None if high is None else kind(high),
                           value=value, step=kind(STEPS[field]), **common(field))


def choice(field: str) -> Any:
    value = getattr(settings, field)
    options = field_choices(field)
    return st.selectbox(options=options, index=options.index(value), format_func=lambda o: T(f"opt_{o}", default=o),
                        **common(field))


def embedding_options() -> list[str]:
    options = ["local"]
    if ctx.status.reachable:
        try:
            options += [f"ollama:{m.name}" for m in ctx.models() if "embedding" in m.capabilities]
        except AgentError:
            pass
    if settings.embedding not in options:
        options.append(settings.embedding)
    return options


def prompt_area(field: str) -> str:
    required = " ".join(f"{{{n}}}" for n in sorted(prompts.REQUIRED[field])) or T("none")
    optional = " ".join(f"{{{n}}}" for n in sorted(prompts.OPTIONAL[field])) or T("none")
    st.caption(T("placeholders", required=required, optional=optional))
    return st.text_area(height=220, value=getattr(settings, field), **common(field))


def on_reset() -> None:
    try:
        reset_to_defaults(settings)
        S["settings_message"] = ("success", T("reset_done"))
    except AgentError as err:
        S["settings_message"] = ("error", error_text(err))
    S["settings_gen"] += 1


st.title(T("page_settings"))
st.caption(T("settings_intro", path=str(settings.settings_path)))
for problem in ctx.problems:  # also in the sidebar; here it says what the next save will fix
    st.warning(settings_problem_text(ctx, problem) + T("settings_problem_fix"), icon=":material/warning:")
if ctx.pinned:
    st.info(T("pinned_note", vars=", ".join(f"{f} ({v})" for f, v in sorted(ctx.pinned.items()))), icon=":material/push_pin:")
if S.get("settings_message"):
    kind, text = S.pop("settings_message")
    (st.success if kind == "success" else st.error)(text)

with st.form("settings_form", border=False):
    values: dict[str, Any] = {}
    tab_model, tab_retrieval, tab_prompts, tab_language = st.tabs(
        [T("tab_model"), T("tab_retrieval"), T("tab_prompts"), T("tab_language")])
    with tab_model:
        left, right = st.columns(2)
        with left:
            values["ollama_host"] = st.text_input(value=settings.ollama_host, **common("ollama_host"))
            values["backend"] = choice("backend")
            values["chat_model"] = st.text_input(value=settings.chat_model, **common("chat_model"))
            values["mode"] = choice("mode")
            values["keep_alive"] = st.text_input(value=settings.keep_alive, **common("keep_alive"))
            values["request_timeout"] = number("request_timeout")
        with right:
            values["temperature"] = number("temperature")
            values["num_ctx"] = number("num_ctx")
            values["num_predict"] = number("num_predict")
            values["repeat_penalty"] = number("repeat_penalty")
            values["memory_turns"] = number("memory_turns")
    with tab_retrieval:
        left, right = st.columns(2)
        with left:
            values["retrieval_k"] = number("retrieval_k")
            values["hybrid"] = st.toggle(value=settings.hybrid, **common("hybrid"))
            embeddings = embedding_options()
            values["embedding"] = st.selectbox(options=embeddings, index=embeddings.index(settings.embedding),
                                               accept_new_options=True, **common("embedding"))
            values["ocr"] = st.toggle(value=settings.ocr, **common("ocr"))
        with right:
            values["chunk_size"] = number("chunk_size")
            values["chunk_overlap"] = number("chunk_overlap")
            values["max_upload_mb"] = number("max_upload_mb")
            values["max_pages"] = number("max_pages")
        st.caption(T("reindex_note"))
    with tab_prompts:
        for field in ("system_prompt", "answer_prompt", "rewrite_prompt"):
            values[field] = prompt_area(field)
    with tab_language:
        values["answer_language"] = choice("answer_language")
        values["ui_language"] = choice("ui_language")
    submitted = st.form_submit_button(T("save"), type="primary", icon=":material/save:")

if submitted:
    changes = {f: v for f, v in values.items() if f not in ctx.pinned and v is not None and v != getattr(settings, f)}
    prompt_errors = []
    for field in ("system_prompt", "answer_prompt", "rewrite_prompt"):
        if field in changes:
            try:
                prompts.validate(field, changes[field])
            except ValueError as exc:
                prompt_errors.append(T("prompt_invalid", field=T(f"field_{field}"), error=str(exc)))
    if prompt_errors:
        for message in prompt_errors:
            st.error(message, icon=":material/error:")
        st.error(T("nothing_saved"))
    elif not changes:
        st.info(T("no_changes"))
    else:
        try:
            save_changes(settings, **changes)
        except AgentError as err:
            show_error(err)
        else:
            lang = ctx.lang
            if "ui_language" in changes:  # the session follows the saved language from the next run on
                lang = resolve_language(changes["ui_language"], browser_locale())
                set_language(lang)
            note = t("reindex_needed", lang) if NEEDS_REINDEX & set(changes) else ""
            S["settings_message"] = ("success", t("saved", lang, fields=", ".join(sorted(changes))) + note)
            S["settings_gen"] += 1
            st.rerun()

with st.popover(T("reset_defaults"), icon=":material/restart_alt:"):
    st.warning(T("reset_warning"))
    st.button(T("reset_confirm"), on_click=on_reset, type="primary", key="reset_confirm")
