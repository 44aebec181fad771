"""Section titles by meaning: each title's vector, embedded at ingest, and the question's best title cosine per page.

A question often paraphrases the heading that answers it ("How do I make a font bold?" for "Font weight"), which
the lexical title match cannot see. The titles of the sections starting on a page (chunk metadata `outline`) are
embedded with the chunks, by the same model, and stored on the page's first chunk (`TITLE_VECTORS`, float16 in
base64), so every store (FAISS segments, compaction, PostgreSQL) keeps them with no schema of their own;
`page_table.PageTable` gathers them into one matrix. The signal `title_sem` is max(cosine - floor, 0) of the
page's best title. The floor is a cosine of one model (`FLOORS`); a model without a measured floor, and a
collection ingested before titles had vectors, gets no signal and ranks as before (bench/README.md 4h).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
from langchain_core.documents import Document

from agent.search.embeddings import LOCAL_MODEL_ID
from agent.search.lexical import page_groups

TITLE_VECTORS = "outline_vectors"  # chunk metadata key: the page's title vectors (float16, base64, outline order)
#: embedding model id -> the cosine above which a title counts (chosen by leave-one-document-out CV, bench/cv_sweep)
FLOORS: dict[str, float] = {LOCAL_MODEL_ID: 0.7}
TOP = 1024  # titles a question reads first; more only while the last one read could still pass the floor


def clean_title(title: object) -> str:
    """A title as the page table keeps it (whitespace runs made one space)."""
    return " ".join(str(title).split())


def titled_firsts(chunks: Sequence[Document]) -> list[int]:
    """Positions of the first chunk of every page that starts sections (the chunk the page table reads)."""
    return [rows[0] for rows in page_groups(chunks)[1] if chunks[rows[0]].metadata.get("outline")]


def titles_to_embed(chunks: Sequence[Document]) -> list[str]:
    """The titles of every titled page, in `titled_firsts` order, one text per title."""
    return [clean_title(t) for i in titled_firsts(chunks) for t in chunks[i].metadata["outline"]]


def attach(chunks: Sequence[Document], vectors: np.ndarray) -> None:
    """Store `vectors` (rows in `titles_to_embed` order) on the titled pages' first chunks."""
    at = 0
    for i in titled_firsts(chunks):
        n = len(chunks[i].metadata["outline"])
        chunks[i].metadata[TITLE_VECTORS] = encode(vectors[at:at + n])
        at += n


def encode(vectors: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vectors, dtype="<f2").tobytes()).decode("ascii")


def decode(text: object, titles: int) -> np.ndarray | None:
    """(titles, dimension) float16, or None when `text` is absent or does not hold that many vectors."""
    if not isinstance(text, str) or titles <= 0:
        return None
    try:
        raw = np.frombuffer(base64.b64decode(text, validate=True), dtype="<f2")
    except ValueError:
        return None
    if not raw.size or raw.size % titles:
        return None
    return raw.reshape(titles, raw.size // titles)


def without_vectors(metadata: dict[str, object]) -> dict[str, object]:
    """Metadata as shown to people and models: the title vectors are for ranking only."""
    return {k: v for k, v in metadata.items() if k != TITLE_VECTORS}


@dataclass(frozen=True)
class TitleIndex:
    """The titles' vectors as float16 codes in a FAISS scalar-quantizer index (they are stored as float16, so nothing
    is lost: half the memory of float32 and a faster scan than numpy's float32 product), their norms and pages."""

    index: Any
    norms: np.ndarray  # float32, 0 for a title without a vector
    owner: np.ndarray  # each title's page

    @classmethod
    def of(cls, vectors: np.ndarray, owner: np.ndarray) -> TitleIndex:
        rows = np.asarray(vectors, dtype=np.float32).reshape(len(owner), -1) if len(owner) else np.zeros((0, 1), "f4")
        index = faiss.IndexScalarQuantizer(rows.shape[1], faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        index.add(rows)
        return cls(index, np.linalg.norm(rows, axis=1), np.asarray(owner, dtype=np.int64))

    def cosines(self, qvec: Sequence[float], floor: float) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cosines) of a set of titles holding every title whose cosine with `qvec` passes `floor`: the best
        `TOP` by inner product, widened while the last of them, over the smallest norm, could still pass."""
        q = np.asarray(qvec, dtype=np.float32).reshape(1, -1)
        q /= max(float(np.linalg.norm(q)), 1e-12)
        smallest = float(self.norms[self.norms > 0].min()) if self.norms.any() else 1.0
        k = min(self.index.ntotal, TOP)
        while True:
            ip, rows = (a[0] for a in self.index.search(q, k))
            if k == self.index.ntotal or ip[-1] <= floor * smallest:
                break
            k = min(self.index.ntotal, k * 8)
        rows = rows[rows >= 0]
        return rows, ip[:len(rows)] / np.where(self.norms[rows] > 0, self.norms[rows], 1.0)


def title_scores(titles: TitleIndex, qvec: Sequence[float], pages: int, floor: float) -> np.ndarray:
    """Per page: max(cosine - floor, 0) of its best title."""
    out = np.zeros(pages, dtype=np.float64)
    if not titles.index.ntotal:
        return out
    rows, cosines = titles.cosines(qvec, floor)
    above = cosines.astype(np.float64) - floor
    hit = above > 0  # few titles pass the floor: ufunc.at over all of them is slow at scale
    np.maximum.at(out, titles.owner[rows[hit]], above[hit])
    return out
