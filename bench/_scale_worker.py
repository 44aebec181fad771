"""One measurement of bench.scale in a fresh process, against whichever tree is on PYTHONPATH
(this branch, or the baseline checked out into a temp dir), so it imports nothing from bench/ or
tests/ but its sibling `_scale_data` (the synthetic files; no `agent` import at load).

    python bench/_scale_worker.py '{"step": "build" | "measure", ...}'
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(sys.path.pop(0))  # this folder last: `agent` must come from PYTHONPATH

import numpy as np
from _scale_data import CHECKED_FILES, CHUNKS_PER_PAGE, DIM, PAGES_PER_FILE, Counted, Synthetic, entry
from langchain_core.embeddings import Embeddings

MODEL = "bench-scale"
MARK = "BENCH-RESULT "
ADDED = 10_000_000  # file numbers of the files added by `measure` (the collection's are 0, 1, ...)


class NoEmbeddings(Embeddings):
    """Vectors are given to the store directly; nothing here embeds."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise AssertionError("not used")

    def embed_query(self, text: str) -> list[float]:
        raise AssertionError("not used")


def build(spec: dict[str, Any]) -> dict[str, Any]:
    """Write a collection of spec['n'] chunks (files of 900) through the store's own save, with term
    counts and page table counted from the draws (`_scale_data`; checked on a sample with tokenize)."""
    from agent.search import vector_index
    from agent.search.chunk_table import ChunkTable
    from agent.search.store import Collection

    t0 = time.perf_counter()
    n, per_file, synthetic = spec["n"], PAGES_PER_FILE * CHUNKS_PER_PAGE, Synthetic()
    vectors = np.empty((n, DIM), np.float32)
    tables, infos, counted, raw = [], {}, Counted(synthetic), vectors.nbytes
    for f in range(-(-n // per_file)):
        draw = synthetic.file(f, min(per_file, n - f * per_file))
        vectors[f * per_file:f * per_file + draw.chunks] = draw.vectors
        info, chunks, _ = entry(draw)
        infos[info.doc_id] = info
        tables.append(ChunkTable.from_documents(chunks))
        raw += sum(len(t.encode("utf-8")) for t in draw.texts)
        counted.add(draw, check=f % CHECKED_FILES == 0)
    documents = ChunkTable.concat([(t, None) for t in tables])
    del tables
    drawn_s = time.perf_counter() - t0
    index = vector_index.build(vectors, DIM)
    del vectors
    lexicon, pages = counted.result()
    collection = Collection(Path(spec["data_dir"]), "docs", NoEmbeddings(), MODEL, rebuilding=True)
    with collection.writing():
        collection._save(index, documents, lexicon, pages, infos, DIM)  # the store's writer, counts given
    return {"write_s": time.perf_counter() - t0, "draw_s": drawn_s, "raw_mb": raw / 1e6,
            "checked_chunks": counted.checked}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Load, build the keyword index, then add and remove one 900-chunk file, remove one from the middle
    of the collection (the keyword index timed after each), then add `series` files in a row."""
    from agent.search.keyword_index import collection_index
    from agent.search.store import Collection

    per_file, synthetic = PAGES_PER_FILE * CHUNKS_PER_PAGE, Synthetic()
    added = entry(synthetic.file(ADDED, per_file, "added.pdf", "f" * 64))
    extras = [entry(synthetic.file(ADDED + 1 + k, per_file, f"series_{k}.pdf", f"{k:064x}"[::-1]))
              for k in range(spec.get("series", 0))]
    start = rss_mb()
    t0 = time.perf_counter()
    collection = Collection(Path(spec["data_dir"]), "docs", NoEmbeddings(), MODEL)
    load_s = time.perf_counter() - t0
    after_load = rss_mb()
    t0 = time.perf_counter()
    collection_index(collection)
    index_s = time.perf_counter() - t0
    after_index = rss_mb()
    t0 = time.perf_counter()
    with collection.writing():
        collection.add(*added, pdf=None)
    add_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    collection_index(collection)  # what the first search after the add waits for
    index_after_add_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with collection.writing():
        collection.remove("f" * 64)
    remove_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    collection_index(collection)
    index_after_remove_s = time.perf_counter() - t0
    middle = sorted(collection.infos.values(), key=lambda info: info.file)[len(collection.infos) // 2].doc_id
    t0 = time.perf_counter()
    with collection.writing():
        collection.remove(middle)  # from the middle of the first (biggest) segment
    remove_middle_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    collection_index(collection)
    index_after_remove_middle_s = time.perf_counter() - t0
    n = len(collection.documents)
    series = []  # adds in a row: past 8 segments, a merge (agent.search.store.MAX_SEGMENTS)
    for extra in extras:
        t0 = time.perf_counter()
        with collection.writing():
            collection.add(*extra, pdf=None)
        series.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    if hasattr(collection, "compaction_finished"):  # a background compaction started by the adds (this branch)
        collection.compaction_finished()
    compaction_wait_s = time.perf_counter() - t0
    return {"n": n, "load_s": load_s, "keyword_index_s": index_s, "add_s": add_s, "index_after_add_s": index_after_add_s, "series_s": series,
            "remove_s": remove_s, "index_after_remove_s": index_after_remove_s, "remove_middle_s": remove_middle_s,
            "index_after_remove_middle_s": index_after_remove_middle_s, "compaction_wait_s": compaction_wait_s, "rss_start_mb": start, "rss_after_load_mb": after_load,
            "rss_after_index_mb": after_index,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    result = build(job) if job["step"] == "build" else measure(job)
    sys.stdout.write(MARK + json.dumps(result) + "\n")
