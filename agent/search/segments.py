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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import reduce
from pathlib import Path
from typing import Any, BinaryIO

import faiss
import numpy as np
from langchain_core.documents import Document

from agent._files import atomic_write
from agent.search import vector_index
from agent.search.chunk_table import ChunkTable, DocumentRows
from agent.search.lexical import Lexicon, Vocabulary
from agent.search.page_table import PageTable
from agent.search.postings import Part, Postings, SegmentPostings, dropped_df

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
    #: its rows' term counts (over the vocabulary as of its save) and its pages: kept per segment, so an
    #: add touches only its own (None when unreadable: the collection's counts are then rebuilt)
    counts: Lexicon | None = None
    page_table: PageTable | None = None

    @property
    def dead(self) -> int:
        return sum(b - a for a, b in self.deleted)

    def live_mask(self) -> np.ndarray:
        return ~_mask(self.deleted, len(self.table))

    def live_pages(self) -> np.ndarray | None:
        """Per page of its own: whether a live chunk is on it (None without its counts)."""
        if self.counts is None or self.counts.chunk_page is None:
            return None
        alive = np.zeros(self.counts.pages.rows, dtype=bool)
        alive[self.counts.chunk_page[self.live_mask()]] = True
        return alive

    def splits_a_page(self) -> bool:
        """Whether a deleted chunk shares a page with a live one (then that page's counts are wrong)."""
        alive = self.live_pages()
        if alive is None:
            return True
        dead = self.counts.chunk_page[~self.live_mask()]  # type: ignore[union-attr]
        return bool(alive[dead].any())

    def file_rows(self, files: set[str]) -> np.ndarray | None:
        """Its rows (live or not) on pages of these files, from its page table (None without one)."""
        if self.page_table is None or self.counts is None or self.counts.chunk_page is None:
            return None
        ids = [i for i, f in enumerate(self.page_table.files) if f in files]
        if not ids:
            return np.zeros(0, np.int64)
        return np.flatnonzero(np.isin(self.page_table.file, ids)[self.counts.chunk_page])

    def live_counts(self) -> Lexicon | None:
        """Its live rows' term counts (None without them, or when a deleted chunk shares a page with a live one)."""
        if self.counts is None or not self.deleted:
            return self.counts
        return self.counts.without(np.flatnonzero(~self.live_mask()))

    def live_page_table(self) -> PageTable | None:
        """The pages of its live rows (None without its page table)."""
        alive = self.live_pages()
        if self.page_table is None or alive is None:
            return None
        return self.page_table if not self.deleted else self.page_table.take(np.flatnonzero(alive))

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

    def tail(self, start: int) -> tuple[list[tuple[ChunkTable, np.ndarray]], np.ndarray, Lexicon | None,
                                        PageTable | None]:
        """The live rows of the segments from `start` on (to merge them into one): their tables and
        rows, vectors, term counts and pages (None when a segment has none)."""
        parts = [(seg.table, self.rows_of(s)) for s, seg in enumerate(self.segments) if s >= start]
        vectors = [vector_index.all_vectors(seg.index)[rows] for (_, rows), seg in zip(parts, self.segments[start:])]
        lexicon, pages = joined_counts(self.segments[start:])
        return (parts, np.vstack(vectors) if vectors else np.zeros((0, self.segments[0].index.d), np.float32),
                lexicon, pages)

    def has_file(self, files: set[str]) -> bool:
        """Whether a live chunk comes from one of these files (read from the page tables; True when unknown)."""
        for seg in self.segments:
            rows = seg.file_rows(files)
            if rows is None or seg.live_mask()[rows].any():
                return True
        return False

    def rows_with(self, key: str, values: set[str], files: set[str] | None = None) -> np.ndarray:
        """Ascending positions of the live chunks whose metadata[key] is one of `values`; `files`: the
        files holding them, if known (only the span of their rows is scanned, found from the page tables)."""
        found = []
        for seg, start in zip(self.segments, self.starts.tolist()):
            rows = None if files is None else seg.file_rows(files)
            if rows is not None and not len(rows):
                continue
            span = None if rows is None else (int(rows[0]), int(rows[-1]) + 1)
            found.append(self.position[seg.table.rows_with(key, values, span) + start])
        positions = np.concatenate(found) if found else np.zeros(0, np.int64)
        return np.sort(positions[positions >= 0])


def joined_counts(segments: Sequence[Segment]) -> tuple[Lexicon | None, PageTable | None]:
    """The term counts and page table of these segments' live rows, end to end (None when a segment
    has none, or deleted chunks share pages with live ones)."""
    lexicon, pages = _chained([seg.live_counts() for seg in segments]), joined_pages(segments)
    return (lexicon, pages) if lexicon is not None and pages is not None else (None, None)


def joined_pages(segments: Sequence[Segment]) -> PageTable | None:
    """The page table of these segments' live rows (None when a segment has none)."""
    return _chained([seg.live_page_table() for seg in segments])


def _chained(parts: Sequence[Any]) -> Any:
    """The parts (term counts or page tables, each with `concat`) end to end; None when there are none
    or one is None."""
    if not parts or any(p is None for p in parts):
        return None
    return reduce(lambda head, more: head.concat(more), parts)


def keyword_parts(segments: Sequence[Segment]) -> tuple[list[Part], list[Part], np.ndarray, Vocabulary] | None:
    """The saved BM25 postings of these segments as parts of one version's chunk and page indexes
    (agent.search.postings.Part), the page position of each live chunk, and the vocabulary; None when a
    segment has no postings or counts (then the keyword index is made from the joined counts)."""
    if not segments or any(seg.postings is None or seg.counts is None for seg in segments):
        return None
    layout, chunk_parts, page_parts, chunk_pages, pages = Layout(segments), [], [], [], 0
    for seg, start in zip(segments, layout.starts.tolist()):
        post, counts = seg.postings, seg.counts
        assert post is not None and counts is not None
        own = len(post.pages.lengths)
        if not seg.deleted:
            chunk_parts.append(Part(post.chunks, None, int(layout.position[start]) if len(seg.table) else 0))
            page_parts.append(Part(post.pages, None, pages))
            chunk_pages.append(post.chunk_page.astype(np.int64) + pages)
            pages += own
            continue
        live, alive = seg.live_mask(), seg.live_pages()
        assert alive is not None and len(alive) == own
        new_pages = np.where(alive, pages + np.cumsum(alive) - 1, -1)
        chunk_parts.append(Part(post.chunks, layout.position[start:start + len(seg.table)], 0,
                                dropped_df(counts.chunks.ptr, counts.chunks.term, ~live, np.diff(post.chunks.ptr))))
        page_parts.append(Part(post.pages, new_pages, 0,
                               dropped_df(counts.pages.ptr, counts.pages.term, ~alive, np.diff(post.pages.ptr))))
        chunk_pages.append(new_pages[post.chunk_page[live]])
        pages += int(alive.sum())
    return chunk_parts, page_parts, np.concatenate(chunk_pages), segments[-1].counts.vocabulary  # type: ignore[union-attr]


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
        return self.layout.rows_with(key, values)

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


def read_counts(folder: Path, segments: Sequence[Segment]) -> list[Segment]:
    """The segments with their term counts and page tables read from their files; from the first one
    missing, damaged or not fitting its chunks on, without (the collection's counts are then rebuilt)."""
    out: list[Segment] = []
    vocabulary: Vocabulary | None = None
    for seg in segments:
        counts = Lexicon.load(folder / f"lexicon-{seg.generation}.npz", vocabulary)
        pages = None if counts is None else PageTable.load(folder / f"pages-{seg.generation}.npz", counts.pages.rows)
        if counts is None or pages is None or counts.chunks.rows != len(seg.table) or counts.chunk_page is None:
            return out + list(segments[len(out):])
        vocabulary = counts.vocabulary
        out.append(replace(seg, counts=counts, page_table=pages))
    return out


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
    # each file is made when its turn comes and the index is streamed: never all of a segment's bytes at once
    fills = [lambda handle: faiss.write_index(index, faiss.PyCallbackIOWriter(handle.write)),
             *(_put(lambda data=data: data) for data in columns), _put(lambda: lexicon.to_bytes(vocab_from)),
             _put(pages.to_bytes), None if postings is None else _put(postings.to_bytes)]
    for path, fill in zip(segment_files(folder, gen), fills):
        if fill is not None:
            written.append(path)
            atomic_write(path, fill)
    mapped = ChunkTable.load(*segment_files(folder, gen)[1:3])  # mapped: the copy in memory goes
    return Segment(gen, mapped, index, ChunkTable.checksums(columns), vocab_from=vocab_from, postings=postings,
                   counts=lexicon, page_table=pages)


def _put(make: Callable[[], bytes]) -> Callable[[BinaryIO], object]:
    """A file filler writing the bytes `make` returns, made when the file is written."""
    return lambda handle: handle.write(make())


def _chunk_from_json(line: str) -> Document:
    """One chunk of a format-1 chunks file."""
    data = json.loads(line)
    return Document(page_content=data["text"], metadata=data["metadata"], id=data["id"])
