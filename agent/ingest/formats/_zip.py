"""Zip containers (DOCX, PPTX, EPUB) opened only after their inflated size is known to be bounded."""
from __future__ import annotations

import io
import zipfile

from agent.errors import DocumentError

MAX_MEMBERS = 10_000
_CHUNK = 1 << 16


def _bomb(name: str, limit: int) -> DocumentError:
    return DocumentError(f"{name} would unpack to more than {limit // (1024 * 1024)} MB; it was not read.",
                         "Check the file: it may be damaged or a zip bomb.")


def open_checked(data: bytes, name: str, limit: int) -> zipfile.ZipFile:
    """The archive, after checking declared sizes and then actually inflating each member up to the limit."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise DocumentError(f"{name} is damaged (not a readable zip container).", "Re-save it and upload again.") from None
    if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > limit:
        raise _bomb(name, limit)
    if any(m.flag_bits & 0x1 for m in members):
        raise DocumentError(f"{name} is encrypted.", "Remove the password and upload again.")
    total = 0
    for member in members:  # declared sizes can lie: count what actually comes out, stop at the limit
        try:
            with archive.open(member) as stream:
                while block := stream.read(_CHUNK):
                    total += len(block)
                    if total > limit:
                        raise _bomb(name, limit)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError):
            raise DocumentError(f"{name} is damaged ({member.filename} cannot be read).",
                                "Re-save it and upload again.") from None
    return archive


def kind_of(archive: zipfile.ZipFile) -> str | None:
    """"docx" | "pptx" | "epub" from the members that define each format, else None."""
    names = set(archive.namelist())
    if "word/document.xml" in names:
        return "docx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    if "META-INF/container.xml" in names or "mimetype" in names and archive.read("mimetype")[:32] == b"application/epub+zip":
        return "epub"
    return None
