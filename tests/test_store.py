"""Collections on disk: atomic generations, model mismatch, removal, locking, corruption."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from agent.errors import EmbeddingMismatchError, StoreError
from agent.search.store import Collection, DocumentInfo, delete_collection, list_collections


class TinyEmbeddings(Embeddings):
    """Deterministic 8-d bag-of-letters vectors: enough to test storage, not quality."""

    def _vec(self, text: str) -> list[float]:
        v = np.zeros(8, dtype=np.float32)
        for ch in text.lower():
            v[ord(ch) % 8] += 1
        return (v / (np.linalg.norm(v) or 1)).tolist()

    def embed_documents(self, texts):
        return [self._vec(t) for t in texts]

    def embed_query(self, text):
        return self._vec(text)


def make_doc(doc_id: str, texts: list[str]):
    chunks = [Document(t, id=f"{doc_id}:{i + 1}:0", metadata={"file": f"{doc_id}.pdf", "page": i + 1,
                                                              "doc_id": doc_id, "chunk_id": f"{doc_id}:{i + 1}:0"})
              for i, t in enumerate(texts)]
    info = DocumentInfo(doc_id, f"{doc_id}.pdf", len(texts), len(texts), 10, "2026-01-01")
    return info, chunks, np.array(TinyEmbeddings().embed_documents(texts), dtype=np.float32)


def open_collection(tmp_path, model="tiny-v1", **kw):
    return Collection(tmp_path, "docs", TinyEmbeddings(), model, **kw)


def add(collection, doc_id, texts):
    info, chunks, vectors = make_doc(doc_id, texts)
    with collection.writing():
        collection.add(info, chunks, vectors, None)


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
    assert files == [".lock", "chunks-2.jsonl", "index-2.faiss", "lexicon-2.npz", "manifest.json"]  # old generation removed


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
        from tests.test_store import open_collection, add
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


def test_chunks_file_is_json_not_pickle(tmp_path):
    c = open_collection(tmp_path)
    add(c, "aaa", ["alpha"])
    line = (c.path / "chunks-1.jsonl").read_text().splitlines()[0]
    assert json.loads(line)["metadata"]["page"] == 1
