"""What keyword search knows of each page besides its terms, as arrays saved per generation.

Per page (in `lexical.page_groups` order, the row order of `Lexicon.pages`): its key (file,
page number), the share of its lines that are table-of-contents entries, the titles of the
sections that start on it (chunk metadata `outline`; agent.search.section_titles reads them), which
of them starts last and how much of the next page that section covers (`section_titles.continuation`).
Computing these takes a `Document` per chunk (~0.5 s per 10k chunks, and memory the allocator keeps),
so they are computed when chunks are added, saved as `pages-<gen>.npz` (numpy arrays, loaded without
pickle) and carried over from one generation to the next: loading a collection then builds no `Document`.
The titles' vectors (agent.search.title_vectors, stored on each titled page's first chunk at ingest) are kept here
as one float16 matrix, a row per title (zeros for titles ingested without one; no rows when no title has one).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from langchain_core.documents import Document

from agent.search.lexical import Lexicon, contents_share, page_groups, page_text
from agent.search.section_titles import continuation
from agent.search.title_vectors import TITLE_VECTORS, clean_title, decode

logger = logging.getLogger(__name__)


@dataclass
class PageTable:
    """Pages of one collection version: `files[file[p]]`, `number[p]`, `contents[p]`, and for the
    pages `titled` (ascending), their section titles (`titles`, each page's joined by a line break);
    `last[p]`, `continues[p]`: `section_titles.continuation` (absent in tables saved before: -1 and 0);
    `title_vectors`: a row per title, in `titles` order (no rows when none was embedded)."""

    files: list[str]
    file: np.ndarray      # int32 per page, a position in `files`
    number: np.ndarray    # int64 per page
    contents: np.ndarray  # float64 per page
    titled: np.ndarray    # int64, the pages that start sections
    titles: list[str]     # per titled page
    last: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))       # int32 per page
    continues: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))  # float64 per page
    title_vectors: np.ndarray = field(default_factory=lambda: _NO_VECTORS)  # float16, a row per title

    def __post_init__(self) -> None:
        if len(self.last) != self.rows or len(self.continues) != self.rows:
            self.last, self.continues = np.full(self.rows, -1, np.int32), np.zeros(self.rows, np.float64)
        if len(self.title_vectors) and len(self.title_vectors) != int(self.title_counts().sum()):
            logger.warning("ignoring title vectors that do not match the titles")
            self.title_vectors = _NO_VECTORS

    def title_counts(self) -> np.ndarray:
        """How many titles each titled page has."""
        return np.array([t.count("\n") + 1 for t in self.titles], np.int64)

    def title_owners(self) -> np.ndarray:
        """Per row of `title_vectors`: its page."""
        return np.repeat(self.titled, self.title_counts()) if len(self.title_vectors) else np.zeros(0, np.int64)

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
        titled = {p: [clean_title(t) for t in docs[rows[0]].metadata["outline"]]
                  for p, rows in enumerate(members) if docs[rows[0]].metadata.get("outline")}
        starts = {keys[p] for p in titled}  # their texts and their next pages' are read
        texts = [page_text([docs[i] for i in rows]) if key in starts or (key[0], key[1] - 1) in starts else ""
                 for key, rows in zip(keys, members)]
        last, continues = continuation(keys, texts, titled)
        return cls(files, np.array([file_pos[f] for f, _ in keys], np.int32),
                   np.array([n for _, n in keys], np.int64), contents_share(docs, members),
                   np.array(list(titled), np.int64), ["\n".join(titles) for titles in titled.values()],
                   last, continues, _gathered([decode(docs[members[p][0]].metadata.get(TITLE_VECTORS), len(titles))
                                               for p, titles in titled.items()], [len(t) for t in titled.values()]))

    def titles_by_page(self) -> dict[int, list[str]]:
        """Page -> the titles of the sections starting on it (pages that start none left out)."""
        return {p: text.split("\n") for p, text in zip(self.titled.tolist(), self.titles)}

    def take(self, rows: np.ndarray) -> PageTable:
        """Only these pages (ascending positions), in their order."""
        rows = np.asarray(rows, np.int64)
        at = np.minimum(np.searchsorted(rows, self.titled), max(len(rows) - 1, 0))
        kept = (at < len(rows)) & (rows[at] == self.titled) if len(rows) else np.zeros(len(self.titled), bool)
        vectors = self.title_vectors[np.repeat(kept, self.title_counts())] if len(self.title_vectors) else _NO_VECTORS
        return PageTable(self.files, self.file[rows], self.number[rows], self.contents[rows], at[kept],
                         [t for t, k in zip(self.titles, kept.tolist()) if k], self.last[rows], self.continues[rows],
                         vectors)

    def concat(self, other: PageTable) -> PageTable:
        """These pages followed by `other`'s (their file names merged)."""
        files = list(dict.fromkeys([*self.files, *other.files]))
        pos = {f: i for i, f in enumerate(files)}
        file_map = np.array([pos[f] for f in other.files], np.int32) if other.files else np.zeros(0, np.int32)
        return PageTable(files, np.concatenate([self.file, file_map[other.file]]),
                         np.concatenate([self.number, other.number]), np.concatenate([self.contents, other.contents]),
                         np.concatenate([self.titled, other.titled + self.rows]), [*self.titles, *other.titles],
                         np.concatenate([self.last, other.last]), np.concatenate([self.continues, other.continues]),
                         _gathered([self.title_vectors if len(self.title_vectors) else None,
                                    other.title_vectors if len(other.title_vectors) else None],
                                   [int(self.title_counts().sum()), int(other.title_counts().sum())]))

    # ---- files -------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, files=_joined(self.files), page_file=self.file, number=self.number, contents=self.contents,
                 titled=self.titled, titles=_joined(self.titles), last=self.last, continues=self.continues,
                 title_vectors=self.title_vectors)
        return buf.getvalue()

    @classmethod
    def load(cls, path: Path, pages: int) -> PageTable | None:
        """The saved table if it has `pages` rows and is whole, else None (then built from the chunks)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                files = _split(data["files"])
                table = cls(files, data["page_file"], data["number"], data["contents"], data["titled"],
                            _split(data["titles"]), *(data[k] for k in ("last", "continues", "title_vectors")
                                                      if k in data.files))
        except Exception as exc:  # noqa: BLE001 - zip, numpy and decode errors alike: rebuild
            if Path(path).exists():
                logger.warning("ignoring unreadable page table %s (%s)", path, exc)
            return None
        titled = table.titled
        if {len(table.file), len(table.number), len(table.contents)} != {pages} or len(titled) != len(table.titles) \
                or (pages and not 0 <= table.file.min() <= table.file.max() < len(files)) \
                or (len(titled) and not (0 <= titled[0] and titled[-1] < pages and np.all(np.diff(titled) > 0))):
            logger.warning("ignoring inconsistent page table %s", path)
            return None
        return table


def counts_from_chunks(documents: Sequence[Document], lexicon: Lexicon | None) -> tuple[Lexicon, PageTable]:
    """Term counts (`lexicon` when it fits) with each chunk's page, and the page table, read from the chunks."""
    docs = list(documents)  # made once for the build, then dropped
    pages = PageTable.build(docs)
    if lexicon is None or not lexicon.fits(docs, pages.rows):
        lexicon = Lexicon.build(docs)
    chunk_page = np.empty(len(docs), dtype=np.int64)
    for p, rows in enumerate(page_groups(docs)[1]):
        chunk_page[rows] = p
    return replace(lexicon, chunk_page=chunk_page), pages


_NO_VECTORS = np.zeros((0, 0), np.float16)


def _gathered(parts: Sequence[np.ndarray | None], rows: Sequence[int]) -> np.ndarray:
    """Parts of `rows[i]` title rows each stacked, a missing part as zeros (no rows when every part is missing,
    or when the parts disagree on the dimension: a table never mixes two models' vectors)."""
    dims = {p.shape[1] for p in parts if p is not None}
    if len(dims) != 1:
        return _NO_VECTORS
    dim = dims.pop()
    return np.concatenate([p.astype(np.float16) if p is not None else np.zeros((n, dim), np.float16)
                           for p, n in zip(parts, rows)])


def _joined(names: Sequence[str]) -> np.ndarray:
    """Names as one UTF-8 array, each ended by NUL (file names and titles never hold one)."""
    return np.frombuffer("".join(n + "\0" for n in names).encode("utf-8"), np.uint8)


def _split(data: np.ndarray) -> list[str]:
    return data.tobytes().decode("utf-8").split("\0")[:-1]
