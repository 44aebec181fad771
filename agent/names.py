"""Names that become paths: collection names and uploaded file names.

A user-supplied name must never escape the data directory or break on another OS,
so both are checked or cleaned here, in one place.
"""

from __future__ import annotations

import re
import unicodedata

_COLLECTION_RE = re.compile(r"^[\w\-. ]{1,64}$", re.UNICODE)
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                     *(f"lpt{i}" for i in range(1, 10))}
MAX_FILE_NAME = 120
# File systems limit a name to 255 *bytes*, and atomic writes add ".<name>.<8 chars>.tmp":
# 120 Chinese characters (360 bytes) failed with "File name too long".
MAX_FILE_NAME_BYTES = 200


def check_collection_name(name: str) -> str:
    """Return the name stripped, or raise ValueError: letters, digits, space, - _ . only."""
    name = name.strip()
    if not _COLLECTION_RE.match(name) or name in (".", "..") or name.startswith("."):
        raise ValueError(f"invalid collection name {name!r}: use 1-64 letters, digits, spaces, - _ .")
    return name


def safe_file_name(name: str, default: str = "document.pdf") -> str:
    """A display/storage name with no directory parts, control characters or reserved names.

    `../../etc/passwd.pdf` becomes `passwd.pdf`, `con.pdf` becomes `_con.pdf`, newlines
    vanish, and very long names are shortened keeping the extension.
    """
    name = unicodedata.normalize("NFC", str(name)).replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = re.sub(r'[<>:"|?*]', "_", name).strip().strip(".").strip()
    if not name:
        return default
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    if stem.lower() in _WINDOWS_RESERVED:
        stem = "_" + stem
    ext = ext[:10]
    stem = stem[: MAX_FILE_NAME - len(ext) - 1] or "document"
    while len(f"{stem}.{ext}".encode("utf-8")) > MAX_FILE_NAME_BYTES:
        stem = stem[:-1]
    return f"{stem}.{ext}" if ext else stem
