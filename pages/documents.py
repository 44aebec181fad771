"""Documents page: collections, PDF upload with per-file progress, document list, re-index.

Uploads are written to a temp file under `<data_dir>/uploads` and ingested with the
file's cleaned name as its display name; an encrypted PDF keeps its upload until the
user gives the password (or clears the list).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from agent._files import safe_file_name
from agent.app.settings_edit import save_changes
from agent.app.uploads import (
    STAGE_SPANS,
    StageProgress,
    clean_stale_uploads,
    create_collection,
    discard_upload,
    ingest_upload,
    save_upload,
)
from agent.app.i18n import local_time, md_plain
from agent.errors import AgentError
from agent.ingest.pipeline import reindex, remove_document
from pages import OFFER_KEY, offer_collection, page_setup, show_error

ctx = page_setup()
T = ctx.t
S = st.session_state
settings = ctx.settings
workspace = ctx.workspace

if "uploads_cleaned" not in S:  # once per browser session
    S["uploads_cleaned"] = clean_stale_uploads(settings)

RESULTS = "ingest_results"  # file_id -> {"name", "result", "path" (kept for a password retry)}
DELETE_POPOVER = "delete_collection_popover"
DELETE_DOCS_POPOVER = "delete_documents_popover"
S.setdefault(RESULTS, {})
S.setdefault("uploader_gen", 0)


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
        S["doc_message"] = ("success", ctx.md("collection_created", name=S["doc_collection"]))
    except (AgentError, ValueError) as err:
        S["doc_message"] = ("error", ctx.error(err))


def on_delete_collection(name: str) -> None:
    try:
        workspace.delete_collection(name)
        if name in settings.collections and "collections" not in ctx.pinned:
            remaining = [c for c in settings.collections if c != name] or ["default"]
            save_changes(settings, collections=remaining)
        S["doc_message"] = ("success", ctx.md("collection_deleted", name=name))
    except (AgentError, ValueError, OSError) as err:
        S["doc_message"] = ("error", ctx.error(err))
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


def stage_label(stage: str) -> str:
    """An ingestion stage in the UI language (unknown stages as they are)."""
    return T(f"stage_{stage}") if stage in STAGE_SPANS else stage


def ingest_one(collection: str, name: str, path: Any, password: str | None = None) -> Any:
    """Ingest a saved upload, showing its stages on a progress bar; returns the IngestResult."""
    box = st.container(border=True)
    box.text(name)
    bar = box.progress(0.0, text=T("stage_queued"))

    def show(fraction: float, stage: str, done: int, total: int) -> None:
        bar.progress(fraction, text=f"{stage_label(stage)} {done}/{total}" if total > 1 else stage_label(stage))

    result = ingest_upload(workspace, collection, path, name, password=password, progress=StageProgress(show))
    bar.progress(1.0, text=T("stage_done") if result.ok else T("stage_failed"))
    return result


def process_uploads(collection: str, files: list[Any]) -> bool:
    """Ingest the uploads not seen yet; True if any was processed."""
    processed = False
    for upload in files:
        if upload.file_id in S[RESULTS]:
            continue
        name = safe_file_name(upload.name)
        path = save_upload(settings, upload.getvalue(), name)
        keep = False
        processed = True
        try:
            result = ingest_one(collection, name, path)
            keep = result.needs_password
            S[RESULTS][upload.file_id] = {"name": name, "result": result, "path": str(path) if keep else None,
                                          "collection": collection}
            if result.ok and collection not in settings.collections:
                S[OFFER_KEY] = collection
        finally:
            if not keep:
                discard_upload(path)
    if processed:
        workspace.warm_up()  # the next question finds the new keyword index ready
    return processed


def retry_with_password(file_id: str) -> None:
    entry = S[RESULTS][file_id]
    password = S.get(f"pw-{file_id}", "")
    result = ingest_one(entry["collection"], entry["name"], entry["path"], password=password)
    entry["result"] = result
    if result.ok:
        discard_upload(entry["path"])
        entry["path"] = None
        if entry["collection"] not in settings.collections:
            S[OFFER_KEY] = entry["collection"]
    else:
        entry["error"] = T("wrong_password") if result.needs_password else ""


def clear_results() -> None:
    for entry in S[RESULTS].values():
        discard_upload(entry.get("path"))
    S[RESULTS] = {}
    S["uploader_gen"] += 1


def result_line(result: Any) -> str:
    """One ingested file in plain words (Markdown): "a.pdf: added, 1 page, 3 chunks, 0.4 s"."""
    if not result.ok:
        reason = ctx.error(code=getattr(result, "code", ""), params=getattr(result, "params", {}),
                           message=md_plain(result.message))
        return ctx.md("result_failed", file=result.file) + " " + reason
    ocr = ctx.count("result_ocr", len(result.ocr_pages)) if result.ocr_pages else ""
    note = f" ({md_plain(result.message)})" if result.message and result.status != "unchanged" else ""
    return ctx.md(f"result_{result.status}", file=result.file, pages=ctx.count("n_pages", result.pages),
                  chunks=ctx.count("n_chunks", result.chunks), ocr=ocr, seconds=f"{result.seconds:.1f}") + note


def show_results() -> None:
    for file_id, entry in list(S[RESULTS].items()):
        result = entry["result"]
        if result.ok:
            st.success(result_line(result), icon=":material/check_circle:")
        elif entry.get("path"):
            with st.container(border=True):
                st.warning(ctx.md("needs_password", file=entry["name"]), icon=":material/lock:")
                if entry.get("error"):
                    st.error(entry["error"])
                st.text_input(T("password"), type="password", key=f"pw-{file_id}")
                if st.button(T("retry_password"), key=f"retry-{file_id}"):
                    retry_with_password(file_id)
                    st.rerun()
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
        reindex_button(name, primary=True)
        return
    st.subheader(ctx.md("documents_in", name=name, n=len(infos)))
    if not infos:
        st.caption(T("no_documents_here"))
        return
    zone = ctx.zone
    rows = [{T("col_file"): i.file, T("col_pages"): i.pages, T("col_chunks"): i.chunks,
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
    reindex_button(name)


def on_delete_documents(collection: Any, name: str, chosen: list[str]) -> None:
    """Confirmed in the popover: remove the documents, then close it."""
    removed, failed = [], []
    for doc_id in chosen:
        try:
            removed.append(remove_document(collection, doc_id).file)
        except AgentError as err:
            failed.append(ctx.error(err))
    S["doc_message"] = ("error", "  \n".join(failed)) if failed else \
        ("success", ctx.md("documents_deleted", files=", ".join(removed)))
    S.pop(f"del-{name}", None)
    S[DELETE_DOCS_POPOVER] = False


def reindex_button(name: str, primary: bool = False) -> None:
    st.caption(T("reindex_help"))
    if not st.button(T("reindex"), type="primary" if primary else "secondary", icon=":material/autorenew:",
                     key=f"reindex-{name}"):
        return
    with st.status(ctx.md("reindexing", name=name), expanded=True) as status:
        bar = st.progress(0.0)
        progress = StageProgress(lambda f, stage, done, total: bar.progress(f, text=f"{stage_label(stage)} {done}/{total}"))
        try:
            results = reindex(workspace.rebuildable(name), workspace.embeddings, settings, progress=progress)
        except AgentError as err:
            status.update(label=T("reindex_failed"), state="error")
            show_error(err, lang=ctx.lang)
            return
        for result in results:
            (st.caption if result.ok else st.error)(result_line(result))
        ok = sum(r.ok for r in results)
        status.update(label=ctx.md("reindexed", ok=ok, n=len(results), name=name),
                      state="complete" if ok == len(results) else "error")


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
    if S.get("doc_message"):
        kind, text = S.pop("doc_message")
        (st.success if kind == "success" else st.error)(text)
    limit = upload_limit_mb()
    uploader_texts(limit)
    files = st.file_uploader(T("upload_label"), type=["pdf"], accept_multiple_files=True,
                             key=f"uploader-{S['uploader_gen']}", max_upload_size=limit,
                             help=ctx.md("upload_help", mb=limit, name=name))
    if settings.max_upload_mb > limit:
        st.caption(T("upload_cap_note", mb=limit))
    if files and process_uploads(name, files):
        st.rerun()  # the progress boxes give way to the result list
    show_results()
    offer_collection(ctx)
    document_table(name)
except AgentError as err:
    show_error(err, lang=ctx.lang)
