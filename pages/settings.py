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
from agent.app.i18n import field_help, join_list, local_time
from agent.app.settings_edit import field_bounds, field_choices, reset_to_defaults, save_changes
from agent.chat.llm import find_model
from agent.chat.models import context_exceeds, delete_model, loaded_models
from agent.errors import AgentError
from pages import (
    forget_language_choice,
    page_setup,
    refresh_models,
    settings_problem_text,
    show_error,
)
from pages._model_picker import model_choices, pulls_section, start_pull

ctx = page_setup()
T = ctx.t
S = st.session_state
settings = ctx.settings
S.setdefault("settings_gen", 0)
GEN = S["settings_gen"]
FIELDS = type(settings).model_fields
NEEDS_REINDEX = {"embedding", "chunk_size", "chunk_overlap"}
ABILITIES = ("completion", "tools", "thinking", "embedding", "vision")
#: the +/- step of each number field (its bounds come from the Settings model)
STEPS: dict[str, float] = {"request_timeout": 10, "temperature": 0.05, "num_ctx": 512, "num_predict": 64,
                           "repeat_penalty": 0.05, "memory_turns": 1, "retrieval_k": 1, "chunk_size": 50,
                           "chunk_overlap": 10, "max_upload_mb": 10, "max_pages": 100,
                           "max_searches": 1, "max_answer_chars": 1000, "answer_timeout_s": 60}


def key(field: str) -> str:
    return f"set-{field}-{GEN}"


def common(field: str) -> dict[str, Any]:
    """Label, help (in the UI language, or the pinning variable) and disabled state."""
    pinned = ctx.pinned.get(field)
    return {"label": T(f"field_{field}"), "key": key(field), "disabled": bool(pinned),
            "help": T("pinned_by", var=pinned) if pinned else field_help(field, ctx.lang)}


def number(field: str, fmt: str | None = None) -> Any:
    value = getattr(settings, field)
    kind = float if isinstance(value, float) else int
    low, high = field_bounds(field)
    return st.number_input(min_value=None if low is None else kind(low), max_value=None if high is None else kind(high),
                           value=value, step=kind(STEPS[field]), format=fmt, **common(field))


def choice(field: str) -> Any:
    value = getattr(settings, field)
    options = field_choices(field)
    return st.selectbox(options=options, index=options.index(value), format_func=lambda o: T(f"opt_{o}", default=o),
                        **common(field))


def installed_models() -> list[Any]:
    if not ctx.status.reachable:
        return []
    try:
        return ctx.models()
    except AgentError:
        return []


def embedding_options() -> list[str]:
    options = ["local", *(f"ollama:{m.name}" for m in installed_models() if "embedding" in m.capabilities)]
    if settings.embedding not in options:
        options.append(settings.embedding)
    return options


def embedding_label(option: str) -> str:
    if option == "local":
        return T("opt_local")
    return T("opt_ollama_embedding", model=option.removeprefix("ollama:")) if option.startswith("ollama:") else option


def chat_model_field() -> Any:
    """The same chat-model picker as the sidebar's (typing another name is allowed: it can be
    downloaded below)."""
    choices = model_choices(ctx, installed_models())
    choice = st.selectbox(options=choices.options, index=choices.index, accept_new_options=True,
                          format_func=lambda o: choices.labels.get(o, o), **common("chat_model"))
    # the configured name ("llama3.2") is listed as installed ("llama3.2:latest"): unchanged, not an edit
    return settings.chat_model if choice == choices.options[choices.index] else choice


def context_warning() -> None:
    """num_ctx above what the chat model supports: Ollama would silently use less."""
    info = find_model(installed_models(), settings.chat_model)
    if context_exceeds(settings.num_ctx, info):
        st.warning(ctx.md("num_ctx_too_big", num_ctx=settings.num_ctx, model=settings.chat_model,
                          limit=info.context_length), icon=":material/warning:")


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
        S["settings_message"] = ("error", ctx.error(err))
    S["settings_gen"] += 1


# ---- models: download, delete, what is loaded ---------------------------------------------------
def models_section() -> None:
    st.subheader(T("models_title"))
    if settings.backend == "embedded" or not ctx.status.reachable:
        st.caption(T("models_unavailable"))
        return
    models = installed_models()
    try:
        loaded = {m.name: m for m in loaded_models(settings)}
    except AgentError:
        loaded = {}
    rows = [{T("col_model"): m.name, T("col_params"): m.parameter_size, T("col_size_gb"): round(m.size / 1e9, 1),
             T("col_context"): m.context_length, T("col_abilities"): abilities(m.capabilities),
             T("col_loaded"): loaded_text(loaded.get(m.name))} for m in models]
    if rows:
        st.space(24)  # room for the table's toolbar above it (see the Documents page)
        st.dataframe(rows, hide_index=True, width="stretch")
    else:
        st.caption(ctx.md("no_models_installed", host=settings.ollama_host))
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    with left:
        name = st.text_input(T("pull_label"), key="pull_name", placeholder="llama3.2, qwen3:4b",
                             help=T("pull_help"))
    with right:
        st.button(T("pull_button"), icon=":material/download:", disabled=not name.strip(), key="pull_btn",
                  on_click=on_pull)
    pulls_section(ctx)
    if models:
        delete_models(models)


def on_pull() -> None:
    start_pull(ctx, S.get("pull_name", ""))
    S["pull_name"] = ""


def abilities(capabilities: tuple[str, ...]) -> str:
    return join_list([T(f"ability_{c}") for c in capabilities if c in ABILITIES], ctx.lang)


def loaded_text(model: Any) -> str:
    if model is None:
        return ""
    until = local_time(model.expires_at.isoformat(), ctx.zone) if model.expires_at else ""
    return T("loaded_until", context=model.context_length or "?", until=until)


def delete_models(models: list[Any]) -> None:
    names = [m.name for m in models]
    with st.popover(T("delete_model"), icon=":material/delete:", key="delete_model_popover", on_change="rerun"):
        chosen = st.selectbox(T("delete_model_which"), names, key="delete_model_name")
        st.warning(ctx.md("delete_model_warning", model=chosen))
        st.button(T("delete_model_confirm", model=chosen), type="primary", key="delete_model_btn",
                  on_click=on_delete_model, args=(chosen,))


def on_delete_model(name: str) -> None:
    try:
        delete_model(settings, name)
        S["settings_message"] = ("success", ctx.md("model_deleted", model=name))
    except AgentError as err:
        S["settings_message"] = ("error", ctx.error(err))
    S["delete_model_popover"] = False
    refresh_models()


st.title(T("page_settings"))
st.caption(T("settings_intro", path=str(settings.settings_path)))
for problem in ctx.problems:  # also in the sidebar; here it says what the next save does about it
    st.warning(settings_problem_text(ctx, problem) + T("settings_problem_fix"), icon=":material/warning:")
if ctx.pinned:
    pinned = join_list([f"{T(f'field_{f}')} ({v})" for f, v in sorted(ctx.pinned.items())], ctx.lang)
    st.info(ctx.md("pinned_note", vars=pinned), icon=":material/push_pin:")
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
            values["ollama_hosts"] = st.text_input(value=", ".join(settings.ollama_hosts), **common("ollama_hosts"))
            values["backend"] = choice("backend")
            values["chat_model"] = chat_model_field()
            values["mode"] = choice("mode")
            values["answer_style"] = choice("answer_style")
            values["keep_alive"] = st.text_input(value=settings.keep_alive, **common("keep_alive"))
            values["request_timeout"] = number("request_timeout", fmt="%.0f")
            values["answer_timeout_s"] = number("answer_timeout_s", fmt="%.0f")
        with right:
            values["temperature"] = number("temperature")
            values["num_ctx"] = number("num_ctx")
            context_warning()
            values["num_predict"] = number("num_predict")
            values["max_answer_chars"] = number("max_answer_chars")
            values["repeat_penalty"] = number("repeat_penalty")
            values["memory_turns"] = number("memory_turns")
    with tab_retrieval:
        left, right = st.columns(2)
        with left:
            values["retrieval_k"] = number("retrieval_k")
            values["max_searches"] = number("max_searches")
            values["hybrid"] = st.toggle(value=settings.hybrid, **common("hybrid"))
            embeddings = embedding_options()
            values["embedding"] = st.selectbox(options=embeddings, index=embeddings.index(settings.embedding),
                                               accept_new_options=True, format_func=embedding_label,
                                               **common("embedding"))
            values["ocr"] = st.toggle(value=settings.ocr, **common("ocr"))
            values["store"] = choice("store")
            values["database_url"] = st.text_input(value=settings.database_url, type="password", **common("database_url"))
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
                prompt_errors.append(T("prompt_invalid", field=T(f"field_{field}"), error=ctx.error(exc)))
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
            show_error(err, lang=ctx.lang)
        else:
            note = T("reindex_needed") if NEEDS_REINDEX & set(changes) else ""
            fields = join_list([T(f"field_{f}") for f in sorted(changes)], ctx.lang)
            S["settings_message"] = ("success", T("saved", fields=fields) + note)
            if "ui_language" in changes:
                forget_language_choice()
            S["settings_gen"] += 1
            st.rerun()

models_section()

with st.popover(T("reset_defaults"), icon=":material/restart_alt:"):
    st.warning(T("reset_warning"))
    st.button(T("reset_confirm"), on_click=on_reset, type="primary", key="reset_confirm")
