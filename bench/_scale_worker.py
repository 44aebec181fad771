"""One measurement of bench.scale in a fresh process, against whichever tree is on PYTHONPATH
(this branch, or main checked out into a temp dir), so it imports nothing from bench/ or tests/.

    python bench/_scale_worker.py '{"step": "build" | "measure", ...}'
"""

from __future__ import annotations

import json
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.pop(0)  # this folder: `agent` must come from PYTHONPATH

import numpy as np  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402

DIM = 512
PAGES_PER_FILE = 300
CHUNKS_PER_PAGE = 3
MODEL = "bench-scale"
MARK = "BENCH-RESULT "


class NoEmbeddings(Embeddings):
    """Vectors are given to the store directly; nothing here embeds."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise AssertionError("not used")

    def embed_query(self, text: str) -> list[float]:
        raise AssertionError("not used")


def _words(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(30_000)]


def _text(rng: random.Random, words: list[str], weights: list[float]) -> str:
    """400-800 characters: Zipf-distributed words, one chunk in five Chinese."""
    n = rng.randint(400, 800)
    if rng.random() < 0.2:
        return "".join(chr(0x4E00 + int(rng.paretovariate(1.2)) % 3000) for _ in range(n // 2))
    return " ".join(rng.choices(words, weights, k=n // 7))[:n]


def entry(name: str, doc_id: str, n_chunks: int, rng: random.Random, nrng: np.random.Generator) -> tuple:
    """(DocumentInfo, chunks, vectors) of one synthetic file with the metadata our chunker writes."""
    from agent.search.store import DocumentInfo

    words = _words(random.Random(7))
    weights = [1 / (i + 1) for i in range(len(words))]
    chunks = []
    for i in range(n_chunks):
        page, k = i // CHUNKS_PER_PAGE + 1, i % CHUNKS_PER_PAGE
        cid = f"{doc_id}:{page}:{k}"
        chunks.append(Document(page_content=_text(rng, words, weights), id=cid, metadata={
            "file": name, "page": page, "doc_id": doc_id, "chunk_id": cid, "ocr": False, "start": k * 600}))
    vectors = nrng.standard_normal((n_chunks, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    info = DocumentInfo(doc_id=doc_id, file=name, pages=(n_chunks + CHUNKS_PER_PAGE - 1) // CHUNKS_PER_PAGE,
                        chunks=n_chunks, size=sum(len(c.page_content) for c in chunks), added="2026-01-01T00:00:00")
    return info, chunks, vectors


def build(spec: dict[str, Any]) -> dict[str, Any]:
    """Write a collection of spec['n'] chunks (files of 900) with the store on PYTHONPATH."""
    from agent.search.store import Collection

    rng, nrng = random.Random(spec["n"]), np.random.default_rng(spec["n"])
    per_file = PAGES_PER_FILE * CHUNKS_PER_PAGE
    entries = [entry(f"file_{f:05d}.pdf", f"{f:064x}", min(per_file, spec["n"] - f * per_file), rng, nrng)
               for f in range(-(-spec["n"] // per_file))]
    raw = sum(len(c.page_content.encode()) for _, chunks, _ in entries for c in chunks) + spec["n"] * DIM * 4
    t0 = time.perf_counter()
    collection = Collection(Path(spec["data_dir"]), "docs", NoEmbeddings(), MODEL, rebuilding=True)
    with collection.writing():
        collection.replace_all(entries, DIM)
    return {"write_s": time.perf_counter() - t0, "raw_mb": raw / 1e6}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Load, build the keyword index, then add and remove one 900-chunk file."""
    from agent.search.retrieval import collection_index
    from agent.search.store import Collection

    start = rss_mb()
    t0 = time.perf_counter()
    collection = Collection(Path(spec["data_dir"]), "docs", NoEmbeddings(), MODEL)
    load_s = time.perf_counter() - t0
    after_load = rss_mb()
    t0 = time.perf_counter()
    collection_index(collection)
    index_s = time.perf_counter() - t0
    after_index = rss_mb()
    extra = entry("added.pdf", "f" * 64, PAGES_PER_FILE * CHUNKS_PER_PAGE, random.Random(99), np.random.default_rng(99))
    t0 = time.perf_counter()
    with collection.writing():
        collection.add(*extra, pdf=None)
    add_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with collection.writing():
        collection.remove("f" * 64)
    remove_s = time.perf_counter() - t0
    n = len(collection.documents)
    series = []  # adds in a row: past 8 segments, a merge (agent.search.store.MAX_SEGMENTS)
    for k in range(spec.get("series", 0)):
        extra = entry(f"series_{k}.pdf", f"{k:064x}"[::-1], PAGES_PER_FILE * CHUNKS_PER_PAGE, random.Random(k),
                      np.random.default_rng(k))
        t0 = time.perf_counter()
        with collection.writing():
            collection.add(*extra, pdf=None)
        series.append(time.perf_counter() - t0)
    return {"n": n, "load_s": load_s, "keyword_index_s": index_s, "add_s": add_s, "series_s": series,
            "remove_s": remove_s, "rss_start_mb": start, "rss_after_load_mb": after_load,
            "rss_after_index_mb": after_index,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    result = build(job) if job["step"] == "build" else measure(job)
    sys.stdout.write(MARK + json.dumps(result) + "\n")
