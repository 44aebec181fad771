"""Exact below the threshold, IVF above it: the switch, its recall, and every store operation on it."""

import numpy as np
import pytest
from langchain_core.documents import Document

from agent.search import vector_index
from agent.search.store import Collection, DocumentInfo
from tests.support import TinyEmbeddings

DIM = 32


def clustered(rng, n, centers):
    """Unit vectors near random centres (real embeddings cluster by topic too)."""
    v = centers[rng.integers(0, len(centers), n)] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((40, DIM)).astype(np.float32)
    return rng, centers


def document(doc_id, vectors):
    chunks = [Document(f"chunk {i} of {doc_id}", id=f"{doc_id}:{i}",
                       metadata={"file": f"{doc_id}.pdf", "page": i + 1, "doc_id": doc_id, "chunk_id": f"{doc_id}:{i}"})
              for i in range(len(vectors))]
    info = DocumentInfo(doc_id, f"{doc_id}.pdf", len(chunks), len(chunks), 1, "2026-01-01")
    return info, chunks, vectors


def open_collection(tmp_path, ann_min):
    return Collection(tmp_path, "big", TinyEmbeddings(), "tiny-v1", ann_min_vectors=ann_min)


def add(collection, doc_id, vectors):
    with collection.writing():
        collection.add(*document(doc_id, vectors), pdf=None)


def recall_at_10(index, exact, queries):
    _, truth = exact.search(queries, 10)
    _, found = index.search(queries, 10)
    return np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found.tolist(), truth.tolist())])


def test_exact_below_threshold_ivf_from_it_and_recall_against_exact(tmp_path, data):
    rng, centers = data
    c = open_collection(tmp_path, ann_min=3000)
    add(c, "a", clustered(rng, 2000, centers))
    assert not vector_index.is_approximate(c.vectorstore.index)
    add(c, "b", clustered(rng, 1500, centers))  # 3,500 >= 3,000
    index = open_collection(tmp_path, ann_min=3000).vectorstore.index  # as loaded from disk
    assert vector_index.is_approximate(index)
    assert index.nlist == round(vector_index.NLIST_PER_SQRT * 3500 ** 0.5) and index.nprobe == vector_index.nprobe_for(index.nlist)
    exact = vector_index.build(vector_index.all_vectors(index), DIM, ann_min=10**9)
    assert not vector_index.is_approximate(exact)
    assert recall_at_10(index, exact, clustered(rng, 200, centers)) >= 0.95


def test_positions_still_lead_to_their_chunks_after_the_switch(tmp_path, data):
    rng, centers = data
    c = open_collection(tmp_path, ann_min=1000)
    vectors = {name: clustered(rng, 600, centers) for name in ("a", "b", "c")}
    for name, v in vectors.items():
        add(c, name, v)
    store = c.vectorstore
    assert vector_index.is_approximate(store.index)
    stored = vector_index.all_vectors(store.index)
    assert np.allclose(stored, np.vstack(list(vectors.values())), atol=1e-6)  # chunk order kept
    # a chunk's own vector finds that chunk first, through LangChain's FAISS wrapper
    for name, row in (("a", 5), ("b", 300), ("c", 599)):
        doc, _ = store.similarity_search_with_score_by_vector(vectors[name][row].tolist(), k=1)[0]
        assert doc.id == f"{name}:{row}"


def test_removal_keeps_the_training_and_shrinking_returns_to_exact(tmp_path, data):
    rng, centers = data
    c = open_collection(tmp_path, ann_min=1000)
    for name, n in (("a", 500), ("b", 600), ("c", 400)):
        add(c, name, clustered(rng, n, centers))
    before = c.vectorstore.index
    assert vector_index.is_approximate(before)
    with c.writing():
        c.remove("a")  # 1,000 left: still IVF, same cells (no re-training on removal)
    after = c.vectorstore.index
    assert vector_index.is_approximate(after) and after.ntotal == 1000
    assert np.array_equal(vector_index.all_vectors(after.quantizer), vector_index.all_vectors(before.quantizer))
    assert {d.metadata["doc_id"] for d in c.documents} == {"b", "c"}
    doc, _ = c.vectorstore.similarity_search_with_score_by_vector(
        vector_index.all_vectors(after)[0].tolist(), k=1)[0]
    assert doc.id == "b:0"
    with c.writing():
        c.remove("b")  # 400 < 1,000 / 2: exact again
    assert not vector_index.is_approximate(c.vectorstore.index)
    assert c.vectorstore.index.ntotal == 400


def test_growth_reclusters_only_when_cells_are_far_off(data):
    rng, centers = data
    index = vector_index.build(clustered(rng, 1000, centers), DIM, ann_min=1000)
    assert index.nlist == round(vector_index.NLIST_PER_SQRT * 1000 ** 0.5)
    index.add(clustered(rng, 1000, centers))
    assert vector_index.fit(index, ann_min=1000) is index  # 2x more: same cells
    index.add(clustered(rng, 3000, centers))
    grown = vector_index.fit(index, ann_min=1000)  # 5x: nlist sqrt(5) = 2.2x off target -> re-clustered
    assert grown is not index and grown.nlist == round(vector_index.NLIST_PER_SQRT * 5000 ** 0.5)
    assert grown.ntotal == 5000


def test_reindex_builds_the_right_kind(tmp_path, data):
    rng, centers = data
    c = open_collection(tmp_path, ann_min=1000)
    with c.writing():
        c.replace_all([document("a", clustered(rng, 700, centers)), document("b", clustered(rng, 700, centers))], DIM)
    assert vector_index.is_approximate(c.vectorstore.index) and c.vectorstore.index.ntotal == 1400
    small = open_collection(tmp_path / "small", ann_min=1000)
    with small.writing():
        small.replace_all([document("a", clustered(rng, 10, centers))], DIM)
    assert not vector_index.is_approximate(small.vectorstore.index)


def test_a_segmented_index_is_described_segment_by_segment(tmp_path, data):
    rng, centers = data
    c = Collection(tmp_path, "big", TinyEmbeddings(), "tiny-v1", ann_min_vectors=1000, append_min=1,
                   background_min=10**9)
    add(c, "a", clustered(rng, 1200, centers))
    add(c, "b", clustered(rng, 30, centers))
    index = c.vectorstore.index
    first = c.snapshot().segments[0].index
    assert vector_index.describe(index) == (f"IVF nlist={first.nlist} nprobe={first.nprobe} x 1,200 + exact x 30")
