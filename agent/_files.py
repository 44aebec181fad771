"""Crash-safe file writes and the names that become paths.

Everything the app persists goes through here: write a temp file in the same
directory, fsync it, then rename over the target. A crash (or a full disk) mid-write
leaves the previous file intact, never a half-written one.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from agent.errors import InvalidNameError, StoreError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically; raise StoreError (with the fix) on OS errors."""
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Replace `path` with what `fill` writes to the open temp file, atomically: a large file is
    written as it is made instead of held in memory whole first."""
    path = Path(path)
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise StoreError(f"Could not write {path.name}: {exc.strerror or exc}.",
                         "Check that the data directory is writable and the disk has space; "
                         "the previous version is unchanged.") from exc
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def atomic_write_text(path: Path, text: str) -> None:
    """Text variant of `atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temps(path: Path, older_than: float) -> int:
    """Delete the temp files that writers of `path` killed mid-write left (`.<name>.*.tmp`),
    if older than `older_than` seconds (a younger one may be another process's live write)."""
    path = Path(path)
    cutoff = time.time() - older_than
    removed = 0
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed += 1
        except OSError:  # gone meanwhile, or not ours to delete: harmless either way
            pass
    return removed


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_COLLECTION_RE = re.compile(r"^[\w\-. ]{1,64}$", re.UNICODE)
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                     *(f"lpt{i}" for i in range(1, 10))}
MAX_FILE_NAME = 120
# File systems limit a name to 255 *bytes*, and atomic writes add ".<name>.<8 chars>.tmp":
# 120 Chinese characters (360 bytes) failed with "File name too long".
MAX_FILE_NAME_BYTES = 200


def check_collection_name(name: str) -> str:
    """Return the name stripped, or raise InvalidNameError: letters, digits, space, - _ . only."""
    name = name.strip()
    if not _COLLECTION_RE.match(name) or name in (".", "..") or name.startswith("."):
        raise InvalidNameError(f"Invalid collection name {name!r}.",
                               "Use 1-64 letters, digits, spaces, - _ . (not starting with a dot).",
                               code="invalid_collection_name", params={"name": name})
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
