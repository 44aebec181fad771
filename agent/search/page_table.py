"""What keyword search knows of each page besides its terms, as arrays saved per generation.

Per page (in `lexical.page_groups` order, the row order of `Lexicon.pages`): its key (file,
page number), the share of its lines that are table-of-contents entries, and the terms of
the outline titles that start on it. Computing these takes a `Document` per chunk (~0.5 s
per 10k chunks, and memory the allocator keeps), so they are computed when chunks are
added, saved as `pages-<gen>.npz` (numpy arrays, loaded without pickle) and carried over
from one generation to the next: loading a collection then builds no `Document`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from langchain_core.documents import Document

from agent.search.lexical import TermCounts, contents_share, page_groups, tokenize

logger = logging.getLogger(__name__)


@dataclass
class PageTable:
    """Pages of one collection version: `files[file[p]]`, `number[p]`, `contents[p]`, and the
    outline terms of page p, `outline_terms[outline.row(p)[0]]` (an own vocabulary)."""

    files: list[str]
    file: np.ndarray      # int32 per page, a position in `files`
    number: np.ndarray    # int64 per page
    contents: np.ndarray  # float64 per page
    outline_terms: list[str]
    outline: TermCounts   # per page: ids in `outline_terms` (count 1 each)

    @property
    def rows(self) -> int:
        return len(self.file)

    def keys(self) -> list[tuple[str, int]]:
        """(file, page) of every page, as `lexical.page_key` gives them."""
        return [(self.files[f], int(n)) for f, n in zip(self.file.tolist(), self.number.tolist())]

    @classmethod
    def build(cls, documents: Sequence[Document]) -> PageTable:
        """The table of `documents` (each chunk parsed once)."""
        docs = list(documents)
        keys, members = page_groups(docs)
        files = list(dict.fromkeys(f for f, _ in keys))
        file_pos = {f: i for i, f in enumerate(files)}
        terms: dict[str, int] = {}
        rows = []
        for rows_of_page in members:
            titles = docs[rows_of_page[0]].metadata.get("outline")
            ids = [terms.setdefault(t, len(terms)) for t in dict.fromkeys(tokenize(" ".join(titles)))] \
                if titles else []
            rows.append((np.array(ids, np.int32), np.ones(len(ids), np.uint16)))
        return cls(files, np.array([file_pos[f] for f, _ in keys], np.int32),
                   np.array([n for _, n in keys], np.int64), contents_share(docs, members), list(terms),
                   TermCounts.assemble(rows))

    def take(self, rows: np.ndarray) -> PageTable:
        """Only these pages (ascending positions), in their order."""
        return PageTable(self.files, self.file[rows], self.number[rows], self.contents[rows], self.outline_terms,
                         self.outline.take(rows))

    def concat(self, other: PageTable) -> PageTable:
        """These pages followed by `other`'s (their file names and outline terms merged)."""
        files = list(dict.fromkeys([*self.files, *other.files]))
        terms = list(dict.fromkeys([*self.outline_terms, *other.outline_terms]))
        file_map = _positions(other.files, files)
        term_map = _positions(other.outline_terms, terms)
        tail = TermCounts(other.outline.ptr, term_map[other.outline.term], other.outline.tf)
        return PageTable(files, np.concatenate([self.file, file_map[other.file]]),
                         np.concatenate([self.number, other.number]), np.concatenate([self.contents, other.contents]),
                         terms, self.outline.concat(tail))

    def outline_postings(self) -> dict[str, np.ndarray]:
        """Term -> the pages whose outline titles hold it."""
        if not len(self.outline.term):
            return {}
        page_of = np.repeat(np.arange(self.rows, dtype=np.int64), np.diff(self.outline.ptr))
        order = np.argsort(self.outline.term, kind="stable")
        bounds = np.searchsorted(self.outline.term[order], np.arange(len(self.outline_terms) + 1))
        pages = page_of[order]
        return {t: pages[bounds[i]:bounds[i + 1]] for i, t in enumerate(self.outline_terms)
                if bounds[i + 1] > bounds[i]}

    # ---- files -------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, files=_joined(self.files), page_file=self.file, number=self.number, contents=self.contents,
                 outline_terms=_joined(self.outline_terms), outline_ptr=self.outline.ptr,
                 outline_term=self.outline.term)
        return buf.getvalue()

    @classmethod
    def load(cls, path: Path, pages: int) -> PageTable | None:
        """The saved table if it has `pages` rows and is whole, else None (then built from the chunks)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                files, terms = _split(data["files"]), _split(data["outline_terms"])
                ptr, term = data["outline_ptr"], data["outline_term"]
                table = cls(files, data["page_file"], data["number"], data["contents"], terms,
                            TermCounts(ptr, term, np.ones(len(term), np.uint16)))
        except Exception as exc:  # noqa: BLE001 - zip, numpy and decode errors alike: rebuild
            if Path(path).exists():
                logger.warning("ignoring unreadable page table %s (%s)", path, exc)
            return None
        sizes = {len(table.file), len(table.number), len(table.contents), table.outline.rows}
        if sizes != {pages} or ptr.ndim != 1 or (pages and not 0 <= table.file.min() <= table.file.max() < len(files)) \
                or ptr[-1] != len(term) or (len(term) and not 0 <= term.min() <= term.max() < len(terms)):
            logger.warning("ignoring inconsistent page table %s", path)
            return None
        return table


def _positions(names: Sequence[str], within: Sequence[str]) -> np.ndarray:
    pos = {n: i for i, n in enumerate(within)}
    return np.array([pos[n] for n in names], np.int32) if names else np.zeros(0, np.int32)


def _joined(names: Sequence[str]) -> np.ndarray:
    """Names as one UTF-8 array, each ended by NUL (file names and terms never hold one)."""
    return np.frombuffer("".join(n + "\0" for n in names).encode("utf-8"), np.uint8)


def _split(data: np.ndarray) -> list[str]:
    return data.tobytes().decode("utf-8").split("\0")[:-1]
