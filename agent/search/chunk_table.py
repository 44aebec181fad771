"""A collection's chunks as columns: one byte buffer and one offsets array, memory-mapped.

A list of `Document` objects costs ~10 KB of Python objects per chunk (10.7 GB at 1M chunks,
issue 19). Here the chunk texts (UTF-8) and their id + metadata (one JSON array per chunk)
sit end to end in `chunks-<gen>.npy` (uint8), and `chunk-offsets-<gen>.npy` (int64, one row
per chunk plus one) says where each starts: column 0 in the texts, column 1 in the JSON. Both
are plain `.npy` files loaded with `mmap_mode="r"` (no pickle), so loading reads no text and
the OS pages in only what is read. A `Document` is made when one is asked for (`table[i]`).
"""

from __future__ import annotations

import io
import json
import re
import zlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import overload

import numpy as np
from langchain_community.docstore.base import Docstore
from langchain_core.documents import Document


class DocumentRows(Sequence[Document]):
    """A read-only sequence of chunks made into `Document`s on access, equal to a list of the same."""

    def _document(self, i: int) -> Document:
        """Row `i`, 0 <= i < len(self)."""
        raise NotImplementedError

    @overload
    def __getitem__(self, i: int) -> Document: ...
    @overload
    def __getitem__(self, i: slice) -> list[Document]: ...
    def __getitem__(self, i: int | slice) -> Document | list[Document]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        return self._document(i % n)

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same Documents (`collection.documents == []` as with a list)."""
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # compared by content, as a list: not a dict key


class ChunkTable(DocumentRows):
    """Chunks in index order, read-only; `Document`s are built on access, never kept."""

    def __init__(self, data: np.ndarray, offsets: np.ndarray) -> None:
        self._data = data
        self._offsets = offsets

    @classmethod
    def from_documents(cls, documents: Sequence[Document]) -> ChunkTable:
        """A table in memory holding `documents` (a table's rows are copied without parsing)."""
        if isinstance(documents, ChunkTable):
            return documents
        texts = [d.page_content.encode("utf-8") for d in documents]
        metas = [json.dumps([d.id, d.metadata], ensure_ascii=False).encode("utf-8") for d in documents]
        return cls._packed(texts, metas)

    @classmethod
    def concat(cls, parts: Sequence[tuple[ChunkTable, np.ndarray | None]]) -> ChunkTable:
        """Rows of several tables (`rows`: ascending positions to keep, None for all) as one new
        table, copied as runs of bytes: nothing is decoded, so keeping 1M chunks costs a memcpy."""
        texts: list[np.ndarray] = []
        metas: list[np.ndarray] = []
        text_len: list[np.ndarray] = []
        meta_len: list[np.ndarray] = []
        for table, rows in parts:
            off = np.asarray(table._offsets)
            picked = np.arange(len(table)) if rows is None else np.asarray(rows, np.int64)
            if not len(picked):
                continue
            breaks = np.flatnonzero(np.diff(picked) != 1) + 1
            for start, end in zip(picked[np.r_[0, breaks]], picked[np.r_[breaks - 1, -1]] + 1):
                texts.append(table._data[off[start, 0]:off[end, 0]])
                metas.append(table._data[off[start, 1]:off[end, 1]])
            lengths = np.diff(off, axis=0)[picked]
            text_len.append(lengths[:, 0])
            meta_len.append(lengths[:, 1])
        return cls._joined(texts, metas, _cat(text_len), _cat(meta_len))

    @classmethod
    def _packed(cls, texts: list[bytes], metas: list[bytes]) -> ChunkTable:
        return cls._joined([np.frombuffer(b"".join(texts), np.uint8)], [np.frombuffer(b"".join(metas), np.uint8)],
                           np.array([len(t) for t in texts], np.int64), np.array([len(m) for m in metas], np.int64))

    @classmethod
    def _joined(cls, texts: list[np.ndarray], metas: list[np.ndarray], text_len: np.ndarray,
                meta_len: np.ndarray) -> ChunkTable:
        offsets = np.zeros((len(text_len) + 1, 2), np.int64)
        np.cumsum(text_len, out=offsets[1:, 0])
        np.cumsum(meta_len, out=offsets[1:, 1])
        offsets[:, 1] += offsets[-1, 0]
        data = np.concatenate([*texts, *metas]) if texts or metas else np.zeros(0, np.uint8)
        return cls(data.astype(np.uint8, copy=False), offsets)

    # ---- reading -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._offsets) - 1

    def _document(self, i: int) -> Document:
        doc_id, metadata = json.loads(self.raw_meta(i))
        return Document(page_content=self.raw_text(i).decode("utf-8"), metadata=metadata, id=doc_id)

    def __iter__(self) -> Iterator[Document]:
        return (self[i] for i in range(len(self)))

    def raw_text(self, i: int) -> bytes:
        a, b = self._offsets[i, 0], self._offsets[i + 1, 0]
        return self._data[a:b].tobytes()

    def raw_meta(self, i: int) -> bytes:
        a, b = self._offsets[i, 1], self._offsets[i + 1, 1]
        return self._data[a:b].tobytes()

    def rows_with(self, key: str, values: Collection[str], span: tuple[int, int] | None = None) -> np.ndarray:
        """Ascending positions of the chunks (among rows span[0]..span[1], when given) whose metadata[key]
        is one of `values`: a regex scan of the JSON bytes in C, then a parse of the candidate rows only
        (not a Document per chunk)."""
        offsets = np.asarray(self._offsets[:, 1])
        first, end = span or (0, len(self))
        base, stop = int(offsets[first]), int(offsets[end])
        found: set[int] = set()
        for value in values:
            pattern = re.escape(json.dumps(key) + ": " + json.dumps(value, ensure_ascii=False)).encode("utf-8")
            for match in re.finditer(pattern, memoryview(self._data)[base:stop]):  # type: ignore[arg-type]
                found.add(int(np.searchsorted(offsets, base + match.start(), side="right")) - 1)
        rows = [i for i in sorted(found) if i < len(self) and self[i].metadata.get(key) in values]
        return np.array(rows, dtype=np.int64)

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes + self._offsets.nbytes)

    # ---- files ---------------------------------------------------------------------------------
    def files_bytes(self) -> tuple[bytes, bytes]:
        """The `.npy` contents of the data and offsets files."""
        return _npy(self._data), _npy(self._offsets)

    @classmethod
    def load(cls, data_path: Path, offsets_path: Path, checksums: Mapping[str, int] | None = None) -> ChunkTable:
        """Memory-map the two files; `checksums` (crc32 of each file, from the manifest) catch a
        damaged file at load instead of at the first search. Raises ValueError when damaged."""
        data = np.load(data_path, mmap_mode="r", allow_pickle=False)
        offsets = np.load(offsets_path, mmap_mode="r", allow_pickle=False)
        if checksums is not None:
            for key, path in (("data", data_path), ("offsets", offsets_path)):
                if _crc32(path) != checksums.get(key):
                    raise ValueError(f"{path.name} does not match its checksum")
        if data.dtype != np.uint8 or data.ndim != 1 or offsets.dtype != np.int64 or offsets.ndim != 2 \
                or offsets.shape[1] != 2 or len(offsets) < 1:
            raise ValueError("the chunk columns have the wrong shape")
        flat = np.asarray(offsets)
        if flat[0, 0] != 0 or flat[-1, 0] != flat[0, 1] or flat[-1, 1] != len(data) \
                or np.any(np.diff(flat, axis=0) < 0):
            raise ValueError("the chunk offsets are out of order or out of range")
        return cls(data, offsets)

    @staticmethod
    def checksums(files: tuple[bytes, bytes]) -> dict[str, int]:
        return {"data": zlib.crc32(files[0]), "offsets": zlib.crc32(files[1])}


class TableDocstore(Docstore):
    """The FAISS wrapper's docstore over a table: keys are chunk positions (as strings)."""

    def __init__(self, table: Sequence[Document]) -> None:
        self.table = table

    def search(self, search: str) -> Document | str:
        try:
            return self.table[int(search)]
        except (ValueError, IndexError):
            return f"ID {search} not found."

    def delete(self, ids: list) -> None:
        raise NotImplementedError("collections are changed through Collection, not the vector store")


class PositionKeys(Mapping[int, str]):
    """index_to_docstore_id for `TableDocstore`: position i -> "i", without a dict of n entries."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __getitem__(self, i: int) -> str:
        if not 0 <= i < self.n:
            raise KeyError(i)
        return str(i)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, np.ascontiguousarray(array), allow_pickle=False)
    return out.getvalue()


def _crc32(path: Path, block: int = 1 << 24) -> int:
    crc = 0
    with path.open("rb") as f:
        while chunk := f.read(block):
            crc = zlib.crc32(chunk, crc)
    return crc


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
