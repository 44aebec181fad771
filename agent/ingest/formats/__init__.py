"""Readers for documents other than PDF, detected by content; each yields location-bounded sections."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.errors import DocumentError
from agent.ingest.formats import _zip, epub, html, image, markdown, office, text
from agent.ingest.formats._section import Section

__all__ = ["SUPPORTED", "UPLOAD_EXTENSIONS", "Section", "detect", "read_sections", "type_label"]

Reader = Callable[[bytes], list[Section]]

# kind -> (reader, label shown in the document table); "pdf" is read by agent.ingest.parse.
_READERS: dict[str, Reader] = {"text": text.read, "markdown": markdown.read, "html": html.read, "image": image.read}
SUPPORTED = ("PDF", "Word (.docx)", "PowerPoint (.pptx)", "EPUB", "Markdown", "HTML", "text", "PNG/JPEG images")
_HEAD = 4096
# What the uploader offers (content decides the reader; the extension only filters the file dialog).
UPLOAD_EXTENSIONS = ("pdf", "docx", "pptx", "epub", "md", "markdown", "html", "htm", "txt", "png", "jpg", "jpeg")
_TYPE_LABELS = {"md": "Markdown", "markdown": "Markdown", "htm": "HTML", "txt": "Text", "jpg": "JPEG"}
_KIND_LABELS = {"markdown": "Markdown", "text": "Text"}  # the other kinds read in capitals
INFLATE_FACTOR = 4  # a zip container may unpack to this many times the upload limit, no more
_ZIP_READERS = {"docx": office.read_docx, "pptx": office.read_pptx}


def detect(name: str, head: bytes) -> str:
    """The format of a file from its first bytes (magic numbers), the extension only telling text kinds apart."""
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"  # DOCX, PPTX or EPUB: told apart by their members (agent.ingest.formats._zip.kind_of)
    if head.startswith(b"\xd0\xcf\x11\xe0"):  # OLE2: encrypted OOXML or legacy .doc/.ppt
        raise DocumentError(f"{name} is password-protected or an old Office format (.doc, .ppt).",
                            "Remove the password, or save it as .docx/.pptx/PDF, and upload again.")
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")):
        return "image"
    suffix = Path(name).suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg"):  # named a picture, but not one
        raise DocumentError(f"{name} is not a PNG/JPEG picture.", "Re-save it and upload again.")
    if suffix == ".pdf":  # named a PDF, but not one: the PDF parser says what is wrong with it
        return "pdf"
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _unsupported(name)
    sniff = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if suffix in (".html", ".htm", ".xhtml") or sniff.startswith((b"<!doctype html", b"<html")):
        return "html"
    if suffix in (".md", ".markdown"):
        return "markdown"
    return "text"


def type_label(file_name: str, kind: str = "") -> str:
    """The document table's "Type": the detected format recorded at ingest ("PDF", "DOCX", "Markdown", ...),
    else (records from before it was recorded) the file name's extension."""
    suffix = Path(file_name).suffix.lower().lstrip(".")
    by_name = _TYPE_LABELS.get(suffix, suffix.upper() or "Text")
    if kind == "image":  # the content says picture; a picture's own name says which kind
        return by_name if suffix in ("png", "jpg", "jpeg") else "Image"
    return _KIND_LABELS.get(kind, kind.upper()) if kind else by_name


def read_sections(path: Path, name: str, max_bytes: int) -> tuple[str, list[Section]]:
    """(kind, sections) of a non-PDF document; DocumentError if too big, unsupported or empty."""
    size = path.stat().st_size
    if size > max_bytes:
        raise DocumentError(f"{name} is larger than the upload limit ({max_bytes // (1024 * 1024)} MB).",
                            "Split the file or raise max_upload_mb in Settings.")
    data = path.read_bytes()
    kind = detect(name, data[:_HEAD])
    if kind == "pdf":
        raise ValueError("PDFs are read by agent.ingest.parse")
    if kind == "zip":
        kind, sections = _read_zip(data, name, max_bytes * INFLATE_FACTOR)
    else:
        sections = _READERS[kind](data)
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise DocumentError(f"{name} has no text.", "Check that the file is not empty.")
    return kind, sections


def _read_zip(data: bytes, name: str, limit: int) -> tuple[str, list[Section]]:
    """A DOCX/PPTX/EPUB once its inflated size is known to fit; any parser failure becomes one clear refusal."""
    archive = _zip.open_checked(data, name, limit)
    kind = _zip.kind_of(archive)
    if kind is None:
        raise _unsupported(name)
    try:
        return kind, epub.read(archive) if kind == "epub" else _ZIP_READERS[kind](data)
    except DocumentError:
        raise
    except Exception:  # noqa: BLE001 - hostile XML/parts make the third-party parsers raise anything
        raise DocumentError(f"{name} is damaged (a part is missing or malformed).",
                            "Open and re-save it, then upload again.") from None


def _unsupported(name: str) -> DocumentError:
    return DocumentError(f"{name}: this file type is not supported.",
                         f"Supported types: {', '.join(SUPPORTED)}.")
