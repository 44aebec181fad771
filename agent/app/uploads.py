"""The Documents page's work: uploads (saved under `<data_dir>/uploads`, ingested by a
background job, then discarded) and re-index jobs."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Container, Mapping
from pathlib import Path

from agent._files import check_collection_name, safe_file_name
from agent.app.jobs import Job
from agent.config import Settings
from agent.errors import AgentError
from agent.ingest.pipeline import IngestResult, ReindexResults, ingest_file
from agent.workspace import Workspace

UPLOADS_DIR = "uploads"


def uploads_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / UPLOADS_DIR


def save_upload(settings: Settings, data: bytes) -> Path:
    """Write uploaded bytes to a new temp file under `<data_dir>/uploads` (named by tempfile,
    never by the upload, so no uploaded name can escape the data directory)."""
    folder = uploads_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="upload-", suffix=".pdf", dir=folder)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return Path(tmp)


def clean_stale_uploads(settings: Settings, max_age: float = 24 * 3600) -> int:
    """Delete uploads left behind by a session that was killed mid-ingestion.

    Live uploads are deleted as soon as they are ingested (or kept only while a password
    is asked for), so a day-old one belongs to nobody. Returns how many were removed."""
    folder = uploads_dir(settings)
    cutoff = time.time() - max_age
    removed = 0
    for path in folder.glob("upload-*.pdf") if folder.exists() else []:
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            pass
    return removed


def discard_upload(path: Path | str | None) -> None:
    if path:
        Path(path).unlink(missing_ok=True)


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
