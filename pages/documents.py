"""Documents page: collections, PDF upload, document list, re-index.

Ingestion and re-index run as background jobs (agent/app/jobs.py) kept in the process's
job registry, so a click, a page change or a reload never interrupts them: the page
shows their progress whenever it is open and reports each result once. Uploads are
written to a temp file under `<data_dir>/uploads`; an encrypted PDF keeps its upload
until the user gives the password (or clears the list).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from agent._files import safe_file_name
from agent.app.i18n import local_time, md_plain
from agent.app.jobs import STAGE_SPANS, Job
from agent.app.settings_edit import save_changes
from agent.app.uploads import (
    clean_stale_uploads,
    create_collection,
    discard_upload,
    document_type,
    ingest_job,
    reindex_job,
    save_upload,
)
from agent.errors import AgentError
from agent.ingest.formats import UPLOAD_EXTENSIONS
from agent.ingest.pipeline import IngestResult, remove_document
from pages import OFFER_KEY, offer_collection, page_setup, session_id, show_error

ctx = page_setup()
T = ctx.t
S = st.session_state
settings = ctx.settings
workspace = ctx.workspace
jobs = ctx.jobs
ME = session_id()
POLL_SECONDS = 0.5  # how often the job panel refreshes while a job runs

if "uploads_cleaned" not in S:  # once per browser session
    S["uploads_cleaned"] = clean_stale_uploads(settings)

RESULTS = "ingest_results"  # job id -> {"name", "result", "path" (kept for a password retry), "collection"}
STARTED = "ingest_started"  # job id -> {"name", "path", "collection", "retry"}: what its result needs
UPLOADED = "uploaded_files"  # uploader file ids already started
REINDEXED = "reindex_reports"  # collection -> {"results"} or {"error"} or {"stopped"}
MESSAGES = "doc_messages"  # [(kind, text)] shown once, on the next run
DELETE_POPOVER = "delete_collection_popover"
DELETE_DOCS_POPOVER = "delete_documents_popover"
for state_key in (RESULTS, STARTED, REINDEXED):
    S.setdefault(state_key, {})
S.setdefault(UPLOADED, set())
S.setdefault(MESSAGES, [])
S.setdefault("uploader_gen", 0)


def say(kind: str, text: str) -> None:
    S[MESSAGES].append((kind, text))


# ---- collections ---------------------------------------------------------------------------
def current_collection() -> str:
    names = workspace.collection_names()
    if S.get("doc_collection") not in names:
        S["doc_collection"] = settings.collections[0] if settings.collections[0] in names else names[0]
    return S["doc_collection"]


def on_create() -> None:
    try:
        S["doc_collection"] = create_collection(workspace, S.get("new_collection", ""))
        S["new_collection"] = ""
        say("success", ctx.md("collection_created", name=S["doc_collection"]))
    except AgentError as err:
        say("error", ctx.error(err))


def on_delete_collection(name: str) -> None:
    try:
        workspace.delete_collection(name)
        if name in settings.collections and "collections" not in ctx.pinned:
            remaining = [c for c in settings.collections if c != name] or ["default"]
            save_changes(settings, collections=remaining)
        say("success", ctx.md("collection_deleted", name=name))
    except (AgentError, OSError) as err:
        say("error", ctx.error(err))
    S["doc_collection"] = None
    S[DELETE_POPOVER] = False  # closed: it must not offer the next collection in the same spot


def collection_bar() -> str:
    name = current_collection()
    left, middle, right = st.columns([4, 2, 2], vertical_alignment="bottom")
    with left:
        st.selectbox(T("collection"), workspace.collection_names(), key="doc_collection",
                     help=T("collection_help", names=", ".join(settings.collections)))
    with middle, st.popover(T("new_collection"), icon=":material/add:", width="stretch"):
        st.text_input(T("collection_name"), key="new_collection", placeholder=T("new_collection_placeholder"))
        st.button(T("create"), on_click=on_create, key="create_collection_btn")
    with right, st.popover(T("delete_collection"), icon=":material/delete:", width="stretch", key=DELETE_POPOVER,
                           on_change="rerun"):
        st.warning(ctx.md("delete_collection_warning", name=name))
        st.button(T("delete_collection_confirm", name=name), on_click=on_delete_collection, args=(name,),
                  type="primary", key="delete_collection_btn")
    return name


# ---- upload and ingestion ------------------------------------------------------------------------
def upload_limit_mb() -> int:
    server_cap = int(st.get_option("server.maxUploadSize") or settings.max_upload_mb)
    return max(1, min(settings.max_upload_mb, server_cap))


def start_ingest(collection: str, name: str, path: Path, password: str | None = None) -> None:
    job = jobs.start(ingest_job(workspace, collection, path, name, password=password, owner=ME))
    S[STARTED][job.id] = {"name": name, "path": str(path), "collection": collection, "retry": password is not None}


def start_uploads(collection: str, files: list[Any]) -> None:
    """Start a job for every upload not seen yet (the uploader keeps its files across runs)."""
    for upload in files:
        if upload.file_id not in S[UPLOADED]:
            S[UPLOADED].add(upload.file_id)
            name = safe_file_name(upload.name)
            start_ingest(collection, name, save_upload(settings, upload.getvalue(), name))


def retry_with_password(job_id: str) -> None:
    entry = S[RESULTS].pop(job_id)
    start_ingest(entry["collection"], entry["name"], Path(entry["path"]), password=S.get(f"pw-{job_id}", ""))


def start_reindex(name: str, **options: Any) -> None:
    S[REINDEXED].pop(name, None)
    jobs.start(reindex_job(workspace, name, owner=ME, **options))


# ---- jobs: progress while they run, each result reported once ------------------------------------
def stage_label(stage: str) -> str:
    """An ingestion stage in the UI language (unknown stages as they are)."""
    return T(f"stage_{stage}") if stage in STAGE_SPANS else stage


def job_box(job: Job[Any]) -> None:
    progress = job.progress
    with st.container(border=True):
        title = T("reindexing", name=job.label) if job.kind == "reindex" else job.label
        st.text(title if job.owner == ME else f"{title} {T('job_other_session')}")
        text = f"{stage_label(progress.stage)} {progress.done}/{progress.total}" if progress.total > 1 \
            else stage_label(progress.stage) if progress.stage else T("stage_queued")
        if progress.items:
            text = f"{progress.item} ({progress.item_index + 1}/{progress.items}) · {text}"
        st.progress(progress.fraction, text=text)
        if job.owner == ME:
            st.button(T("stopping") if job.stopping else T("stop"), key=f"stop-{job.id}", on_click=job.stop,
                      disabled=job.stopping, icon=":material/stop_circle:")


def record(job: Job[Any]) -> None:
    """Keep a finished job's outcome in this session's result lists."""
    if job.kind == "reindex":
        S[REINDEXED][job.scope] = {"stopped": True} if job.stopped else \
            {"error": job.error} if job.error else {"results": job.result}
        return
    started = S[STARTED].pop(job.id, {"name": job.label, "path": None, "collection": job.scope, "retry": False})
    error = job.error
    result = job.result or IngestResult(job.label, "failed", message=error.message if error else T("job_stopped"),
                                        code=error.code if error else "", params=error.params if error else {})
    keep = result.needs_password and not job.stopped
    S[RESULTS][job.id] = {**started, "result": result, "path": started["path"] if keep else None,
                          "error": T("wrong_password") if keep and started["retry"] else ""}
    if result.ok and started["collection"] not in settings.collections:
        S[OFFER_KEY] = started["collection"]


def jobs_panel(collection: str) -> None:
    """This session's jobs and anyone's on this collection, refreshed while one runs; when one
    ends, its result is recorded and the whole page reruns (the document list changed)."""
    def visible() -> list[Job[Any]]:
        others = [j for j in jobs.jobs(scope=collection, running=True) if j.owner != ME]
        return [j for j in jobs.jobs(owner=ME) if j.kind in ("ingest", "reindex")] + others

    live = any(not job.done for job in visible())

    @st.fragment(run_every=POLL_SECONDS if live else None)
    def panel() -> None:
        shown = visible()
        for job in shown:
            if not job.done:
                job_box(job)
        claimed = [job for job in shown if job.owner == ME and job.claim()]
        for job in claimed:
            record(job)
        if claimed or (live and all(job.done for job in shown)):
            st.rerun()

    panel()


def clear_results() -> None:
    for entry in S[RESULTS].values():
        discard_upload(entry.get("path"))
    S[RESULTS] = {}
    S["uploader_gen"] += 1


def reason(result: IngestResult) -> str:
    """Why a file failed, in the UI language when its error has a code."""
    return ctx.error(code=result.code, params=result.params, message=md_plain(result.message))


def result_line(result: IngestResult, reindexing: bool = False) -> str:
    """One file in plain words (Markdown): "a.pdf: added, 1 page, 3 chunks, 0.4 s"."""
    if reindexing and result.status in ("kept", "dropped", "failed", "unchanged"):
        key = {"kept": "result_kept", "dropped": "result_dropped", "failed": "result_not_reindexed",
               "unchanged": "result_untouched"}[result.status]
        return ctx.md(key, file=result.file) + ("" if result.status == "unchanged" else " " + reason(result))
    if not result.ok:
        return ctx.md("result_failed", file=result.file) + " " + reason(result)
    ocr = ctx.count("result_ocr", len(result.ocr_pages)) if result.ocr_pages else ""
    note = f" ({md_plain(result.message)})" if result.message and result.status != "unchanged" else ""
    key = "result_reindexed" if reindexing else f"result_{result.status}"
    return ctx.md(key, file=result.file, pages=ctx.count("n_pages", result.pages),
                  chunks=ctx.count("n_chunks", result.chunks), ocr=ocr, seconds=f"{result.seconds:.1f}") + note


def show_results() -> None:
    for job_id, entry in list(S[RESULTS].items()):
        result = entry["result"]
        if result.ok:
            st.success(result_line(result), icon=":material/check_circle:")
        elif entry.get("path"):
            with st.container(border=True):
                st.warning(ctx.md("needs_password", file=entry["name"]), icon=":material/lock:")
                if entry.get("error"):
                    st.error(entry["error"])
                st.text_input(T("password"), type="password", key=f"pw-{job_id}")
                st.button(T("retry_password"), key=f"retry-{job_id}", on_click=retry_with_password, args=(job_id,))
        else:
            st.error(result_line(result), icon=":material/cancel:")
    if S[RESULTS]:
        st.button(T("clear_results"), on_click=clear_results, type="tertiary", icon=":material/clear_all:")


# ---- document list ----------------------------------------------------------------------------
def document_table(name: str) -> None:
    try:
        collection = workspace.collection(name)
        infos = collection.document_infos()
    except AgentError as err:
        show_error(err, lang=ctx.lang)
        reindex_section(name, primary=True)
        return
    st.subheader(ctx.md("documents_in", name=name, n=len(infos)))
    if not infos:
        st.caption(T("no_documents_here"))
        reindex_report(name)
        return
    zone = ctx.zone
    rows = [{T("col_file"): i.file, T("col_type"): document_type(i, ctx.lang), T("col_pages"): i.pages, T("col_chunks"): i.chunks,
             T("col_ocr"): len(i.ocr_pages), T("col_size"): round(i.size / 1e6, 2),
             T("col_added"): local_time(i.added, zone), T("col_id"): i.doc_id[:12]} for i in infos]
    st.space(24)  # room for the table's toolbar, which would otherwise cover the heading on a phone
    st.dataframe(rows, hide_index=True, width="stretch")
    labels = {i.doc_id: f"{i.file} ({i.doc_id[:8]})" for i in infos}
    left, right = st.columns([4, 2], vertical_alignment="bottom")
    with left:
        chosen = st.multiselect(T("select_documents"), list(labels), format_func=labels.get, key=f"del-{name}",
                                placeholder=T("choose"))
    with right, st.popover(T("delete_documents"), disabled=not chosen, icon=":material/delete:",
                           key=DELETE_DOCS_POPOVER, on_change="rerun"):
        if chosen:
            st.warning(ctx.md("delete_documents_warning", files=", ".join(labels[d] for d in chosen)))
        st.button(T("delete_documents_confirm", n=len(chosen)), type="primary", key="delete_documents_btn",
                  on_click=on_delete_documents, args=(collection, name, chosen))
    reindex_section(name)


def on_delete_documents(collection: Any, name: str, chosen: list[str]) -> None:
    """Confirmed in the popover: remove the documents, then close it. Every outcome is kept for
    the next run to show (drawn now, a rerun would wipe it)."""
    removed = []
    for doc_id in chosen:
        try:
            removed.append(remove_document(collection, doc_id).file)
        except AgentError as err:
            say("error", ctx.error(err))
    if removed:
        say("success", ctx.md("documents_deleted", files=", ".join(removed)))
    S.pop(f"del-{name}", None)
    S[DELETE_DOCS_POPOVER] = False


def reindex_section(name: str, primary: bool = False) -> None:
    st.caption(T("reindex_help"))
    running = bool(jobs.jobs(kind="reindex", scope=name, running=True))
    st.button(T("reindex"), type="primary" if primary else "secondary", icon=":material/autorenew:",
              key=f"reindex-{name}", disabled=running, on_click=start_reindex, args=(name,),
              help=ctx.md("reindex_running", name=name) if running else None)
    reindex_report(name)


def reindex_report(name: str) -> None:
    """The last re-index of this collection: a line per document with its time, a password
    field for each encrypted one, and a way out when nothing could be committed."""
    report = S[REINDEXED].get(name)
    if not report:
        return
    with st.container(border=True):
        if report.get("stopped"):
            st.error(ctx.md("reindex_stopped", name=name))
        elif report.get("error"):
            show_error(report["error"], lang=ctx.lang)
        else:
            reindex_lines(name, report["results"])
        st.button(T("dismiss"), key=f"dismiss-{name}", type="tertiary", on_click=S[REINDEXED].pop, args=(name, None))


def reindex_lines(name: str, results: Any) -> None:
    failed = [r for r in results if r.status == "failed"]
    if not results.committed:
        st.error(ctx.md("reindex_nothing_committed", name=name, n=len(failed)), icon=":material/error:")
    ok = sum(r.ok for r in results)
    (st.success if ok == len(results) else st.warning)(ctx.md("reindexed", ok=ok, n=len(results), name=name))
    for result in results:
        (st.caption if result.ok else st.warning)(result_line(result, reindexing=True))
        if result.needs_password:
            key = f"reindex-pw-{name}-{result.doc_id}"
            st.text_input(ctx.md("reindex_needs_password", file=result.file), type="password", key=key)
            st.button(T("reindex_with_password", file=result.file), key=f"do-{key}",
                      on_click=lambda r=result, k=key: start_reindex(
                          name, passwords={r.doc_id: S.get(k, "")}, only={r.doc_id} if results.committed else None))
    if failed:
        st.button(T("reindex_drop_failed"), key=f"drop-{name}", on_click=start_reindex, args=(name,),
                  kwargs={"drop_failed": True})


# ---- page --------------------------------------------------------------------------------------
def uploader_texts(limit: int) -> None:
    """The uploader's own texts ("Upload", "200MB per file • PDF") cannot be set through its API:
    they are hidden by CSS and drawn again, translated, as CSS generated content."""
    button, note = css_string(T("upload_button")), css_string(T("upload_note", mb=limit))
    st.html(f"""<style>
[data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"] p {{ display: none; }}
[data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"]::after {{ content: {button}; }}
[data-testid="stFileUploaderDropzoneInstructions"] span {{ display: none; }}
[data-testid="stFileUploaderDropzoneInstructions"] > div::after {{ content: {note}; font-size: 0.875rem; opacity: 0.7; }}
</style>""")


def css_string(text: str) -> str:
    """`text` as a CSS string literal (every non-alphanumeric character escaped)."""
    return '"' + "".join(c if c.isalnum() or c == " " else f"\\{ord(c):x} " for c in text) + '"'


st.title(T("page_documents"))
try:
    name = collection_bar()
    messages, S[MESSAGES] = S[MESSAGES], []
    for kind, text in messages:
        (st.success if kind == "success" else st.error)(text)
    limit = upload_limit_mb()
    uploader_texts(limit)
    files = st.file_uploader(T("upload_label_formats"), type=list(UPLOAD_EXTENSIONS), accept_multiple_files=True,
                             key=f"uploader-{S['uploader_gen']}", max_upload_size=limit,
                             help=ctx.md("upload_help", mb=limit, name=name))
    if settings.max_upload_mb > limit:
        st.caption(T("upload_cap_note", mb=limit))
    if files:
        start_uploads(name, files)
    jobs_panel(name)
    show_results()
    offer_collection(ctx)
    document_table(name)
except AgentError as err:
    show_error(err, lang=ctx.lang)
