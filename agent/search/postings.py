"""BM25 postings saved per segment, memory-mapped at load and joined by counting (issue 19.4).

BM25 reads, for each query term, the chunks (or pages) holding it: the term counts put in
term-major order. Making that order at load (a sort of every (term, chunk) pair, then gathers)
took 25 s at 1M chunks, and again for every new version after an add. So each segment's save
writes its own postings (`postings-<gen>.npy`, one array of bytes, memory-mapped at load), and a
version's keyword index reads each segment's postings where they lie (`Part`): a query term's rows
are looked up segment by segment, placed at the segment's offset or, in a segment with deleted
rows, through a map of its rows to positions (deleted rows skipped, document frequencies corrected
by the deleted rows' own term counts), so BM25 scores equal those of a whole rebuild.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

_MAGIC = 0x5053_544E_4732  # postings, layout 2
#: the arrays of a file, in order (widest items first, so each starts aligned)
_DTYPES = (np.int64, np.int64, np.int32, np.int32, np.int32, np.float32, np.float32, np.uint16, np.uint16)


@dataclass(frozen=True)
class Postings:
    """Term-major postings: term t's rows are `rows[ptr[t]:ptr[t+1]]` (ascending), with counts `tf`;
    `lengths`: each row's total count (BM25's document length)."""

    ptr: np.ndarray  # int64, terms + 1
    rows: np.ndarray  # int32
    tf: np.ndarray  # uint16
    lengths: np.ndarray  # float32 per row

    @classmethod
    def of(cls, row_ptr: np.ndarray, term: np.ndarray, tf: np.ndarray, terms: int) -> Postings:
        """From row-major counts (CSR: row i's terms are `term[row_ptr[i]:row_ptr[i+1]]`)."""
        row_of = np.repeat(np.arange(len(row_ptr) - 1, dtype=np.int32), np.diff(row_ptr))
        order = _term_order(term)
        ptr = np.zeros(terms + 1, dtype=np.int64)
        np.cumsum(np.bincount(term, minlength=terms), out=ptr[1:])
        return cls(ptr, row_of[order], np.asarray(tf, np.uint16)[order], row_lengths(row_ptr, tf))


@dataclass(frozen=True)
class SegmentPostings:
    """One segment's chunk and page postings (its own row numbers), and each chunk's page."""

    chunks: Postings
    pages: Postings
    chunk_page: np.ndarray  # int32 per chunk

    def to_bytes(self) -> bytes:
        """One uint8 .npy: a header of int64 lengths, then the arrays, each aligned to its item size."""
        arrays = self._arrays()
        header = np.array([_MAGIC, *(len(a) for a in arrays)], dtype=np.int64)
        blob = np.concatenate([np.frombuffer(np.ascontiguousarray(a).tobytes(), np.uint8) for a in (header, *arrays)])
        out = io.BytesIO()
        np.save(out, blob, allow_pickle=False)
        return out.getvalue()

    def _arrays(self) -> tuple[np.ndarray, ...]:
        """In the file's order (`_DTYPES`)."""
        c, p = self.chunks, self.pages
        arrays = (c.ptr, p.ptr, c.rows, p.rows, self.chunk_page, c.lengths, p.lengths, c.tf, p.tf)
        return tuple(np.asarray(a).astype(t, copy=False) for a, t in zip(arrays, _DTYPES))

    @classmethod
    def load(cls, path: Path, chunks: int) -> SegmentPostings | None:
        """The saved postings of a segment of `chunks` rows, memory-mapped; None when absent or damaged
        (the keyword index is then built from the term counts: slower, never wrong)."""
        try:
            blob = np.load(path, mmap_mode="r", allow_pickle=False)
            at = 8 * (1 + len(_DTYPES))
            header = np.frombuffer(blob, np.int64, at // 8) if blob.dtype == np.uint8 and blob.ndim == 1 else None
            if header is None or int(header[0]) != _MAGIC:
                raise ValueError("not a postings file")
            arrays = []
            for dtype, n in zip(_DTYPES, header[1:].tolist()):
                arrays.append(np.frombuffer(blob, dtype, n, at))
                at += n * np.dtype(dtype).itemsize
            cptr, pptr, crows, prows, chunk_page, clen, plen, ctf, ptf = arrays
            out = cls(Postings(cptr, crows, ctf, clen), Postings(pptr, prows, ptf, plen), chunk_page)
            if at != len(blob) or not len(chunk_page) == len(clen) == chunks or not out._consistent():
                raise ValueError("its lengths do not match")
            return out
        except (OSError, ValueError) as exc:
            if path.exists():
                logger.warning("ignoring unreadable keyword postings %s (%s)", path, exc)
            return None

    def _consistent(self) -> bool:
        pages = int(self.chunk_page.max()) + 1 if len(self.chunk_page) else 0
        return all(p.ptr[0] == 0 and p.ptr[-1] == len(p.rows) == len(p.tf) for p in (self.chunks, self.pages)) \
            and len(self.pages.lengths) == pages \
            and (not len(self.chunk_page) or self.chunk_page.min() >= 0)  \
            and all(not len(p.rows) or int(p.rows.max()) < n
                    for p, n in ((self.chunks, len(self.chunk_page)), (self.pages, pages)))


@dataclass(frozen=True)
class Part:
    """One segment's postings as rows of a collection version, searched where they lie (not joined with
    the other segments' into one copy: that took 0.3 s at 1M chunks after an add, 7 s after a removal
    from the middle). Row r is at position `offset + r` (`new` None) or `new[r]` (-1: deleted); `df`:
    each term's number of live rows (None: all rows are live)."""

    postings: Postings
    new: np.ndarray | None = None
    offset: int = 0
    df: np.ndarray | None = None

    def live_df(self, terms: int) -> np.ndarray:
        """Each term's number of live rows, over a vocabulary of `terms`."""
        df = np.diff(self.postings.ptr) if self.df is None else self.df
        out = np.zeros(terms, np.int64)
        out[:min(len(df), terms)] = df[:terms]
        return out

    def live_lengths(self) -> np.ndarray:
        """The lengths of the live rows, in position order."""
        return self.postings.lengths if self.new is None else self.postings.lengths[self.new >= 0]

    def term_rows(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """The positions of the live rows holding term t, and its counts there."""
        p = self.postings
        if t + 1 >= len(p.ptr):
            return np.zeros(0, np.int64), np.zeros(0, np.uint16)
        lo, hi = p.ptr[t], p.ptr[t + 1]
        rows, tf = p.rows[lo:hi], p.tf[lo:hi]
        if self.new is None:
            return (rows + np.int64(self.offset) if self.offset else rows), tf
        positions = self.new[rows]
        keep = positions >= 0
        return positions[keep], tf[keep]


def dropped_df(counts_ptr: np.ndarray, counts_term: np.ndarray, dead: np.ndarray, live: np.ndarray) -> np.ndarray:
    """`live` (per term: rows holding it) minus the dead rows' terms, read from the row-major counts
    (CSR `counts_ptr`, `counts_term`) of the dead rows only."""
    rows = np.flatnonzero(dead)
    if not len(rows):
        return live
    _, terms, _ = csr_take(counts_ptr, (counts_term, counts_term), rows)
    return live - np.bincount(terms, minlength=len(live))[:len(live)]


def csr_take(ptr: np.ndarray, columns: tuple[np.ndarray, np.ndarray],
             rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows `rows` (ascending) of a CSR table (`ptr`, two value columns): runs of consecutive rows are
    copied as slices (dropping one document of 1M chunks: two runs, a memcpy), scattered rows gathered."""
    rows = np.asarray(rows, np.int64)
    lengths = np.diff(ptr)[rows]
    out_ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_ptr[1:])
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    if len(rows) and not len(breaks):  # one run (a document dropped from either end): views, no copy
        a, b = int(ptr[rows[0]]), int(ptr[rows[-1] + 1])
        return out_ptr, columns[0][a:b], columns[1][a:b]
    if not len(rows) or len(breaks) > len(rows) // 64:  # many short runs: gather
        picked = np.arange(out_ptr[-1], dtype=np.int64) + np.repeat(ptr[:-1][rows] - out_ptr[:-1], lengths)
        return out_ptr, columns[0][picked], columns[1][picked]
    spans = list(zip(ptr[rows[np.r_[0, breaks]]].tolist(), ptr[rows[np.r_[breaks - 1, -1]] + 1].tolist()))
    term, tf = (np.concatenate([c[a:b] for a, b in spans]) for c in columns)
    return out_ptr, term, tf


def other_rows(n: int, rows: np.ndarray) -> np.ndarray:
    """The positions in range(n) not in `rows` (ascending): a mask, not a sort (`np.setdiff1d` sorts)."""
    keep = np.ones(n, dtype=bool)
    keep[np.asarray(rows, np.int64)] = False
    return np.flatnonzero(keep)


def distinct(values: np.ndarray) -> np.ndarray:
    """`np.unique(values)`, without sorting when they are already in order (chunks come page by page)."""
    if len(values) < 2 or not np.all(values[1:] >= values[:-1]):
        return np.unique(values)
    return values[np.r_[True, values[1:] != values[:-1]]]


def row_lengths(row_ptr: np.ndarray, tf: np.ndarray) -> np.ndarray:
    """Each row's total count (a CSR row's sum), as float32."""
    running = np.r_[0, np.cumsum(tf, dtype=np.int64)]
    return (running[row_ptr[1:]] - running[row_ptr[:-1]]).astype(np.float32)


def _term_order(term: np.ndarray) -> np.ndarray:
    """The positions of `term` grouped by term, ascending within each group: a stable argsort,
    done as a sort of (term, position) keys (numpy's SIMD sort: ~2x faster at 6M entries)."""
    keys = (term.astype(np.int64) << 32) | np.arange(len(term), dtype=np.int64)
    keys.sort()
    return keys & 0xFFFFFFFF
