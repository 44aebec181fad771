"""Uploads: saved under `<data_dir>/uploads`, ingested with a progress bar, then discarded."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent._files import check_collection_name, safe_file_name
from agent.config import Settings
from agent.errors import AgentError

UPLOADS_DIR = "uploads"


#: share of the progress bar for each ingestion stage (parse, OCR, embed, index).
STAGE_SPANS: dict[str, tuple[float, float]] = {
    "parse": (0.0, 0.3), "ocr": (0.3, 0.6), "embed": (0.6, 0.95), "index": (0.95, 1.0)}


def stage_fraction(stage: str, done: int, total: int) -> float:
    """Overall progress (0..1) of one file from the ingest progress callback."""
    start, end = STAGE_SPANS.get(stage, (0.0, 0.95))
    part = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
    return round(start + (end - start) * part, 4)


class StageProgress:
    """Progress callback for `ingest_file` that reports to `show(fraction, stage, done, total)`.

    Updates are throttled (a 3000-page PDF reports every page) except stage changes and ends.
    """

    def __init__(self, show: Callable[[float, str, int, int], None], interval: float = 0.1) -> None:
        self.show = show
        self.interval = interval
        self.stages: list[str] = []
        self._last = 0.0
        self._fraction = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        new_stage = not self.stages or self.stages[-1] != stage
        if new_stage:
            self.stages.append(stage)
        if not (new_stage or done >= total or now - self._last >= self.interval):
            return
        self._last = now
        self._fraction = max(self._fraction, stage_fraction(stage, done, total))  # never goes back
        self.show(self._fraction, stage, done, total)


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


def ingest_upload(workspace: Any, collection_name: str, path: Path, display_name: str, *,
                  password: str | None = None, progress: Callable[[str, int, int], None] | None = None) -> Any:
    """Ingest one saved upload into a collection (IngestResult; never raises for a bad PDF)."""
    from agent.ingest.pipeline import IngestResult, ingest_file

    name = safe_file_name(display_name)
    try:
        collection = workspace.collection(collection_name)
    except (AgentError, ValueError) as err:
        return IngestResult(name, "failed", message=str(err))
    return ingest_file(path, collection, workspace.embeddings, workspace.settings, password=password or None,
                       display_name=name, progress=progress)


def create_collection(workspace: Any, name: str) -> str:
    """Create an empty collection (raises ValueError for an invalid name)."""
    name = check_collection_name(name)
    collection = workspace.collection(name)
    collection.path.mkdir(parents=True, exist_ok=True)
    return name
