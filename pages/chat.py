"""Chat page: conversation history, streamed answers with sources, model and collection pickers.

Answers stream from an `AnswerJob` (agent/app/jobs.py): the engine runs in a worker
thread with a stop event, so a click (which reruns this script) never loses an answer,
and Stop ends it cleanly: the partial text is stored, marked incomplete.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import streamlit as st

from agent.app.i18n import day_label, local_time, md_literal, md_plain, status_text
from agent.app.jobs import AnswerJob
from agent.app.settings_edit import save_changes
from agent.app.sources import (
    excerpt,
    export_file_name,
    inert_images,
    inert_stream,
    is_image_source,
    link_citations,
    md_escape,
    page_label,
    preview_key,
    render_page_png,
    section_markdown,
    source_anchor,
    source_pdf,
)
from agent.chat.conversations import DEFAULT_TITLE, RecentTurns
from agent.chat.embedded import EMBEDDED_MODEL_NAME
from agent.errors import AgentError
from agent.search.retrieval import Source
from pages import (
    offer_collection,
    page_setup,
    refresh_models,
    show_error,
)
from pages._copy import copy_button
from pages._model_picker import model_choices, pulls_section, start_pull

ctx = page_setup()
T = ctx.t
S = st.session_state
settings = ctx.settings
JOB = "answer_job"
RETRY = "retry_question"
CONVERSATION = "conversation"
CONVERSATIONS_SHOWN = 30
TURNS_SHOWN = "turns_shown"  # per conversation: how many of its last turns are drawn
RECENT_TURNS = 20  # a conversation opens with its last 20 turns; "load earlier" adds 20 more


@st.cache_data(show_spinner=False, max_entries=64)
def page_png(pdf: str, mtime: float, page: int, highlight: str) -> bytes:
    return render_page_png(pdf, page, highlight=highlight)


def save_setting(**changes: Any) -> bool:
    try:
        save_changes(settings, **changes)
        return True
    except AgentError as err:
        show_error(err, lang=ctx.lang)
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
        show_error(err, lang=ctx.lang)
        return
    choices = model_choices(ctx, models)
    if not choices.options:
        st.warning(ctx.md("no_models", host=settings.ollama_host))
        return
    pinned = ctx.pinned.get("chat_model")
    choice = st.selectbox(T("chat_model"), choices.options, index=choices.index, format_func=choices.labels.get,
                          disabled=bool(pinned),
                          help=T("pinned_by", var=pinned) if pinned else T("chat_model_help"))
    if choices.missing:  # the status above says it is not installed: offer the download here
        st.button(T("download_model", model=settings.chat_model), icon=":material/download:",
                  on_click=start_pull, args=(ctx, settings.chat_model), key="pull-missing")
    if choice != choices.options[choices.index] and not pinned and save_setting(chat_model=choice):
        st.rerun()
    st.button(T("refresh_models"), on_click=refresh_models, type="tertiary", icon=":material/refresh:")


def collection_picker() -> None:
    names = ctx.workspace.collection_names()
    pinned = ctx.pinned.get("collections")
    chosen = st.multiselect(T("chat_collections"), names, default=settings.collections, disabled=bool(pinned),
                            help=T("pinned_by", var=pinned) if pinned else T("chat_collections_help"),
                            placeholder=T("choose"))
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
        S["chat_settings_error"] = ctx.error(err)


def delete_conversation(conversation_id: str) -> None:
    try:
        ctx.workspace.conversations.delete(conversation_id)
    except AgentError as err:
        S["chat_settings_error"] = ctx.error(err)
    if S.get(CONVERSATION) == conversation_id:
        S[CONVERSATION] = None


def conversation_list(current: str | None, running: bool) -> None:
    """The conversations, newest first under day headings, searchable by title."""
    store = ctx.workspace.conversations
    st.subheader(T("conversations"))
    st.button(T("new_conversation"), on_click=select_conversation, args=(None,), icon=":material/add:",
              disabled=running, width="stretch")
    conversations = store.list()
    if len(conversations) > 1:
        wanted = st.text_input(T("search_conversations"), key="conversation_search", icon=":material/search:",
                               placeholder=T("search_conversations"), label_visibility="collapsed")
        conversations = [c for c in conversations if wanted.strip().lower() in c.title.lower()]
        if wanted.strip() and not conversations:
            st.caption(T("no_conversation_found"))
    shown = conversations if S.get("show_all_conversations") else conversations[:CONVERSATIONS_SHOWN]
    heading = None
    for conversation in shown:
        day = day_label(conversation.updated, ctx.zone, ctx.lang)
        if day != heading:
            st.caption(day)
            heading = day
        is_current = conversation.id == current
        title = T("new_conversation") if conversation.title == DEFAULT_TITLE else conversation.title
        st.button(title, key=f"conv-{conversation.id}", on_click=select_conversation,
                  args=(conversation.id,), type="primary" if is_current else "tertiary",
                  help=local_time(conversation.updated, ctx.zone),
                  disabled=running and not is_current, width="stretch")
    if len(conversations) > CONVERSATIONS_SHOWN:
        st.checkbox(T("show_all"), key="show_all_conversations")
    if current and store.exists(current):
        manage_conversation(store, current, next((c.title for c in store.list() if c.id == current), ""), running)


def manage_conversation(store: Any, current: str, title: str, running: bool) -> None:
    with st.expander(T("manage_conversation"), icon=":material/edit:"):
        key = f"rename-{current}-{zlib.crc32(title.encode())}"  # a new title resets the field
        st.text_input(T("title"), value=title, key=key, max_chars=200)
        st.button(T("rename"), on_click=rename_conversation, args=(current, key), key=f"do-{key}")
        st.download_button(T("export_markdown"), data=partial(store.export_markdown, current, page_label),  # read on click
                           file_name=export_file_name(title, current), mime="text/markdown",
                           icon=":material/download:")
        st.caption(T("delete_warning"))
        st.button(T("delete_conversation"), on_click=delete_conversation, args=(current,),
                  key=f"delete-{current}", disabled=running, icon=":material/delete:")


def remembered_conversation() -> str | None:
    """The open conversation: this session's, else the one in the URL (so a reload reopens it)."""
    if CONVERSATION not in S:
        wanted = st.query_params.get("c")
        S[CONVERSATION] = wanted if wanted and ctx.workspace.conversations.exists(wanted) else None
    return S[CONVERSATION]


def remember_in_url(conversation_id: str | None) -> None:
    if conversation_id:
        st.query_params["c"] = conversation_id
    elif "c" in st.query_params:
        del st.query_params["c"]


# ---- answers ---------------------------------------------------------------------------------
def chat_collections() -> list[Any]:
    try:
        return ctx.workspace.chat_collections()
    except (AgentError, ValueError):
        return []


def show_source(source: Source, number: int, key: str) -> None:
    ocr = " · OCR" if source.get("ocr") else ""
    cited = f" :green-badge[{T('cited')}]" if source.get("cited") else ""
    st.html(f'<span id="{source_anchor(key, number)}"></span>')  # where the answer's [n] links jump
    st.markdown(f"**[{number}] {md_escape(str(source.get('file', '?')))}** · "
                f"{page_label(source, ctx.lang)}{ocr}{cited}")
    st.text(excerpt(source.get("text", "")))
    if st.toggle(T(preview_key(source)), key=f"page-{key}-{number}"):
        pdf = source_pdf(chat_collections(), source)
        if pdf is None:
            st.caption(T("page_unavailable"))
            return
        if is_image_source(source):  # an OCR'd picture: show the picture itself
            st.image(str(pdf), width="content")
            return
        if source.get("loc_kind", "page") != "page":  # DOCX/PPTX/MD/HTML/EPUB/text: the section, not a page image
            st.markdown(section_markdown(pdf, source).replace("\n", "  \n"))
            return
        try:
            st.image(page_png(str(pdf), Path(pdf).stat().st_mtime, int(source.get("page", 1)), source.get("text", "")),
                     width="content", caption=f"{source.get('file')} · {page_label(source, ctx.lang)}")
        except Exception as exc:  # noqa: BLE001 - a damaged stored PDF must not break the chat
            st.caption(ctx.md("page_render_failed", error=str(exc)))


def answer_footer(answer: Any, key: str) -> None:
    """Under an answer (stored turn or finished job): error, notes, sources, model, copy."""
    if answer.error:
        error = ctx.error(code=answer.error_code, params=answer.error_params, message=md_plain(answer.error))
        if answer.answer_text:
            st.warning(T("answer_incomplete", error=error), icon=":material/content_cut:")
        else:
            st.error(error, icon=":material/error:")
        if answer.error_code == "model_not_found":
            model = str(answer.error_params.get("model", settings.chat_model))
            st.button(T("download_model", model=model), icon=":material/download:", on_click=start_pull,
                      args=(ctx, model), key=f"pull-{key}")
    for note in answer.notes:
        st.warning(ctx.md(f"note_{note['code']}", **note["params"]), icon=":material/warning:")
    if answer.model == EMBEDDED_MODEL_NAME:  # said here too: the sidebar is hidden on a phone
        st.caption(T("demo_answer_note"))
    if answer.sources:
        with st.expander(T("sources_n", n=len(answer.sources)), icon=":material/menu_book:"):
            for number, source in enumerate(answer.sources, 1):
                show_source(source, source.get("number", number), key)
    with st.container(horizontal=True, vertical_alignment="center", gap="medium"):
        if answer.answer_text:
            copy_button(ctx, answer.answer_text, key)
        if answer.model:
            st.caption(md_literal(answer.model), width="content")


@dataclass(frozen=True)
class Shown:
    """A stored turn or a finished job's answer, as answer_footer reads both."""

    answer_text: str
    error: str
    error_code: str
    error_params: dict[str, Any]
    notes: list[Any]
    model: str
    sources: list[Source]

    @classmethod
    def of(cls, item: Any, text: str) -> Shown:
        return cls(text, item.error, item.error_code, item.error_params, item.notes, item.model, item.sources)


def show_turn(turn: Any, key: str) -> None:
    with st.chat_message("user"):
        st.markdown(turn.question)
    with st.chat_message("assistant"):
        if turn.answer:
            st.markdown(inert_images(link_citations(turn.answer, turn.sources, key, ctx.lang)))
        answer_footer(Shown.of(turn, turn.answer), key)
        if turn.incomplete:  # the broken turn is not replayed to the model, so asking again is clean
            st.button(T("ask_again"), key=f"again-{key}", icon=":material/refresh:",
                      on_click=S.__setitem__, args=(RETRY, turn.question))


def status_line(job: AnswerJob) -> str:
    """What the answer is waiting for, with a clock; empty once text streams (the text shows it)."""
    status = job.current_status
    if status is not None:
        what = status_text(status.code, status.params, ctx.lang, status.text)
    elif not job.text:
        what = T("thinking")
    else:
        return ""
    return T("waiting", status=what, seconds=int(job.elapsed))


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

            def show_status(j: AnswerJob) -> None:
                line = status_line(j)
                if line:
                    status.caption(line)
                else:
                    status.empty()

            def pieces() -> Any:
                for piece in job.follow(idle=show_status):
                    show_status(job)  # text arrived: the clock goes (a new status, e.g. searching, comes back)
                    yield piece

            st.write_stream(inert_stream(pieces()))
            while not job.done:  # stopped: the engine finishes its current model call, then stores the text
                status.caption(T("stopping_wait", seconds=int(job.elapsed)))
                job.wait(0.5)
            status.empty()
            st.rerun()  # the stored turn (and the sidebar list) now show it
        if input_disabled:
            st.rerun()
        answer = job.answer
        if answer.text:
            st.markdown(inert_images(link_citations(answer.text, answer.sources, "job", ctx.lang)))
        answer_footer(Shown.of(answer, answer.text), "job")


# ---- page --------------------------------------------------------------------------------------
job: AnswerJob | None = S.get(JOB)
running = job is not None and not job.done
prompt = st.chat_input(T("ask_placeholder"), disabled=running, submit_mode="disable", max_chars=8000)
prompt = prompt or S.pop(RETRY, None)

try:
    store = ctx.workspace.conversations
    current = remembered_conversation()
    if prompt and not running:
        current = current or store.create()
        S[CONVERSATION] = current
        turns_before = store.count_turns(current)
        job = AnswerJob(ctx.engine, prompt, current, turns_before).start()
        S[JOB] = job
        running = True
    elif prompt:
        st.toast(T("busy"))
    remember_in_url(current)

    with st.sidebar:
        model_picker()
        collection_picker()
        conversation_list(current, running)
        if S.get("chat_settings_error"):
            st.error(S.pop("chat_settings_error"))

    st.title(T("page_chat"))
    pulls_section(ctx)
    offer_collection(ctx)
    try:
        collections = ctx.workspace.chat_collections()
    except (AgentError, ValueError) as err:  # e.g. built with another embedding model: says how to fix
        show_error(err, lang=ctx.lang)
        collections = []
    if collections and not any(c.document_infos() for c in collections):
        st.info(T("no_documents"), icon=":material/description:")
        st.page_link("pages/documents.py", label=T("go_documents"), icon=":material/library_books:")

    shown = store.recent(current, S.get(f"{TURNS_SHOWN}-{current}", RECENT_TURNS)) if current else RecentTurns(0, [])
    if shown.first:  # a long conversation opens at its end: earlier turns on request
        st.button(T("load_earlier", n=shown.first), icon=":material/expand_less:", key=f"earlier-{current}",
                  on_click=S.__setitem__, args=(f"{TURNS_SHOWN}-{current}", len(shown.turns) + RECENT_TURNS))
    for index, turn in enumerate(shown.turns, shown.first):
        show_turn(turn, f"{current}-{index}")
    if job is not None and job.conversation_id == current:
        if job.done and shown.total > job.turns_before:
            S[JOB] = None  # stored: it is part of the history above
            if running:  # the chat box was drawn disabled while it ran: draw it enabled
                st.rerun()
        else:
            follow_job(job, input_disabled=running)
except AgentError as err:
    show_error(err, lang=ctx.lang)
