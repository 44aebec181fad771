"""Ingestion: a PDF file into a collection (parse, OCR, chunk, embed, index).

Documents are identified by the SHA-256 of their bytes, so re-adding an unchanged file
is a no-op decided before any parsing, and the same file uploaded twice at once is
indexed once (the check is repeated under the collection's write lock). A file with the
name of an indexed document but new content replaces the old version.

Every failure is a DocumentError with a clear message; the collection is only touched
after the whole document was parsed and embedded, so a bad file never costs the index
anything.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Container, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from agent._files import safe_file_name
from agent.config import Settings
from agent.errors import AgentError, DocumentError, EncryptedPDFError
from agent.ingest import formats
from agent.ingest._child import parse_in_child
from agent.ingest.acronyms import with_acronyms
from agent.ingest.chunking import chunk_pages, embedding_text
from agent.ingest.parse import ParsedPDF
from agent.search.embeddings import checked_vectors
from agent.search.store import Collection, DocumentInfo
from agent.search.title_vectors import attach, titles_to_embed

Progress = Callable[[str, int, int], None]
EMBED_BATCH = 32


@dataclass
class IngestResult:
    """The outcome for one file, as the CLI's result line and the UI's table show it."""

    file: str
    status: str  # added | replaced | unchanged | failed; re-index also: kept | dropped (see `reindex`)
    doc_id: str = ""
    pages: int = 0
    chunks: int = 0
    ocr_pages: list[int] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0
    needs_password: bool = False  # encrypted, and no or a wrong password was given: ask for one
    code: str = ""  # AgentError.code/params of a failure, for the UI's own wording
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status not in ("failed", "kept", "dropped")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _noop(stage: str, done: int, total: int) -> None:
    return None


def ingest_file(path: Path | str, collection: Collection, embeddings: Embeddings, settings: Settings, *,
                password: str | None = None, display_name: str | None = None,
                progress: Progress | None = None) -> IngestResult:
    """Ingest one PDF; never raises for a bad document (the result says what went wrong)."""
    started = time.perf_counter()
    path = Path(path)
    name = safe_file_name(display_name or path.name)
    try:
        result = _ingest(path, name, collection, embeddings, settings, password, progress or _noop)
    except EncryptedPDFError as err:
        result = IngestResult(name, "failed", message=str(err), needs_password=True, code=err.code, params=err.params)
    except AgentError as err:
        result = IngestResult(name, "failed", message=str(err), code=err.code, params=err.params)
    except OSError as exc:
        result = IngestResult(name, "failed", message=f"Cannot read {name}: {exc.strerror or exc}.")
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _ingest(path: Path, name: str, collection: Collection, embeddings: Embeddings, settings: Settings,
            password: str | None, progress: Progress) -> IngestResult:
    if not path.is_file():
        raise DocumentError(f"{name} is not a file.", "Check the path.")
    doc_id = file_sha256(path)
    collection.reload()
    if doc_id in collection.infos:
        return _unchanged(collection.infos[doc_id])
    info, chunks, vectors = prepare(path, name, doc_id, embeddings, settings, password, progress)
    progress("index", 0, 1)
    with collection.writing():
        if doc_id in collection.infos:  # the same file finished meanwhile in another process
            return _unchanged(collection.infos[doc_id])
        replaced = [i.doc_id for i in collection.infos.values() if i.file == name]
        # One commit: a crash leaves either the old version or the new one, never both or none.
        collection.add(info, chunks, vectors, path, replacing=replaced)
    progress("index", 1, 1)
    status = "replaced" if replaced else "added"
    message = "; ".join(info.warnings)
    return IngestResult(name, status, doc_id, info.pages, info.chunks, info.ocr_pages, message)


def prepare(path: Path, name: str, doc_id: str, embeddings: Embeddings, settings: Settings,
            password: str | None, progress: Progress) -> tuple[DocumentInfo, list[Document], np.ndarray]:
    """Parse, chunk and embed one document: all the slow work, done before the index is touched."""
    kind, parsed = _parse(path, name, password, settings, progress)
    chunks = chunk_pages(with_acronyms(parsed.pages), file=name, doc_id=doc_id,
                         chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)
    if not chunks:
        raise DocumentError(f"{name} has no extractable text.",
                            "If it is a scan, enable OCR in Settings; otherwise the PDF holds no text.")
    vectors = embed_chunks(chunks, embeddings, progress)
    info = DocumentInfo(doc_id=doc_id, file=name, pages=parsed.page_count, chunks=len(chunks),
                        size=path.stat().st_size, added=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        ocr_pages=parsed.ocr_pages, empty_pages=parsed.empty_pages, warnings=parsed.warnings,
                        kind=kind)
    return info, chunks, vectors


def _parse(path: Path, name: str, password: str | None, settings: Settings,
           progress: Progress) -> tuple[str, ParsedPDF]:
    """(format, text) of a document: a PDF through agent.ingest.parse; any other format through
    agent.ingest.formats (sections as pages)."""
    max_bytes = settings.max_upload_mb * 1024 * 1024
    with path.open("rb") as handle:
        kind = formats.detect(name, handle.read(4096))
    if kind == "pdf":
        return kind, parse_in_child(path, password=password, max_bytes=max_bytes, max_pages=settings.max_pages,
                                    ocr=settings.ocr, progress=progress, max_ocr_pages=settings.max_ocr_pages)
    kind, sections = formats.read_sections(path, name, max_bytes)
    ocr_pages = [s.number for s in sections if s.ocr]
    return kind, ParsedPDF(pages=sections, page_count=len(sections), ocr_pages=ocr_pages)  # type: ignore[arg-type]


def _unchanged(info: DocumentInfo) -> IngestResult:
    return IngestResult(info.file, "unchanged", info.doc_id, info.pages, info.chunks, info.ocr_pages,
                        "already indexed")


def embed_chunks(chunks: list[Document], embeddings: Embeddings, progress: Progress = _noop) -> np.ndarray:
    """Embed chunk texts in batches (so a UI can show progress), as a float32 matrix; the pages' section titles
    too, in the same batches, stored on their pages' first chunks (agent.search.title_vectors)."""
    titles = titles_to_embed(chunks)
    texts = [embedding_text(chunk) for chunk in chunks] + titles
    vectors: list[list[float]] = []
    for start in range(0, len(texts), EMBED_BATCH):
        progress("embed", start, len(texts))
        batch = texts[start:start + EMBED_BATCH]
        vectors += list(checked_vectors(embeddings.embed_documents(batch), len(batch), len(vectors[0]) if vectors else 0))
    progress("embed", len(texts), len(texts))
    matrix = checked_vectors(vectors, len(texts)) if texts else np.asarray(vectors, dtype=np.float32)
    if titles:
        attach(chunks, matrix[len(chunks):])
    return matrix[:len(chunks)]


def find_document(collection: Collection, file_or_hash: str) -> DocumentInfo:
    """A document by file name, full hash or unique hash prefix (at least 6 characters)."""
    infos = collection.document_infos()
    by_name = [i for i in infos if i.file == file_or_hash or i.file == safe_file_name(file_or_hash)]
    by_hash = [i for i in infos if len(file_or_hash) >= 6 and i.doc_id.startswith(file_or_hash.lower())]
    matches = by_name or by_hash
    if len(matches) != 1:
        why = "matches several documents" if matches else "matches no document"
        raise DocumentError(f"{file_or_hash!r} {why} in collection {collection.name!r}.",
                            "List the documents with `python -m agent docs`.")
    return matches[0]


def remove_document(collection: Collection, file_or_hash: str) -> DocumentInfo:
    """Remove a document's vectors, chunks and stored copy."""
    with collection.writing():
        return collection.remove(find_document(collection, file_or_hash).doc_id)


class ReindexResults(list[IngestResult]):
    """The per-document results of a re-index, and whether the new index was committed."""

    def __init__(self, results: list[IngestResult], committed: bool) -> None:
        super().__init__(results)
        self.committed = committed


Entry = tuple[DocumentInfo, list[Document], np.ndarray]


def reindex(collection: Collection, embeddings: Embeddings, settings: Settings,
            progress: Progress | None = None, *, previous: Collection | None = None,
            passwords: Mapping[str, str] | None = None, only: Container[str] | None = None,
            drop_failed: bool = False, on_document: Callable[[str, int, int], None] | None = None) -> ReindexResults:
    """Rebuild the whole collection from its stored PDFs with the current settings, in one commit.

    Used after a change of embedding model or chunk size, or when the index is damaged.
    A document that fails now (a lowered page limit, a password not given) is never
    dropped silently: it keeps its chunks and vectors from `previous` (the index as loaded
    before, when it is readable with the current embedder) and its result says "kept";
    without them nothing is committed ("failed") unless `drop_failed` ("dropped").
    `only`: re-process just these documents and reuse the others from `previous`.
    `on_document(name, index, total)` is called before each document is processed.
    """
    progress, passwords = progress or _noop, passwords or {}
    results: list[IngestResult] = []
    entries: list[Entry] = []
    with collection.writing():
        old = _OldIndex.of(previous)
        known = {**collection.recorded_infos(), **old.infos}
        stored = collection.stored_documents()
        todo = [(d, pdf) for d, pdf in stored if only is None or d not in old.infos or d in only]
        redo = {d for d, _ in todo}
        entries += [old.entry(d) for d, _ in stored if d not in redo]
        for index, (doc_id, pdf) in enumerate(todo):
            name = known[doc_id].file if doc_id in known else pdf.name
            if on_document is not None:
                on_document(name, index, len(todo))
            entry, result = _rebuild_one(pdf, name, doc_id, known.get(doc_id), old, embeddings, settings,
                                         passwords.get(doc_id), progress, drop_failed)
            entries += [entry] if entry is not None else []
            results.append(result)
        if any(r.status == "failed" for r in results):
            for result in results:
                if result.status != "failed":
                    result.status, result.message = "unchanged", "nothing was committed"
            return ReindexResults(results, committed=False)
        dimension = next((v.shape[1] for _, c, v in entries if len(c)), 0) or len(embeddings.embed_query("dimension"))
        collection.replace_all(entries, dimension)
    return ReindexResults(results, committed=True)


def _rebuild_one(pdf: Path, name: str, doc_id: str, known: DocumentInfo | None, old: _OldIndex,
                 embeddings: Embeddings, settings: Settings, password: str | None, progress: Progress,
                 drop_failed: bool) -> tuple[Entry | None, IngestResult]:
    """One document re-processed (or its old entry kept on failure), and its timed result."""
    started = time.perf_counter()
    try:
        info, chunks, vectors = prepare(pdf, name, doc_id, embeddings, settings, password, progress)
    except AgentError as err:
        entry = old.entry(doc_id) if doc_id in old.infos else None
        status = "kept" if entry is not None else "dropped" if drop_failed else "failed"
        info = entry[0] if entry is not None else known
        result = IngestResult(name, status, doc_id, info.pages if info else 0, info.chunks if info else 0,
                              info.ocr_pages if info else [], message=str(err),
                              needs_password=isinstance(err, EncryptedPDFError))
        result.seconds = round(time.perf_counter() - started, 3)
        return entry, result
    if known is not None:
        info.added = known.added
    result = IngestResult(name, "added", doc_id, info.pages, info.chunks, info.ocr_pages, "; ".join(info.warnings))
    result.seconds = round(time.perf_counter() - started, 3)
    return (info, chunks, vectors), result


@dataclass
class _OldIndex:
    """The documents, chunks and vectors of the index before a re-index (empty if unreadable)."""

    infos: dict[str, DocumentInfo]
    chunks: list[Document]
    index: Any
    positions: dict[str, list[int]]

    @classmethod
    def of(cls, previous: Collection | None) -> _OldIndex:
        if previous is not None:
            try:
                previous.reload()  # under the rebuild's lock: what is on disk now
                positions: dict[str, list[int]] = {}
                for position, chunk in enumerate(previous.documents):
                    positions.setdefault(chunk.metadata.get("doc_id", ""), []).append(position)
                return cls(dict(previous.infos), list(previous.documents), previous.vectorstore.index, positions)
            except AgentError:  # damaged, or built with another embedder: nothing to keep
                pass
        return cls({}, [], None, {})

    def entry(self, doc_id: str) -> Entry:
        keys = np.asarray(self.positions.get(doc_id, []), dtype=np.int64)
        vectors = self.index.reconstruct_batch(keys) if len(keys) else np.zeros((0, self.index.d), np.float32)
        return self.infos[doc_id], [self.chunks[i] for i in keys], vectors
