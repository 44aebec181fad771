"""Chat page: conversation history, streamed answers with sources, model and collection pickers.

Answers stream from an `AnswerJob` (agent/app/jobs.py): the engine runs in a worker
thread with a stop event, so a click (which reruns this script) never loses an answer,
and Stop ends it cleanly: the partial text is stored, marked incomplete.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import streamlit as st

from agent.app.jobs import AnswerJob
from agent.app.settings_edit import save_changes
from agent.app.sources import excerpt, export_file_name, md_escape, render_page_png, source_pdf
from agent.app.status import chat_model_names
from agent.chat.llm import find_model
from agent.errors import AgentError
from agent.search.retrieval import Source
from pages import error_text, page_setup, refresh_models, show_error

ctx = page_setup()
T = ctx.t
S = st.session_state
settings = ctx.settings
JOB = "answer_job"
RETRY = "retry_question"
CONVERSATION = "conversation"


@st.cache_data(show_spinner=False, max_entries=64)
def page_png(pdf: str, mtime: float, page: int) -> bytes:
    return render_page_png(pdf, page)


def save_setting(**changes: Any) -> bool:
    try:
        save_changes(settings, **changes)
        return True
    except AgentError as err:
        show_error(err)
        return False


# ---- sidebar: model, collections, conversations --------------------------------------------
def model_picker() -> None:
    if settings.backend == "embedded":
        st.caption(T("model_embedded_forced"))
        return
    if not ctx.status.reachable:
        st.caption(T("models_unavailable"))  # the status above says why and how to fix it
        return
    try:
        models = ctx.models()
    except AgentError as err:
        show_error(err)
        return
    names = chat_model_names(models)
    if not names:
        st.warning(T("no_models", host=settings.ollama_host))
        return
    current = find_model(models, settings.chat_model)
    options = names if current is not None else [settings.chat_model, *names]
    index = options.index(current.name) if current is not None else 0
    by_name = {m.name: m for m in models}

    def label(name: str) -> str:
        info = by_name.get(name)
        if info is None:
            return T("model_not_installed", model=name)
        return f"{name} · {T('tools_short') if info.tools else T('no_tools_short')}"

    pinned = ctx.pinned.get("chat_model")
    choice = st.selectbox(T("chat_model"), options, index=index, format_func=label, disabled=bool(pinned),
                          help=T("pinned_by", var=pinned) if pinned else T("chat_model_help"))
    if choice != options[index] and not pinned and save_setting(chat_model=choice):
        st.rerun()
    st.button(T("refresh_models"), on_click=refresh_models, type="tertiary", icon=":material/refresh:")


def collection_picker() -> None:
    names = ctx.workspace.collection_names()
    pinned = ctx.pinned.get("collections")
    chosen = st.multiselect(T("chat_collections"), names, default=settings.collections, disabled=bool(pinned),
                            help=T("pinned_by", var=pinned) if pinned else T("chat_collections_help"))
    if not chosen:
        st.warning(T("need_one_collection"))
    elif chosen != settings.collections and not pinned and save_setting(collections=chosen):
        st.rerun()


def select_conversation(conversation_id: str | None) -> None:
    S[CONVERSATION] = conversation_id


def rename_conversation(conversation_id: str, key: str) -> None:
    try:
        ctx.workspace.conversations.rename(conversation_id, S.get(key, ""))
    except AgentError as err:
        S["chat_settings_error"] = error_text(err)


def delete_conversation(conversation_id: str) -> None:
    try:
        ctx.workspace.conversations.delete(conversation_id)
    except AgentError as err:
        S["chat_settings_error"] = error_text(err)
    if S.get(CONVERSATION) == conversation_id:
        S[CONVERSATION] = None


def conversation_list(current: str | None, running: bool) -> None:
    store = ctx.workspace.conversations
    st.subheader(T("conversations"))
    st.button(T("new_conversation"), on_click=select_conversation, args=(None,), icon=":material/add:",
              disabled=running, use_container_width=True)
    conversations = store.list()
    shown = conversations if S.get("show_all_conversations") else conversations[:30]
    for conversation in shown:
        is_current = conversation.id == current
        st.button(conversation.title, key=f"conv-{conversation.id}", on_click=select_conversation,
                  args=(conversation.id,), type="primary" if is_current else "tertiary",
                  disabled=running and not is_current, use_container_width=True)
    if len(conversations) > 30:
        st.checkbox(T("show_all"), key="show_all_conversations")
    if current and store.exists(current):
        title = next((c.title for c in conversations if c.id == current), "")
        with st.expander(T("manage_conversation"), icon=":material/edit:"):
            key = f"rename-{current}-{zlib.crc32(title.encode())}"  # a new title resets the field
            st.text_input(T("title"), value=title, key=key, max_chars=200)
            st.button(T("rename"), on_click=rename_conversation, args=(current, key), key=f"do-{key}")
            st.download_button(T("export_markdown"), data=store.export_markdown(current),
                               file_name=export_file_name(title, current), mime="text/markdown",
                               icon=":material/download:")
            st.caption(T("delete_warning"))
            st.button(T("delete_conversation"), on_click=delete_conversation, args=(current,),
                      key=f"delete-{current}", disabled=running, icon=":material/delete:")


# ---- answers ---------------------------------------------------------------------------------
def chat_collections() -> list[Any]:
    try:
        return ctx.workspace.chat_collections()
    except (AgentError, ValueError):
        return []


def show_source(source: Source, number: int, key: str) -> None:
    ocr = " · OCR" if source.get("ocr") else ""
    st.markdown(f"**{number}. {md_escape(str(source.get('file', '?')))}** · "
                f"{T('page_short', page=source.get('page', '?'))} · {T('score')} {float(source.get('score', 0)):.3f}{ocr}")
    st.text(excerpt(source.get("text", "")))
    if st.toggle(T("show_page"), key=f"page-{key}"):
        pdf = source_pdf(chat_collections(), source)
        if pdf is None:
            st.caption(T("page_unavailable"))
            return
        try:
            st.image(page_png(str(pdf), Path(pdf).stat().st_mtime, int(source.get("page", 1))), width=520,
                     caption=f"{source.get('file')} · {T('page_short', page=source.get('page'))}")
        except Exception as exc:  # noqa: BLE001 - a damaged stored PDF must not break the chat
            st.caption(T("page_render_failed", error=error_text(exc)))


def answer_footer(text: str, sources: list[Source], model: str, error: str, key: str) -> None:
    if error:
        if text:
            st.warning(T("answer_incomplete", error=error), icon=":material/content_cut:")
        else:
            st.error(error, icon=":material/error:")
    if sources:
        with st.expander(T("sources_n", n=len(sources)), icon=":material/menu_book:"):
            for number, source in enumerate(sources, 1):
                show_source(source, number, f"{key}-{number}")
    if model:
        st.caption(model)


def show_turn(turn: Any, key: str) -> None:
    with st.chat_message("user"):
        st.markdown(turn.question)
    with st.chat_message("assistant"):
        if turn.answer:
            st.markdown(turn.answer)
        answer_footer(turn.answer, turn.sources, turn.model, turn.error, key)
        if turn.incomplete:  # the broken turn is not replayed to the model, so asking again is clean
            st.button(T("ask_again"), key=f"again-{key}", icon=":material/refresh:",
                      on_click=S.__setitem__, args=(RETRY, turn.question))


def follow_job(job: AnswerJob, input_disabled: bool) -> None:
    """Show a running (or just finished but not stored) answer; stream it if still running.

    `input_disabled`: the chat box above was drawn disabled because the job was running
    then; if it has finished since, rerun so the box comes back enabled."""
    with st.chat_message("user"):
        st.markdown(job.question)
    with st.chat_message("assistant"):
        if not job.done:
            # the same keyed widget in the same place on every run, so a rerun updates it in place
            st.button(T("stopping") if job.stopping else T("stop"), on_click=job.stop, key="stop_answer",
                      icon=":material/stop_circle:", disabled=job.stopping)
            status = st.empty()

            def idle(j: AnswerJob) -> None:
                status.caption(T("waiting", status=j.status or T("thinking"), seconds=int(j.elapsed)))

            st.write_stream(job.follow(idle=idle))
            while not job.done:  # stopped: the engine finishes its current model call, then stores the text
                status.caption(T("stopping_wait", seconds=int(job.elapsed)))
                job.wait(0.5)
            status.empty()
            st.rerun()  # the stored turn (and the sidebar list) now show it
        if input_disabled:
            st.rerun()
        answer = job.answer
        if answer.text:
            st.markdown(answer.text)
        answer_footer(answer.text, answer.sources, answer.model, answer.error, "job")


# ---- page --------------------------------------------------------------------------------------
job: AnswerJob | None = S.get(JOB)
running = job is not None and not job.done
prompt = st.chat_input(T("ask_placeholder"), disabled=running, submit_mode="disable", max_chars=8000)
prompt = prompt or S.pop(RETRY, None)

try:
    store = ctx.workspace.conversations
    current = S.get(CONVERSATION)
    if prompt and not running:
        current = current or store.create()
        S[CONVERSATION] = current
        turns_before = len(store.get(current).turns)
        job = AnswerJob(ctx.engine, prompt, current, turns_before).start()
        S[JOB] = job
        running = True
    elif prompt:
        st.toast(T("busy"))

    with st.sidebar:
        model_picker()
        collection_picker()
        conversation_list(current, running)
        if S.get("chat_settings_error"):
            st.error(S.pop("chat_settings_error"))

    st.title(T("page_chat"))
    try:
        collections = ctx.workspace.chat_collections()
    except (AgentError, ValueError) as err:  # e.g. built with another embedding model: says how to fix
        show_error(err)
        collections = []
    if collections and not any(c.document_infos() for c in collections):
        st.info(T("no_documents"), icon=":material/description:")
        st.page_link("pages/documents.py", label=T("go_documents"), icon=":material/library_books:")

    turns = store.get(current).turns if current and store.exists(current) else []
    for index, turn in enumerate(turns):
        show_turn(turn, f"{current}-{index}")
    if job is not None and job.conversation_id == current:
        if job.done and len(turns) > job.turns_before:
            S[JOB] = None  # stored: it is part of the history above
            if running:  # the chat box was drawn disabled while it ran: draw it enabled
                st.rerun()
        else:
            follow_job(job, input_disabled=running)
except AgentError as err:
    show_error(err)
