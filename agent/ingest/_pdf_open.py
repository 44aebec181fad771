"""Opening an untrusted PDF: cheap checks first (size, type, encryption, page count), and
streams that would decode past a budget refused before PDFium inflates them (`_pdf_budget`).

PDFium is not thread-safe (not even across documents), so every PDFium call in the app must
hold `PDFIUM_LOCK`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from agent.errors import DocumentError, EncryptedPDFError
from agent.ingest._pdf_budget import check_inflation

# Re-entrant so a caller that already holds it may call into the PDF layer.
PDFIUM_LOCK = threading.RLock()

_SIGNATURES: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", "a BMP image"),
    (b"PK\x03\x04", "a ZIP archive (a .docx, .xlsx, .pptx or .epub document is one)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office document (.doc, .xls or .ppt)"),
    (b"{\\rtf", "an RTF document"),
    (b"%!PS", "a PostScript file"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"AT&TFORM", "a DjVu document"),
]


def _looks_like(head: bytes) -> str:
    """What a non-PDF file's first bytes suggest, as a noun phrase."""
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "a HEIC image"
    lower = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lower.startswith((b"<!doctype html", b"<html")):
        return "an HTML web page (perhaps a download error page)"
    if lower.startswith(b"<?xml") or lower.startswith(b"<svg"):
        return "an XML/SVG file"
    try:
        sample = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the end is fine
        sample = head[:exc.start].decode("utf-8") if exc.start >= len(head) - 3 else ""
    if sample and sum(1 for c in sample if c.isprintable() or c in "\r\n\t") >= 0.95 * len(sample):
        return "a plain-text file"
    return ""


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _check_file(path: Path, max_bytes: int) -> None:
    """Existence, size and header checks (stat + 1 KiB read)."""
    name = path.name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DocumentError(f"{name} was not found.", "Check the path and try again.") from None
    except OSError as exc:
        raise DocumentError(f"{name} could not be opened ({exc.strerror or exc}).",
                            "Check that the file exists and is readable.") from exc
    if path.is_dir():
        raise DocumentError(f"{name} is a folder, not a PDF file.", "Choose a PDF file inside it.")
    if size == 0:
        raise DocumentError(f"{name} is empty (0 bytes).",
                            "Re-download or re-export the PDF; the copy you have holds no data.")
    if size > max_bytes:
        raise DocumentError(f"{name} is {_mb(size)}, larger than the {_mb(max_bytes)} limit.",
                            "Split it into smaller PDFs, or raise the upload size limit in Settings.",
                            code="doc_too_large", params={"file": name, "size": _mb(size), "limit": _mb(max_bytes)})
    try:
        with path.open("rb") as handle:
            head = handle.read(1024)
    except OSError as exc:
        raise DocumentError(f"{name} could not be read ({exc.strerror or exc}).",
                            "Check that the file is readable.") from exc
    if b"%PDF-" not in head:
        what = _looks_like(head)
        message = (f"{name} is not a PDF: it looks like {what}." if what
                   else f"{name} is not a PDF: it does not start with a PDF header.")
        raise DocumentError(message, "Convert it to PDF (or pick the right file) and add it again.")


def _encrypted_error(name: str, password: str | None) -> EncryptedPDFError:
    if password:
        return EncryptedPDFError(f"The password given for {name} is wrong.",
                                 "Check the password and supply the right one (e.g. --password).",
                                 code="doc_wrong_password", params={"file": name})
    return EncryptedPDFError(f"{name} is password-protected and needs a password to open.",
                             "Supply its password (e.g. --password), or add an unprotected copy.",
                             code="doc_encrypted", params={"file": name})


def _unreadable_error(name: str) -> DocumentError:
    return DocumentError(f"{name} could not be read as a PDF: the file is damaged beyond repair.",
                         "Open it in a PDF viewer and re-save or re-export it, then add it again.",
                         code="doc_damaged", params={"file": name})


class _Source:
    """An opened PDF: PDFium when it can open the file, else pypdf's repair reader."""

    def __init__(self, path: Path, password: str | None) -> None:
        self.path = path
        self.name = path.name
        self.password = password or None
        self.pdfium = None
        self._pypdf = None
        self._pypdf_failed = False
        self.warnings: list[str] = []
        self.page_count = 0

    # pypdf is opened lazily: it is only needed for repairs and fallbacks.
    def pypdf(self):
        if self._pypdf is None and not self._pypdf_failed:
            try:
                self._pypdf = _open_pypdf(self.path, self.password, self.name)
            except DocumentError:
                self._pypdf_failed = True
        return self._pypdf

    def close(self) -> None:
        if self.pdfium is not None:
            with PDFIUM_LOCK:
                self.pdfium.close()
            self.pdfium = None
        self._pypdf = None


def _open_pypdf(path: Path, password: str | None, name: str):
    """pypdf in lenient mode (repairs broken xref tables); decrypts; raises DocumentError."""
    import pypdf
    from pypdf import PasswordType

    try:
        reader = pypdf.PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            try:
                result = reader.decrypt(password or "")
            except Exception as exc:  # e.g. pypdf lacks the crypto library for AES
                if not password:
                    raise _encrypted_error(name, password) from exc
                raise DocumentError(f"{name} is encrypted in a way that could not be decrypted ({exc}).",
                                    "Save an unprotected copy of it and add that.") from exc
            if result == PasswordType.NOT_DECRYPTED:
                raise _encrypted_error(name, password)
        len(reader.pages)  # forces the page tree to be read
        return reader
    except DocumentError:
        raise
    except Exception as exc:
        raise _unreadable_error(name) from exc


def _open(path: str | os.PathLike, password: str | None, max_bytes: int, max_pages: int) -> _Source:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    path = Path(path)
    _check_file(path, max_bytes)
    check_inflation(path)
    source = _Source(path, password)
    name = path.name
    try:
        with PDFIUM_LOCK:
            doc = pdfium.PdfDocument(str(path), password=source.password)
            source.pdfium = doc
            source.page_count = len(doc)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise _encrypted_error(name, password) from None
        reader = _open_pypdf(path, source.password, name)  # raises "damaged beyond repair"
        source._pypdf = reader
        source.page_count = len(reader.pages)
        source.warnings.append(f"{name} is damaged; it was repaired while reading, so some text may be missing.")
    if source.page_count == 0 and source.pdfium is not None:
        # PDFium found no pages: a damaged page tree? Ask pypdf for a second opinion.
        reader = source.pypdf()
        if reader is not None and len(reader.pages) > 0:
            source.close()
            source._pypdf = reader
            source.page_count = len(reader.pages)
            source.warnings.append(f"{name} is damaged; it was repaired while reading, so some text may be missing.")
    if source.page_count > max_pages:
        count = source.page_count
        source.close()
        raise DocumentError(f"{name} has {count:,} pages, more than the limit of {max_pages:,}.",
                            "Split it into smaller PDFs, or raise the page limit in Settings.",
                            code="doc_too_many_pages", params={"file": name, "pages": count, "limit": max_pages})
    if source.page_count == 0:
        source.close()
        raise DocumentError(f"{name} has no pages.", "Re-export the document to PDF and add it again.")
    return source


def inspect_pdf(path: str | os.PathLike, *, password: str | None = None, max_bytes: int, max_pages: int) -> int:
    """Run every check that `parse_pdf` runs before extracting text; return the page count.

    Cheap: reads the header, the cross-reference table and the page tree only.
    Raises DocumentError / EncryptedPDFError exactly as `parse_pdf` would.
    """
    source = _open(path, password, max_bytes, max_pages)
    try:
        return source.page_count
    finally:
        source.close()
