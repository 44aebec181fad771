"""UI-independent helpers for the web app (no Streamlit import here).

The Streamlit pages stay thin: they lay out widgets and call these functions, which
are plain Python and can be tested without a browser.

- `AnswerJob`: one streamed answer running in a worker thread with a stop event. The
  script thread of a Streamlit run can be interrupted at any moment (a click anywhere
  reruns the script), so the answer must not live in it: the job keeps streaming, the
  page re-attaches to it on the next run, and `stop()` lets `ChatEngine.stream` end the
  answer cleanly (stored, marked incomplete "Stopped by the user").
- settings: `save_changes` / `reset_to_defaults` write only the settings file's own
  values, never the ones pinned by environment variables.
- uploads: `save_upload` writes an uploaded PDF under `<data_dir>/uploads`,
  `ingest_upload` ingests it with a `StageProgress` for the progress bar.
- sources: `source_pdf` and `render_page_png` show the cited page as an image.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.chain import Answer, ChatEngine, Done, Status, Token
from agent.config import ENV_VARS, Settings, env_overrides, load_settings, reset_settings, save_settings, update_settings
from agent.errors import AgentError, SettingsError
from agent.names import check_collection_name, safe_file_name

UPLOADS_DIR = "uploads"
PAGE_IMAGE_WIDTH = 900


# ---- language -----------------------------------------------------------------------------
def resolve_language(preference: str, locale: str | None = None) -> str:
    """"zh" or "en": the preference, or for "auto" the browser's locale (English if unknown)."""
    if preference in ("zh", "en"):
        return preference
    return "zh" if (locale or "").lower().startswith("zh") else "en"


# ---- settings -----------------------------------------------------------------------------
def pinned_fields(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Field -> name of the environment variable that pins it (those fields are read-only)."""
    return {field: ENV_VARS[field] for field in env_overrides(environ)}


def file_settings(settings: Settings) -> Settings:
    """The settings as stored in the file (defaults + settings.json), without the environment."""
    return load_settings(settings.data_dir, environ={})


def save_changes(settings: Settings, environ: dict[str, str] | None = None, **changes: Any) -> Settings:
    """Validate `changes`, write them to settings.json and return the new effective settings.

    Raises SettingsError (nothing written) when a value is invalid or pinned by the
    environment. Values pinned by environment variables are never copied into the file.
    """
    pinned = pinned_fields(environ)
    locked = sorted(set(changes) & set(pinned))
    if locked:
        raise SettingsError(f"{', '.join(locked)} is set by the environment variable "
                            f"{', '.join(pinned[f] for f in locked)}.",
                            "Unset that variable to change it here; nothing was saved.")
    update_settings(settings, **changes)  # the effective result must be valid too
    stored = update_settings(file_settings(settings), **changes)
    save_settings(stored)
    return load_settings(settings.data_dir, environ=environ)


def reset_to_defaults(settings: Settings, environ: dict[str, str] | None = None) -> Settings:
    """Forget every stored value (settings.json back to defaults); pinned values stay pinned."""
    save_settings(reset_settings(file_settings(settings)))
    return load_settings(settings.data_dir, environ=environ)


# ---- Ollama status ------------------------------------------------------------------------
@dataclass(frozen=True)
class OllamaStatus:
    reachable: bool
    host: str
    version: str = ""
    message: str = ""
    fix: str = ""


def ollama_status(settings: Settings) -> OllamaStatus:
    """One quick probe of the server (no retries), for the sidebar status line."""
    from agent.llm import server_version

    quick = settings.model_copy(update={"connect_retries": 1})
    try:
        return OllamaStatus(True, settings.ollama_host, version=server_version(quick))
    except AgentError as err:
        return OllamaStatus(False, settings.ollama_host, message=err.message, fix=err.fix)


def chat_model_names(models: list[Any]) -> list[str]:
    """Names of the models that can chat (embedding-only models left out)."""
    return [m.name for m in models if not m.capabilities or "completion" in m.capabilities]


# ---- chat ---------------------------------------------------------------------------------
class AnswerJob:
    """One answer streaming in a worker thread; the UI follows it and may stop it."""

    def __init__(self, engine: ChatEngine, question: str, conversation_id: str, turns_before: int = 0) -> None:
        self.engine = engine
        self.question = question
        self.conversation_id = conversation_id
        self.turns_before = turns_before  # stored turns before this one: tells when it was stored
        self.stop_event = threading.Event()
        self.parts: list[str] = []
        self.status = ""
        self.answer: Answer | None = None
        self.started = time.monotonic()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"answer-{conversation_id}", daemon=True)

    def start(self) -> AnswerJob:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for event in self.engine.stream(self.question, self.conversation_id, stop=self.stop_event):
                with self._cond:
                    if isinstance(event, Token):
                        self.parts.append(event.text)
                    elif isinstance(event, Status):
                        self.status = event.text
                    elif isinstance(event, Done):
                        self.answer = event.answer
                    self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - the stream promises not to raise; never lose the UI
            with self._cond:
                self.answer = Answer(text="".join(self.parts), sources=[], model="", conversation=self.conversation_id,
                                     mode="", incomplete=True, error=f"Unexpected error: {exc}")
        finally:
            with self._cond:
                if self.answer is None:
                    self.answer = Answer(text="".join(self.parts), sources=[], model="",
                                         conversation=self.conversation_id, mode="", incomplete=True,
                                         error="The answer ended without a result.")
                self._cond.notify_all()

    @property
    def done(self) -> bool:
        return self.answer is not None

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set() and not self.done

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def text(self) -> str:
        with self._cond:
            return "".join(self.parts)

    def stop(self) -> None:
        """Ask the engine to end the answer at its next chunk (the partial text is kept)."""
        self.stop_event.set()
        with self._cond:
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.done

    def follow(self, idle: Callable[[AnswerJob], None] | None = None, poll: float = 0.25,
               grace: float = 2.0) -> Iterator[str]:
        """The answer's text pieces from the first one, live, until it is done or stopped.

        `idle(job)` is called about every `poll` seconds while no text arrives, so a UI can
        refresh a status line (which also lets Streamlit notice a click such as Stop).
        After `stop()` it waits at most `grace` seconds for the engine to finish.
        """
        index = 0
        last_idle = 0.0
        stop_seen: float | None = None
        while True:
            with self._cond:
                if index >= len(self.parts) and not self.done:
                    self._cond.wait(poll)
                new = self.parts[index:]
                finished = self.done
            index += len(new)
            yield from new
            if finished:  # read with `new` under the lock, and nothing is added after Done
                return
            if self.stop_event.is_set():
                stop_seen = stop_seen or time.monotonic()
                if time.monotonic() - stop_seen > grace:
                    return
            now = time.monotonic()
            if idle is not None and not new and now - last_idle >= poll:
                last_idle = now
                idle(self)


# ---- documents ----------------------------------------------------------------------------
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


def ingest_upload(workspace: Any, collection_name: str, path: Path, display_name: str, *,
                  password: str | None = None, progress: Callable[[str, int, int], None] | None = None) -> Any:
    """Ingest one saved upload into a collection (IngestResult; never raises for a bad PDF)."""
    from agent.ingest import IngestResult, ingest_file

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


# ---- sources ------------------------------------------------------------------------------
def source_doc_id(source: dict[str, Any]) -> str:
    """The document hash of a source (chunk ids are `<doc_id>:<page>:<i>`)."""
    return str(source.get("doc_id") or str(source.get("chunk_id") or "").split(":", 1)[0])


def source_pdf(collections: list[Any], source: dict[str, Any]) -> Path | None:
    """The stored copy of the PDF a source comes from, if it is still indexed."""
    doc_id = source_doc_id(source)
    for collection in collections:
        path = collection.stored_file(doc_id) if doc_id else None
        if path is None:
            match = next((i for i in collection.document_infos() if i.file == source.get("file")), None)
            path = collection.stored_file(match.doc_id) if match else None
        if path is not None and path.exists():
            return path
    return None


def render_page_png(pdf: Path | str, page: int, width: int = PAGE_IMAGE_WIDTH) -> bytes:
    """PNG of one page (1-based number) rendered with pypdfium2, `width` pixels wide."""
    import io

    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(pdf))
    try:
        if not 1 <= page <= len(document):
            raise AgentError(f"Page {page} is not in {Path(pdf).name} ({len(document)} pages).")
        pdf_page = document[page - 1]
        scale = width / max(pdf_page.get_width(), 1.0)
        image = pdf_page.render(scale=scale).to_pil()
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    finally:
        document.close()


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def md_escape(text: str) -> str:
    """Text shown literally inside Markdown (file names in source headers)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def excerpt(text: str, limit: int = 700) -> str:
    """A source's text for display: whitespace runs folded, cut at `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def export_file_name(title: str, conversation_id: str) -> str:
    return safe_file_name(f"{title[:40] or 'conversation'}-{conversation_id}.md", default="conversation.md")
