"""Readers for documents other than PDF, detected by content; each yields location-bounded sections."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.errors import DocumentError
from agent.ingest.formats._section import Section
from agent.ingest.formats import html, markdown, text

__all__ = ["SUPPORTED", "Section", "detect", "read_sections"]

Reader = Callable[[bytes], list[Section]]

# kind -> (reader, label shown in the document table); "pdf" is read by agent.ingest.parse.
_READERS: dict[str, Reader] = {"text": text.read, "markdown": markdown.read, "html": html.read}
SUPPORTED = ("PDF", "Markdown", "HTML", "text")
_HEAD = 4096


def detect(name: str, head: bytes) -> str:
    """The format of a file from its first bytes (magic numbers), the extension only telling text kinds apart."""
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith((b"PK\x03\x04", b"\x89PNG", b"\xff\xd8\xff", b"\xd0\xcf\x11\xe0", b"GIF8")):
        raise _unsupported(name)  # zip containers and images: readers not in this branch yet
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _unsupported(name)
    suffix = Path(name).suffix.lower()
    sniff = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if suffix in (".html", ".htm", ".xhtml") or sniff.startswith((b"<!doctype html", b"<html")):
        return "html"
    if suffix in (".md", ".markdown"):
        return "markdown"
    if suffix == ".pdf":  # named PDF, but not one
        raise _unsupported(name)
    return "text"


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
    sections = [s for s in _READERS[kind](data) if s.text.strip()]
    if not sections:
        raise DocumentError(f"{name} has no text.", "Check that the file is not empty.")
    return kind, sections


def _unsupported(name: str) -> DocumentError:
    return DocumentError(f"{name}: this file type is not supported.",
                         f"Supported types: {', '.join(SUPPORTED)}.")
