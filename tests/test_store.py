"""Collections on disk: atomic generations, model mismatch, removal, locking, corruption."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from agent.errors import EmbeddingMismatchError, StoreError
from agent.search.store import (
    delete_collection,
    list_collections,
)
from tests.support import TinyEmbeddings, add, assert_pages_fit, make_doc, open_collection


def test_add_persist_reload_search(tmp_path):
    c = open_collection(tmp_path)
    add(c, "aaa", ["alpha text", "beta text"])
    add(c, "bbb", ["gamma"])
    reopened = open_collection(tmp_path)
    assert reopened.version == 2 and len(reopened.documents) == 3
    assert set(reopened.infos) == {"aaa", "bbb"}
    hits = reopened.vectorstore.similarity_search_with_score("gamma", k=1)
    assert hits[0][0].metadata["doc_id"] == "bbb"
    files = sorted(p.name for p in reopened.path.iterdir())
    assert files == [".lock", "chunk-offsets-2.npy", "chunks-2.npy", "index-2.faiss", "lexicon-2.npz",
                     "manifest.json", "pages-2.npz", "postings-2.npy"]  # old generation removed


def test_a_loaded_collection_builds_its_keyword_index_without_a_document_per_chunk(tmp_path, monkeypatch):
    from agent.search import keyword_index, retrieval
    from agent.search.chunk_table import ChunkTable

    c = open_collection(tmp_path)
    info, chunks, vectors = make_doc("aaa", ["Contents\nSetup ... 3\nUsage ... 9", "how to fit a curve", "plots"])
    chunks[1].metadata["outline"] = ["Fitting curves"]
    with c.writing():
        c.add(info, chunks, vectors, None)
    add(c, "bbb", ["gamma rays", "fit the data"])
    with c.writing():
        c.remove("bbb")
    add(c, "ccc", ["fitting again"])
    assert_pages_fit(c)  # page tables carried over by add and remove are those of the chunks
    reopened = open_collection(tmp_path)
    made = []
    real = ChunkTable.__getitem__
    monkeypatch.setattr(ChunkTable, "__getitem__", lambda self, i: made.append(i) or real(self, i))
    ix = keyword_index.collection_index(reopened)
    assert made == [] and ix.pages.keys() == [("aaa.pdf", 1), ("aaa.pdf", 2), ("aaa.pdf", 3), ("ccc.pdf", 1)]
    assert ix.contents[0] > 0.5 and ix.sections.postings["fit"].tolist() == [1]
    hits = retrieval.search("fitting curves", [reopened], embeddings=TinyEmbeddings(), k=2)
    assert [h.document.metadata["chunk_id"] for h in hits] == ["aaa:2:0", "ccc:1:0"] and len(made) == 2


def test_a_collection_saved_without_a_page_table_is_searched_and_gets_one_on_the_next_save(tmp_path):
    from agent.search import retrieval

    add(open_collection(tmp_path), "aaa", ["alpha text", "beta text"])
    (tmp_path / "collections" / "docs" / "pages-1.npz").unlink()  # as saved before page tables
    old = open_collection(tmp_path)
    assert old.snapshot().pages is None
    assert retrieval.search("beta", [old], embeddings=None, k=1, mode="bm25")[0].document.metadata["page"] == 2
    add(old, "bbb", ["gamma"])
    assert (old.path / "pages-2.npz").exists()
    assert_pages_fit(open_collection(tmp_path))


def test_page_table_keeps_where_sections_go_on_and_loads_tables_saved_without_it(tmp_path):
    from langchain_core.documents import Document

    from agent.search.page_table import PageTable

    docs = [Document(text, metadata={"file": "m.pdf", "page": n, "start": 0, **({"outline": [title]} if title else {})})
            for n, text, title in ((1, "Intro\n2. Options\nshort", "2. Options"), (2, "more options " * 5, ""))]
    table = PageTable.build(docs)
    assert table.last.tolist() == [0, -1] and table.continues.tolist() == [1.0, 0.0]
    path = tmp_path / "pages-1.npz"
    path.write_bytes(table.to_bytes())
    again = PageTable.load(path, 2)
    assert again is not None and again.last.tolist() == [0, -1] and again.continues.tolist() == [1.0, 0.0]
    with np.load(path) as data:
        np.savez(path.with_suffix(".old.npz"), **{k: data[k] for k in data.files if k not in ("last", "continues")})
    old = PageTable.load(path.with_suffix(".old.npz"), 2)  # saved before: the signal is off until re-indexed
    assert old is not None and old.last.tolist() == [-1, -1] and old.continues.tolist() == [0.0, 0.0]
    assert old.titles_by_page() == table.titles_by_page()


def test_remove_drops_vectors_and_chunks(tmp_path):
    c = open_collection(tmp_path)
    add(c, "aaa", ["alpha", "beta"])
    add(c, "bbb", ["gamma"])
    with c.writing():
        c.remove("aaa")
    reopened = open_collection(tmp_path)
    assert [d.metadata["doc_id"] for d in reopened.documents] == ["bbb"]
    assert reopened.vectorstore.index.ntotal == 1


def test_other_embedding_model_is_refused_with_reindex_hint(tmp_path):
    add(open_collection(tmp_path), "aaa", ["alpha"])
    with pytest.raises(EmbeddingMismatchError) as err:
        open_collection(tmp_path, model="other-model")
    assert "reindex" in err.value.fix


def test_rebuilding_mode_opens_a_mismatched_collection(tmp_path):
    add(open_collection(tmp_path), "aaa", ["alpha"])
    c = open_collection(tmp_path, model="other-model", rebuilding=True)
    with c.writing():
        c.replace_all([make_doc("aaa", ["alpha again"])], 8)
    assert open_collection(tmp_path, model="other-model").documents[0].page_content == "alpha again"


def test_corrupt_manifest_is_reported_not_crashing(tmp_path):
    c = open_collection(tmp_path)
    add(c, "aaa", ["alpha"])
    c.manifest_path.write_text("{broken")
    with pytest.raises(StoreError) as err:
        open_collection(tmp_path)
    assert "reindex" in err.value.fix and "PDFs are kept" in err.value.fix


def test_missing_generation_file_is_reported(tmp_path):
    c = open_collection(tmp_path)
    add(c, "aaa", ["alpha"])
    (c.path / "index-1.faiss").write_bytes(b"garbage")
    with pytest.raises(StoreError, match="damaged"):
        open_collection(tmp_path)


def test_crash_before_manifest_switch_keeps_previous_index(tmp_path, monkeypatch):
    c = open_collection(tmp_path)
    add(c, "aaa", ["alpha"])
    import agent.search.store as store

    real = store.atomic_write_text

    def crash_on_manifest(path, text):
        if path.name == "manifest.json":
            raise OSError("simulated crash")
        real(path, text)

    monkeypatch.setattr(store, "atomic_write_text", crash_on_manifest)
    with pytest.raises(OSError):
        add(c, "bbb", ["beta"])
    monkeypatch.undo()
    reopened = open_collection(tmp_path)
    assert set(reopened.infos) == {"aaa"} and len(reopened.documents) == 1


def test_two_processes_adding_at_once_both_land(tmp_path):
    root = Path(__file__).resolve().parents[1]
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(root)!r})
        from tests.support import open_collection, add
        add(open_collection(Path({str(tmp_path)!r})), sys.argv[1], ["text of " + sys.argv[1]] * 20)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, name]) for name in ("p1", "p2", "p3")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    reopened = open_collection(tmp_path)
    assert set(reopened.infos) == {"p1", "p2", "p3"} and len(reopened.documents) == 60


def test_list_and_delete_collections(tmp_path):
    add(open_collection(tmp_path), "aaa", ["alpha"])
    assert list_collections(tmp_path) == ["docs"]
    delete_collection(tmp_path, "docs")
    assert list_collections(tmp_path) == []


def test_chunk_files_are_plain_arrays_not_pickles(tmp_path):
    c = open_collection(tmp_path)
    add(c, "aaa", ["alpha"])
    data = np.load(c.path / "chunks-1.npy", allow_pickle=False)
    offsets = np.load(c.path / "chunk-offsets-1.npy", allow_pickle=False)
    assert data[offsets[0, 0]:offsets[1, 0]].tobytes() == b"alpha"
    doc_id, metadata = json.loads(data[offsets[0, 1]:offsets[1, 1]].tobytes())
    assert doc_id == "aaa:1:0" and metadata["page"] == 1


def test_opening_a_collection_removes_what_a_killed_writer_left_unless_a_writer_is_busy(tmp_path):
    from filelock import FileLock

    collection = open_collection(tmp_path)
    add(collection, "a", ["Rocks are made of minerals."])
    debris = collection.path / ".index-7.faiss.abc123.tmp"
    debris.write_bytes(b"half an index")
    with FileLock(str(collection.path / ".lock")):  # another process is writing: its temp files are live
        open_collection(tmp_path)
        assert debris.exists()
    open_collection(tmp_path)
    assert not debris.exists()
