"""Whole compactions (agent.search.compaction): the compacted index holds the live vectors in
position order, copied a block at a time, never all of a segment's vectors at once, and a running
compaction does not keep a replaced version's keyword index in memory (bench/README.md section 13b)."""

import gc
import json
import weakref

import faiss
import numpy as np
import pytest

from agent.search import compaction, segments, store
from agent.search.keyword_index import collection_index
from tests.support import TinyEmbeddings, add, hold_background_compactions, open_collection

TEXTS = {"big": [f"big page {n}" for n in range(20)], "aaa": ["alpha text one", "beta two words"],
         "bbb": ["gamma three", "gamma again", "gamma thrice"]}


def spy_on_reconstruction(monkeypatch, indexes) -> list[int]:
    """How many vectors each FAISS reconstruction call on one of `indexes` returns."""
    sizes: list[int] = []
    for kind in (faiss.IndexFlatIP, faiss.IndexIVFFlat):
        for name in ("reconstruct_n", "reconstruct_batch"):
            real = getattr(kind, name)

            def spy(self, *args, _real=real, **kw):
                out = _real(self, *args, **kw)
                if any(self is index for index in indexes):
                    sizes.append(len(out))
                return out

            monkeypatch.setattr(kind, name, spy)
    return sizes


@pytest.mark.parametrize("ann_min", [10**9, 8], ids=["exact", "ivf"])
@pytest.mark.parametrize("removed", [(), ("aaa",)], ids=["compaction", "whole-save-with-removal"])
def test_a_whole_compaction_copies_the_live_vectors_a_block_at_a_time(tmp_path, monkeypatch, ann_min, removed):
    monkeypatch.setattr(store, "MAX_DELETED_SHARE", 0.5)
    monkeypatch.setattr(segments, "MERGE_RATIO", 0)
    c = open_collection(tmp_path, append_min=1, ann_min_vectors=ann_min)
    for doc_id in TEXTS:
        add(c, doc_id, TEXTS[doc_id])
    with c.writing():
        c.remove("bbb")  # its rows marked deleted in the last segment
    snap = c.snapshot()
    monkeypatch.setattr(compaction, "COPY_ROWS", 3, raising=False)
    reconstructed = spy_on_reconstruction(monkeypatch, [seg.index for seg in snap.segments])
    index, documents, _, _ = compaction.whole(snap, c._rows_of(set(removed)), ann_min)
    live = [t for d in TEXTS if d != "bbb" and d not in removed for t in TEXTS[d]]
    assert [d.page_content for d in documents] == live
    assert reconstructed and max(reconstructed) <= 3
    expected = np.array(TinyEmbeddings().embed_documents(live), np.float32)
    np.testing.assert_allclose(index.reconstruct_n(0, index.ntotal), expected, atol=1e-6)
    assert type(index) is type(snap.segments[0].index)


def test_a_background_compaction_swaps_in_the_live_vectors(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "MAX_DELETED_SHARE", 0.15)
    monkeypatch.setattr(segments, "MERGE_RATIO", 0)
    monkeypatch.setattr(compaction, "COPY_ROWS", 4, raising=False)
    c = open_collection(tmp_path, append_min=1, background_min=1)
    for doc_id in TEXTS:
        add(c, doc_id, TEXTS[doc_id])
    with c.writing():
        c.remove("aaa")
    with c.writing():
        c.remove("bbb")  # 5 of 25 rows deleted: more than 15%, compacted in a thread
    assert c.compaction_finished(timeout=60)
    reopened = open_collection(tmp_path, append_min=1)
    assert len(reopened.snapshot().segments) == 1
    assert [d.page_content for d in reopened.documents] == TEXTS["big"]
    np.testing.assert_allclose(reopened.vectorstore.index.reconstruct_n(0, 20),
                               np.array(TinyEmbeddings().embed_documents(TEXTS["big"]), np.float32), atol=1e-6)


def test_a_running_compaction_does_not_keep_a_replaced_versions_keyword_index(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "MAX_DELETED_SHARE", 0.1)
    monkeypatch.setattr(segments, "MERGE_RATIO", 0)
    c = open_collection(tmp_path, append_min=1, background_min=1)
    for doc_id in TEXTS:
        add(c, doc_id, TEXTS[doc_id])
    started, release = hold_background_compactions(monkeypatch)
    with c.writing():
        c.remove("bbb")  # 3 of 25 rows deleted: compacted in a thread, held
    assert started.wait(30)
    index = weakref.ref(collection_index(c))  # the compacted version's, as the first search builds it
    add(c, "ccc", ["delta four"])  # a new version: the old one's index is no longer any search's
    gc.collect()
    try:
        assert index() is None and not c.compaction_finished(timeout=0)
    finally:
        release.set()
    assert c.compaction_finished(timeout=60)
    assert [d.page_content for d in open_collection(tmp_path).documents] == \
        TEXTS["big"] + TEXTS["aaa"] + ["delta four"]


def test_the_compaction_bench_runs_end_to_end(tmp_path):
    """bench.compaction at a size whose compaction is inline (the background path needs 100k chunks)."""
    from bench import compaction as bench

    assert bench.main(["--quick", "--sizes", "2000", "--searches", "3", "--out", str(tmp_path)]) == 0
    row = json.loads((tmp_path / "compaction.json").read_text())["results"]["rows"][0]
    assert row["kept"] and row["fresh"]["kept"] and not row["compaction_started"]
    assert row["live_rows"] == row["fresh"]["live_rows"] == 2000 + 900 - 900  # setup add, trigger removal


def test_the_first_segments_vectors_keep_their_ivf_cells(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "MAX_DELETED_SHARE", 0.5)
    monkeypatch.setattr(segments, "MERGE_RATIO", 0)
    c = open_collection(tmp_path, append_min=1, ann_min_vectors=8)
    for doc_id in TEXTS:
        add(c, doc_id, TEXTS[doc_id])  # big's 20 rows: an IVF segment; the others: flat
    with c.writing():
        c.remove("aaa")
    first = c.snapshot().segments[0].index
    assigned: list[int] = []
    real_add = faiss.IndexIVFFlat.add

    def spy(self, x, *args, **kw):
        assigned.append(len(x))  # each vector given to `add` is assigned to a cell by the quantizer
        return real_add(self, x, *args, **kw)

    monkeypatch.setattr(faiss.IndexIVFFlat, "add", spy)
    index, _, _, _ = compaction.whole(c.snapshot(), np.zeros(0, np.int64), 8)
    assert sum(assigned) == len(TEXTS["bbb"])  # only the flat segment's; big's 20 keep their cells
    cells = faiss.vector_to_array(index.direct_map.array) >> 32
    np.testing.assert_array_equal(cells[:20], faiss.vector_to_array(first.direct_map.array) >> 32)
    hits = index.search(np.array(TinyEmbeddings().embed_documents(["big page 7"]), np.float32), 1)[1]
    assert TEXTS["big"][int(hits[0, 0])] == "big page 7"


@pytest.mark.parametrize("ann_min", [10**9, 8], ids=["exact", "ivf"])
def test_a_segment_is_written_file_by_file_with_the_index_streamed(tmp_path, monkeypatch, ann_min):
    def no_copy(index):
        raise AssertionError("the index was serialised into memory whole")

    monkeypatch.setattr(faiss, "serialize_index", no_copy)
    c = open_collection(tmp_path, append_min=1, ann_min_vectors=ann_min)
    for doc_id in TEXTS:
        add(c, doc_id, TEXTS[doc_id])
    reopened = open_collection(tmp_path, append_min=1, ann_min_vectors=ann_min).snapshot()
    live = [t for d in TEXTS for t in TEXTS[d]]
    assert [d.page_content for d in reopened.documents] == live
    index = reopened.vectorstore.index
    np.testing.assert_allclose(index.reconstruct_batch(np.arange(len(live))), np.array(TinyEmbeddings().embed_documents(live), np.float32), atol=1e-6)
