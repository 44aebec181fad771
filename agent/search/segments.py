"""A collection version as append-only segments with deletion markers (issue 19.5).

Rewriting a whole collection to add one document costs time in proportion to the collection
(51 s at 1M chunks). So a save that adds a document to a big collection writes only that
document's segment (its FAISS index, chunk columns, term counts and page table, named by the
generation that wrote them), and a removal writes only the manifest, which marks the removed
rows of their segment as deleted. Readers see the live rows of all segments as one sequence:
`SegmentedTable` (the chunks) and `SegmentedIndex` (the vectors, searched segment by segment).
agent.search.store compacts them into one segment when there are many or much is deleted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from langchain_core.documents import Document

from agent._files import atomic_write_bytes
from agent.search import vector_index
from agent.search.chunk_table import ChunkTable, DocumentRows
from agent.search.lexical import Lexicon
from agent.search.page_table import PageTable
from agent.search.postings import Postings, SegmentPostings, distinct, join

#: an add merges the last segments into its own while each holds at most this many times the rows
#: merged so far (`merge_start`)
MERGE_RATIO = 2
#: the files of one segment, by the generation that wrote it
FILE_PATTERNS = ("index-{}.faiss", "chunks-{}.npy", "chunk-offsets-{}.npy", "lexicon-{}.npz", "pages-{}.npz",
                 "postings-{}.npy")


@dataclass(frozen=True)
class Segment:
    """Rows written by the save of `generation`, of which the row ranges in `deleted` were removed since."""

    generation: int
    table: ChunkTable
    index: Any  # FAISS, one vector per row in row order
    checksums: dict[str, int]
    deleted: tuple[tuple[int, int], ...] = ()
    vocab_from: int = 0  # its term counts' first own term (earlier ones are the segments' before it)
    postings: SegmentPostings | None = None  # its BM25 postings (None: made from the term counts when needed)

    @property
    def dead(self) -> int:
        return sum(b - a for a, b in self.deleted)

    def entry(self) -> dict[str, Any]:
        """The segment as the manifest lists it."""
        return {"generation": self.generation, "rows": len(self.table), "chunks": self.checksums,
                "deleted": [list(r) for r in self.deleted], "vocab_from": self.vocab_from}


class Layout:
    """The live rows of segments numbered as one sequence: position -> (segment, row) and back."""

    def __init__(self, segments: Sequence[Segment]) -> None:
        self.segments = tuple(segments)
        self.starts = np.cumsum([0] + [len(s.table) for s in segments], dtype=np.int64)
        dead = np.zeros(int(self.starts[-1]), dtype=bool)
        for seg, start in zip(segments, self.starts.tolist()):
            for a, b in seg.deleted:
                dead[start + a:start + b] = True
        self.live = np.flatnonzero(~dead)  # position -> raw row (rows of all segments end to end)
        self.position = np.full(len(dead), -1, dtype=np.int64)  # raw row -> position, -1 when deleted
        self.position[self.live] = np.arange(len(self.live))

    def __len__(self) -> int:
        return len(self.live)

    def locate(self, position: int) -> tuple[int, int]:
        raw = int(self.live[position])
        s = int(np.searchsorted(self.starts, raw, side="right")) - 1
        return s, raw - int(self.starts[s])

    def rows_of(self, s: int, positions: np.ndarray | None = None) -> np.ndarray:
        """Segment s's rows that are live (and among `positions`, ascending, when given)."""
        raw = self.live[(self.live >= self.starts[s]) & (self.live < self.starts[s + 1])] if positions is None \
            else self.live[positions]
        return raw[(raw >= self.starts[s]) & (raw < self.starts[s + 1])] - self.starts[s]

    def with_deleted(self, positions: np.ndarray) -> list[Segment]:
        """The segments with the rows at these positions marked deleted too."""
        out = []
        for s, seg in enumerate(self.segments):
            rows = self.rows_of(s, positions)
            out.append(seg if not len(rows) else replace(seg, deleted=_ranges(seg.deleted, rows)))
        return out

    def tail(self, start: int, lexicon: Lexicon, pages: PageTable) -> tuple[list[tuple[ChunkTable, np.ndarray]],
                                                                          np.ndarray, Lexicon, PageTable]:
        """The live rows of the segments from `start` on (to merge them into one): their tables and
        rows, vectors, and the part of `lexicon` / `pages` (those of all live rows) that is theirs."""
        first = sum(len(self.rows_of(s)) for s in range(start))
        first_pages = int(lexicon.chunk_page[:first].max()) + 1 if first and lexicon.chunk_page is not None else 0
        parts = [(seg.table, self.rows_of(s)) for s, seg in enumerate(self.segments) if s >= start]
        vectors = [vector_index.all_vectors(seg.index)[rows] for (_, rows), seg in zip(parts, self.segments[start:])]
        return (parts, np.vstack(vectors) if vectors else np.zeros((0, self.segments[0].index.d), np.float32),
                lexicon.rows_from(first, first_pages), pages.take(np.arange(first_pages, pages.rows)))


def keyword_postings(segments: Sequence[Segment], lexicon: Lexicon) -> tuple[Postings, Postings] | None:
    """The saved BM25 postings of the live chunks and pages of these segments, numbered as `lexicon`
    (theirs) numbers them; None when a segment has none or they do not fit `lexicon`."""
    if not segments or any(seg.postings is None for seg in segments):
        return None
    layout, chunk_parts, page_parts, pages = Layout(segments), [], [], 0
    for seg, start in zip(segments, layout.starts.tolist()):
        post = seg.postings
        assert post is not None
        own = int(post.chunk_page.max()) + 1 if len(post.chunk_page) else 0
        if not seg.deleted:
            chunk_parts.append((post.chunks, None, int(layout.position[start]) if len(seg.table) else 0))
            page_parts.append((post.pages, None, pages))
            pages += own
            continue
        new_rows = layout.position[start:start + len(seg.table)]
        alive = np.zeros(own, dtype=bool)
        alive[post.chunk_page[new_rows >= 0]] = True
        chunk_parts.append((post.chunks, new_rows, 0))
        page_parts.append((post.pages, np.where(alive, pages + np.cumsum(alive) - 1, -1), 0))
        pages += int(alive.sum())
    if len(layout) != lexicon.chunks.rows or pages != lexicon.pages.rows:
        return None
    terms = len(lexicon.vocabulary)
    return join(chunk_parts, terms), join(page_parts, terms)


def merge_start(live_rows: Sequence[int], added: int, max_segments: int) -> int:
    """Which segments an add of `added` rows merges into its own (those from the position returned;
    `len(live_rows)`: none, 0: all): each one whose rows are at most twice those merged so far, and
    as many as keep the count within `max_segments`. Sizes then fall geometrically, as the digits of
    a binary counter: a row is rewritten O(log n) times, and all of them when the others reach half
    the first (a whole compaction, as rare as the collection doubles)."""
    start, merged = len(live_rows), added
    while added and start > 0 and (live_rows[start - 1] <= MERGE_RATIO * merged or start + 1 > max_segments):
        start -= 1
        merged += live_rows[start]
    return start


def deleted_since(base: Sequence[Segment], now: Sequence[Segment]) -> tuple[tuple[int, int], ...]:
    """The rows of `base`'s segments deleted since (in `now`, the same segments later), as ranges of
    `base`'s live positions: the rows of a compaction of `base` to mark deleted."""
    layout = Layout(base)
    gone = [layout.position[start + np.flatnonzero(_mask(new.deleted, len(old.table)) & ~_mask(old.deleted, len(old.table)))]
            for old, new, start in zip(base, now, layout.starts.tolist())]
    positions = np.concatenate(gone) if gone else np.zeros(0, np.int64)
    return _ranges((), positions) if len(positions) else ()


def _mask(deleted: Sequence[tuple[int, int]], rows: int) -> np.ndarray:
    mask = np.zeros(rows, dtype=bool)
    for a, b in deleted:
        mask[a:b] = True
    return mask


def _ranges(deleted: Sequence[tuple[int, int]], rows: np.ndarray) -> tuple[tuple[int, int], ...]:
    """`deleted` plus `rows`, as sorted, merged [start, end) ranges."""
    mask = _mask(deleted, max([int(rows.max()) + 1, *(b for _, b in deleted)]))
    mask[rows] = True
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return tuple((int(a), int(b)) for a, b in zip(edges[::2], edges[1::2]))


class SegmentedTable(DocumentRows):
    """The live chunks of several segments as one read-only sequence (`Document`s made on access)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def __len__(self) -> int:
        return len(self.layout)

    def _document(self, i: int) -> Document:
        s, row = self.layout.locate(i)
        return self.layout.segments[s].table[row]

    def __iter__(self) -> Iterator[Document]:
        for s, seg in enumerate(self.layout.segments):
            for row in self.layout.rows_of(s).tolist():
                yield seg.table[row]

    def rows_with(self, key: str, values: set[str]) -> np.ndarray:
        """Ascending positions of the live chunks whose metadata[key] is one of `values`."""
        found = [self.layout.position[seg.table.rows_with(key, values) + start]
                 for seg, start in zip(self.layout.segments, self.layout.starts.tolist())]
        positions = np.concatenate(found) if found else np.zeros(0, np.int64)
        return np.sort(positions[positions >= 0])

    def parts(self, positions: np.ndarray | None = None) -> list[tuple[ChunkTable, np.ndarray]]:
        """(table, rows) of each segment holding the live chunks at `positions` (ascending; None:
        all), for `ChunkTable.concat`: copied as runs of bytes, nothing decoded."""
        return [(seg.table, self.layout.rows_of(s, positions)) for s, seg in enumerate(self.layout.segments)]


class SegmentedIndex:
    """The segments' FAISS indexes searched as one over the live rows: the part of FAISS' index
    interface the vector store and search use (`search`, `ntotal`, `d`, `reconstruct_*`)."""

    def __init__(self, layout: Layout, dimension: int) -> None:
        self.layout = layout
        self.d = dimension
        self.ntotal = len(layout)

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each segment's best k + its deleted rows, the deleted dropped, the best k of all kept."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        scores, labels = [np.full((len(x), k), -np.inf, np.float32)], [np.full((len(x), k), -1, np.int64)]
        for seg, start in zip(self.layout.segments, self.layout.starts.tolist()):
            if seg.index.ntotal:
                sim, rows = seg.index.search(x, min(seg.index.ntotal, k + seg.dead))
                pos = np.where(rows >= 0, self.layout.position[np.maximum(rows, 0) + start], -1)
                scores.append(np.where(pos >= 0, sim, -np.inf).astype(np.float32))
                labels.append(pos)
        sim, pos = np.hstack(scores), np.hstack(labels)
        best = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        sim, pos = np.take_along_axis(sim, best, 1), np.take_along_axis(pos, best, 1)
        return sim, np.where(np.isfinite(sim), pos, -1)

    def reconstruct_batch(self, positions: np.ndarray) -> np.ndarray:
        out = np.zeros((len(positions), self.d), np.float32)
        for i, p in enumerate(np.asarray(positions).tolist()):
            s, row = self.layout.locate(p)
            out[i] = self.layout.segments[s].index.reconstruct(row)
        return out

    def reconstruct_n(self, start: int, n: int) -> np.ndarray:
        """The live vectors at positions start..start+n (in position order)."""
        parts = [vector_index.all_vectors(seg.index)[self.layout.rows_of(s)]
                 for s, seg in enumerate(self.layout.segments)]
        vectors = np.vstack(parts) if parts else np.zeros((0, self.d), np.float32)
        return vectors[start:start + n]


# ---- files -----------------------------------------------------------------------------------
def segment_files(folder: Path, generation: int) -> list[Path]:
    return [folder / pattern.format(generation) for pattern in FILE_PATTERNS]


def entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's segments (format 3; a format-1 or 2 generation is one segment). Raises
    ValueError when malformed."""
    if manifest["format"] < 3:
        return [{"generation": manifest["generation"], "chunks": manifest.get("chunks"), "deleted": []}]
    found = manifest.get("segments")
    if not isinstance(found, list) or not found or not all(
            isinstance(e, dict) and isinstance(e.get("generation"), int) and isinstance(e.get("chunks"), dict)
            and isinstance(e.get("deleted"), list) for e in found):
        raise ValueError("its segment list is missing or invalid")
    return found


def read_segment(folder: Path, entry: dict[str, Any], legacy: bool) -> Segment:
    """One segment's index and chunk columns (memory-mapped); `legacy`: chunks as format-1 JSON lines
    (kept in memory, no checksums: the next save rewrites them). Raises ValueError/OSError when damaged."""
    gen = entry["generation"]
    index_file, chunks_file, offsets_file = segment_files(folder, gen)[:3]
    index = vector_index.prepare(faiss.read_index(str(index_file)))  # from the file: no 2 GB copy at 1M chunks
    if legacy:
        lines = (folder / f"chunks-{gen}.jsonl").read_text(encoding="utf-8").splitlines()
        table = ChunkTable.from_documents([_chunk_from_json(line) for line in lines if line.strip()])
    elif not isinstance(entry.get("chunks"), dict):
        raise ValueError("the manifest has no chunk checksums")
    else:
        table = ChunkTable.load(chunks_file, offsets_file, checksums=entry["chunks"])
    if index.ntotal != len(table):
        raise ValueError(f"the index holds {index.ntotal} vectors for {len(table)} chunks")
    deleted = tuple((int(a), int(b)) for a, b in entry["deleted"])
    if any(not 0 <= a < b <= len(table) for a, b in deleted):
        raise ValueError("its deleted rows are out of range")
    postings = None if legacy else SegmentPostings.load(segment_files(folder, gen)[5], len(table))
    return Segment(gen, table, index, {} if legacy else dict(entry["chunks"]), deleted, int(entry.get("vocab_from", 0)),
                   postings)


def read_counts(folder: Path, layout: Layout) -> tuple[Lexicon | None, PageTable | None]:
    """The live rows' term counts and page table, joined from the segments' files; None for the
    page table (or both) when some file is missing or damaged (then rebuilt from the chunks)."""
    lexicon: Lexicon | None = None
    pages: PageTable | None = None
    for seg in layout.segments:
        before = lexicon.pages.rows if lexicon is not None else 0
        lexicon = Lexicon.load(folder / f"lexicon-{seg.generation}.npz", lexicon)
        if lexicon is None:
            return None, None
        part = PageTable.load(folder / f"pages-{seg.generation}.npz", lexicon.pages.rows - before)
        pages = None if part is None or (pages is None and before) else part if pages is None else pages.concat(part)
    if lexicon is None or lexicon.chunks.rows != len(layout.position):
        return None, None
    dead = np.flatnonzero(layout.position < 0)
    if len(dead):
        if lexicon.chunk_page is None:
            return None, None
        pages = None if pages is None else pages.take(distinct(lexicon.chunk_page[layout.live]))
        lexicon = lexicon.without(dead)
    return lexicon, pages if lexicon is not None else None


def write_segment(folder: Path, gen: int, index: Any, table: ChunkTable, counts: tuple[Lexicon, int, PageTable],
                  written: list[Path]) -> Segment:
    """Write a segment's files (each atomically, listed in `written` as they land, for the caller to
    delete if the commit fails); `counts`: its term counts, the first of their terms that is new
    (earlier ones are the segments' before it), and its page table."""
    lexicon, vocab_from, pages = counts
    columns = table.files_bytes()
    postings = None if lexicon.chunk_page is None else SegmentPostings(
        *(Postings.of(c.ptr, c.term, c.tf, len(lexicon.vocabulary)) for c in (lexicon.chunks, lexicon.pages)),
        lexicon.chunk_page)
    contents = [faiss.serialize_index(index).tobytes(), *columns, lexicon.to_bytes(vocab_from), pages.to_bytes(),
                postings.to_bytes() if postings is not None else None]
    for path, data in zip(segment_files(folder, gen), contents):
        if data is not None:
            written.append(path)
            atomic_write_bytes(path, data)
    mapped = ChunkTable.load(*segment_files(folder, gen)[1:3])  # mapped: the copy in memory goes
    return Segment(gen, mapped, index, ChunkTable.checksums(columns), vocab_from=vocab_from, postings=postings)


def _chunk_from_json(line: str) -> Document:
    """One chunk of a format-1 chunks file."""
    data = json.loads(line)
    return Document(page_content=data["text"], metadata=data["metadata"], id=data["id"])
