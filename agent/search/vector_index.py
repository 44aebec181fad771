"""Which FAISS index a collection uses: exact below a size threshold, IVF above it.

Exact inner-product search (`IndexFlatIP`) reads every vector for every query, ~0.08 ms
per 1,000 chunks on one core: 100k chunks cost ~8 ms, 1M ~77 ms (bench). Above
`ANN_MIN_VECTORS` a collection switches to an inverted-file index (`IndexIVFFlat`):
the vectors are split into `nlist` k-means cells and a query reads only the `nprobe`
nearest cells. Its recall against exact search was measured on real embeddings of real
text (bench/README.md, "Approximate index"); the constants below come from there.

The IVF keeps the vectors themselves (plus a direct map), so a collection can always be
turned back into an exact index, re-clustered when it has grown or shrunk a lot (nlist
is kept near `2 * sqrt(n)`), or have documents removed without re-training.
"""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np

#: Collections with at least this many chunks use IVF (below half of it, exact again).
ANN_MIN_VECTORS = 200_000
#: k-means cells per sqrt(chunk): nlist = NLIST_PER_SQRT * sqrt(n).
NLIST_PER_SQRT = 2.0
#: Share of the cells a query reads (nprobe = ceil(PROBE_SHARE * nlist), at least MIN_NPROBE):
#: far more than the textbook 1/16, as questions sit between the chunks' topic clusters.
PROBE_SHARE = 0.3
MIN_NPROBE = 16
#: Training points per cell (k-means on a sample; more costs time and gains little).
TRAIN_PER_CELL = 40
_SEED = 1234

def use_one_thread() -> None:
    """Pin FAISS to one OpenMP thread: one query is searched at a time per request, and its threads
    only wait on each other when the other core is busy. Entry points call it; importing does not."""
    faiss.omp_set_num_threads(1)


def is_approximate(index: Any) -> bool:
    return isinstance(index, faiss.IndexIVF)


def describe(index: Any) -> str:
    """For benchmarks: "exact" or "IVF nlist=... nprobe=..."; a segmented store's index (agent.search.segments),
    each segment's with its vector count ("IVF nlist=2000 nprobe=600 x 997,500 + exact x 2,500")."""
    segments = getattr(getattr(index, "layout", None), "segments", None)
    if segments is not None:
        return " + ".join(f"{describe(seg.index)} x {seg.index.ntotal:,}" for seg in segments) or "empty"
    if is_approximate(index):
        return f"IVF nlist={index.nlist} nprobe={index.nprobe}"
    return "exact"


def nprobe_for(nlist: int) -> int:
    return min(nlist, max(MIN_NPROBE, math.ceil(PROBE_SHARE * nlist)))


def prepare(index: Any) -> Any:
    """Set search parameters on a loaded index (they follow this module, not the file)."""
    if is_approximate(index):
        index.nprobe = nprobe_for(index.nlist)
    return index


def all_vectors(index: Any) -> np.ndarray:
    """Every stored vector, in id order (= chunk order)."""
    if index.ntotal == 0:
        return np.zeros((0, index.d), dtype=np.float32)
    return index.reconstruct_n(0, index.ntotal)


def empty_like(index: Any) -> Any:
    """An index of the same kind and training with no vectors (for IVF: the same cells,
    built from its centroids, not from a copy of every vector)."""
    if not is_approximate(index):
        return faiss.IndexFlatIP(index.d)
    quantizer = faiss.IndexFlatIP(index.d)
    quantizer.add(all_vectors(index.quantizer))
    fresh = faiss.IndexIVFFlat(quantizer, index.d, index.nlist, faiss.METRIC_INNER_PRODUCT)  # trained: nlist centroids
    fresh.make_direct_map()
    return prepare(fresh)


def build(vectors: np.ndarray, dimension: int, *, ann_min: int = ANN_MIN_VECTORS) -> Any:
    """A new index over `vectors` of the kind their number calls for."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dimension)
    if len(vectors) < ann_min:
        index = faiss.IndexFlatIP(dimension)
    else:
        index = _trained_ivf(vectors, dimension)
    if len(vectors):
        index.add(vectors)
    return index


def fit(index: Any, *, ann_min: int = ANN_MIN_VECTORS) -> Any:
    """`index`, or a rebuilt one when its size calls for another kind or re-clustering.

    Hysteresis: exact -> IVF at `ann_min`, IVF -> exact below `ann_min / 2`, and IVF is
    re-clustered only when nlist is off by 2x from its target, so growing a collection
    document by document does not retrain on every save."""
    n = index.ntotal
    if not is_approximate(index):
        return build(all_vectors(index), index.d, ann_min=ann_min) if n >= ann_min else index
    if n < ann_min / 2:
        return build(all_vectors(index), index.d, ann_min=n + 1)  # exact
    target = _nlist(n)
    if not target / 2 <= index.nlist <= target * 2:
        return build(all_vectors(index), index.d, ann_min=0)
    return prepare(index)


def subset(index: Any, keep: list[int], like: Any = None) -> Any:
    """A new index of the same kind (as `like`, if given) holding only the vectors at `keep`
    (positions, ascending); the caller `fit`s it once its other changes are made."""
    kept = all_vectors(index)[keep] if keep else np.zeros((0, index.d), dtype=np.float32)
    fresh = empty_like(index if like is None else like)
    if len(kept):
        fresh.add(kept)
    return fresh


def _nlist(n: int) -> int:
    return max(1, int(round(NLIST_PER_SQRT * math.sqrt(n))))


def _trained_ivf(vectors: np.ndarray, dimension: int) -> Any:
    nlist = min(_nlist(len(vectors)), max(1, len(vectors)))
    quantizer = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)  # keeps a reference
    rng = np.random.default_rng(_SEED)
    sample = vectors if len(vectors) <= TRAIN_PER_CELL * nlist else \
        vectors[np.sort(rng.choice(len(vectors), TRAIN_PER_CELL * nlist, replace=False))]
    index.cp.seed = _SEED
    index.train(sample)
    index.make_direct_map()
    return prepare(index)
