"""The Documents page's work: uploads (saved under `<data_dir>/uploads`, ingested by a
background job, then discarded) and re-index jobs."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Container, Mapping
from pathlib import Path

from agent._files import check_collection_name, safe_file_name
from agent.app.i18n import t
from agent.app.jobs import Job
from agent.config import Settings
from agent.errors import AgentError
from agent.ingest.formats import type_label
from agent.ingest.pipeline import IngestResult, ReindexResults, ingest_file
from agent.search.store import DocumentInfo
from agent.workspace import Workspace

UPLOADS_DIR = "uploads"
_TYPE_WORDS = {"Text": "type_text", "Image": "type_image"}  # type labels that are words, not format names


def document_type(info: DocumentInfo, lang: str) -> str:
    """The document table's Type: the detected format's name ("DOCX", "Markdown"), words in the UI's language."""
    label = type_label(info.file, info.kind)
    return t(_TYPE_WORDS[label], lang) if label in _TYPE_WORDS else label


def uploads_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / UPLOADS_DIR


def save_upload(settings: Settings, data: bytes, name: str = "upload.pdf") -> Path:
    """Write uploaded bytes to `<data_dir>/uploads/upload-XXXX/<name>`: a fresh temp folder per
    upload, and the cleaned file name inside it (it cannot escape the folder), so every
    message about the file names the user's file, not a temp name."""
    folder = uploads_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="upload-", dir=folder)) / safe_file_name(name, default="upload.pdf")
    path.write_bytes(data)
    return path


def clean_stale_uploads(settings: Settings, max_age: float = 24 * 3600) -> int:
    """Delete uploads left behind by a session that was killed mid-ingestion.

    Live uploads are deleted as soon as they are ingested (or kept only while a password
    is asked for), so a day-old one belongs to nobody. Returns how many were removed."""
    folder = uploads_dir(settings)
    cutoff = time.time() - max_age
    removed = 0
    for path in folder.glob("upload-*") if folder.exists() else []:
        try:
            if _last_written(path) < cutoff:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                removed += 1
        except OSError:
            pass
    return removed


def _last_written(path: Path) -> float:
    """When an upload (a temp folder holding the file, or an older bare file) was last written."""
    files = list(path.iterdir()) if path.is_dir() else []
    return max((f.stat().st_mtime for f in files), default=path.stat().st_mtime)


def discard_upload(path: Path | str | None) -> None:
    """Delete a saved upload and its temp folder."""
    if not path:
        return
    path = Path(path)
    path.unlink(missing_ok=True)
    if path.parent.name.startswith("upload-"):
        shutil.rmtree(path.parent, ignore_errors=True)


def ingest_upload(workspace: Workspace, collection_name: str, path: Path, display_name: str, *,
                  password: str | None = None, progress: Callable[[str, int, int], None] | None = None) -> IngestResult:
    """Ingest one saved upload into a collection (IngestResult; never raises for a bad PDF)."""
    name = safe_file_name(display_name)
    try:
        collection = workspace.collection(collection_name)
    except (AgentError, ValueError) as err:
        return IngestResult(name, "failed", message=str(err))
    return ingest_file(path, collection, workspace.embeddings, workspace.settings, password=password or None,
                       display_name=name, progress=progress)


def ingest_job(workspace: Workspace, collection_name: str, path: Path, display_name: str, *,
               password: str | None = None, owner: str = "") -> Job[IngestResult]:
    """A job (not started) that ingests a saved upload, then deletes it unless a password is
    needed (the upload waits for the retry). Stopped, it deletes the upload and adds nothing."""
    name = safe_file_name(display_name)

    def work(job: Job[IngestResult]) -> IngestResult:
        keep = False
        try:
            result = ingest_upload(workspace, collection_name, path, name, password=password, progress=job.report)
            keep = result.needs_password
            if result.status in ("added", "replaced"):
                workspace.warm_up()  # the next question finds the new keyword index ready
            return result
        finally:
            if not keep:
                discard_upload(path)

    return Job(work, kind="ingest", label=name, scope=collection_name, owner=owner)


def reindex_job(workspace: Workspace, collection_name: str, *, owner: str = "",
                passwords: Mapping[str, str] | None = None, only: Container[str] | None = None,
                drop_failed: bool = False) -> Job[ReindexResults]:
    """A job (not started) that re-indexes a collection (see `Workspace.reindex`)."""
    def work(job: Job[ReindexResults]) -> ReindexResults:
        return workspace.reindex(collection_name, progress=job.report, on_document=job.begin_item,
                                 passwords=passwords, only=only, drop_failed=drop_failed)

    return Job(work, kind="reindex", label=collection_name, scope=collection_name, owner=owner)


def create_collection(workspace: Workspace, name: str) -> str:
    """Create an empty collection (raises InvalidNameError for an invalid name)."""
    name = check_collection_name(name)
    collection = workspace.collection(name)
    collection.path.mkdir(parents=True, exist_ok=True)
    return name
