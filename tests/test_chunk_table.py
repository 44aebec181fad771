"""Columnar chunks (agent.search.chunk_table): memory-mapped, Documents made on access, old
collections migrated, the keyword counts of an added document reused as they were."""

import json

import numpy as np
import pytest
from langchain_core.documents import Document

from agent.search.chunk_table import ChunkTable
from agent.search.lexical import Lexicon
from agent.search.store import FORMAT
from tests.support import add, make_doc, open_collection


def _docs(n: int, doc_id: str = "d") -> list[Document]:
    return [Document(f"text {i} 中文 \"doc_id\": \"{doc_id}x\"", id=f"{doc_id}:{i}",
                     metadata={"doc_id": doc_id, "file": f"{doc_id}.pdf", "page": i // 2 + 1, "note": "\"q\""})
            for i in range(n)]


def _consistent(collection) -> None:
    """Vectors, docstore positions, chunks and keyword counts agree (no stored PDFs here)."""
    store = collection.vectorstore
    assert store.index.ntotal == len(collection.documents) == collection.lexicon.chunks.rows
    assert [store.docstore.search(store.index_to_docstore_id[i]) for i in range(len(collection.documents))] \
        == list(collection.documents)


def test_table_round_trips_documents_and_slices():
    docs = _docs(5)
    table = ChunkTable.from_documents(docs)
    assert list(table) == docs and table == docs and table != docs[:2] and table[-1] == docs[-1]
    assert table[1:3] == docs[1:3] and ChunkTable.from_documents([]) == []
    with pytest.raises(IndexError):
        table[5]
    assert list(ChunkTable.from_documents([])) == []


def test_concat_keeps_the_chosen_rows_in_order():
    a, b = _docs(6, "a"), _docs(3, "b")
    table = ChunkTable.concat([(ChunkTable.from_documents(a), np.array([0, 1, 4])),
                               (ChunkTable.from_documents(b), None)])
    assert list(table) == [a[0], a[1], a[4], *b]


def test_rows_with_finds_metadata_values_not_lookalike_text():
    table = ChunkTable.from_documents(_docs(3, "a") + _docs(2, "ax") + _docs(2, "b"))
    assert table.rows_with("doc_id", {"ax"}).tolist() == [3, 4]  # the texts quote "doc_id": "ax" too
    assert table.rows_with("doc_id", {"a", "b"}).tolist() == [0, 1, 2, 5, 6]
    assert table.rows_with("doc_id", {"zz"}).tolist() == []


def test_saved_chunks_are_memory_mapped_and_search_builds_documents_for_hits_only(tmp_path):
    c = open_collection(tmp_path)
    add(c, "aaa", ["alpha text", "beta text"])
    add(c, "bbb", ["gamma"])
    reopened = open_collection(tmp_path)
    assert isinstance(reopened.documents, ChunkTable)
    assert isinstance(reopened.documents._data, np.memmap)
    hit = reopened.vectorstore.similarity_search("gamma", k=1)[0]
    assert hit.id == "bbb:1:0" and hit.page_content == "gamma" and hit.metadata["doc_id"] == "bbb"
    _consistent(reopened)


def test_a_format_1_collection_is_read_and_rewritten_as_columns(tmp_path):
    c = open_collection(tmp_path)
    add(c, "aaa", ["alpha", "beta"])
    # turn generation 1 into what the previous release wrote: chunks as JSON lines
    lines = "".join(json.dumps({"id": d.id, "text": d.page_content, "metadata": d.metadata}) + "\n"
                    for d in c.documents)
    (c.path / "chunks-1.jsonl").write_text(lines)
    (c.path / "chunks-1.npy").unlink()
    (c.path / "chunk-offsets-1.npy").unlink()
    manifest = json.loads(c.manifest_path.read_text())
    del manifest["segments"]
    c.manifest_path.write_text(json.dumps(manifest | {"format": 1}))

    old = open_collection(tmp_path)
    assert [d.page_content for d in old.documents] == ["alpha", "beta"]
    add(old, "bbb", ["gamma"])
    assert json.loads(old.manifest_path.read_text())["format"] == FORMAT
    assert not list(old.path.glob("*.jsonl"))
    again = open_collection(tmp_path)
    assert [d.page_content for d in again.documents] == ["alpha", "beta", "gamma"]
    _consistent(again)


def test_a_format_2_collection_is_read_and_its_next_saves_write_segments(tmp_path, monkeypatch):
    from agent.search import segments

    monkeypatch.setattr(segments, "MERGE_RATIO", 0)  # a tiny added document would merge with the first
    c = open_collection(tmp_path, append_min=1)
    add(c, "aaa", ["alpha", "beta"])
    manifest = json.loads(c.manifest_path.read_text())  # as format 2 wrote it: one generation, its checksums
    segment = manifest.pop("segments")[0]
    c.manifest_path.write_text(json.dumps(manifest | {"format": 2, "chunks": segment["chunks"]}))

    old = open_collection(tmp_path, append_min=1)
    assert [d.page_content for d in old.documents] == ["alpha", "beta"]
    add(old, "bbb", ["gamma"])
    manifest = json.loads(old.manifest_path.read_text())
    assert manifest["format"] == FORMAT and [s["generation"] for s in manifest["segments"]] == [1, 2]
    again = open_collection(tmp_path)
    assert [d.page_content for d in again.documents] == ["alpha", "beta", "gamma"]
    _consistent(again)


def _rows(lexicon: Lexicon) -> list[list[dict[str, int]]]:
    """Each chunk's and page's term counts by term (ids differ between vocabularies)."""
    terms = lexicon.vocabulary.terms
    return [[dict(zip((terms[t] for t in counts.row(i)[0]), counts.row(i)[1].tolist())) for i in range(counts.rows)]
            for counts in (lexicon.chunks, lexicon.pages)]


def _assert_counts_match_a_recount(collection) -> None:
    recount = Lexicon.build(list(collection.documents))
    assert _rows(collection.lexicon) == _rows(recount)
    assert collection.lexicon.chunk_page.tolist() == recount.chunk_page.tolist()


def test_adding_a_file_reuses_the_counts_and_matches_a_full_recount(tmp_path, monkeypatch):
    c = open_collection(tmp_path)
    add(c, "aaa", ["alpha beta", "beta gamma"])
    before = c.lexicon
    monkeypatch.setattr(Lexicon, "_counted", _only_new(Lexicon._counted, limit=2))
    add(c, "bbb", ["gamma delta", "delta"])
    assert c.lexicon.vocabulary.terms[:len(before.vocabulary)] == before.vocabulary.terms
    monkeypatch.undo()
    _assert_counts_match_a_recount(c)


def _only_new(counted, limit: int):
    """`Lexicon._counted` that fails when asked to count more than `limit` chunks (the fast path counts the
    added document only)."""
    def guarded(cls, documents, *args, **kwargs):
        assert len(documents) <= limit, f"recounted {len(documents)} chunks"
        return counted(documents, *args, **kwargs)
    return classmethod(guarded)


def test_removing_or_replacing_a_file_keeps_the_other_counts_without_recounting(tmp_path, monkeypatch):
    c = open_collection(tmp_path)
    for doc_id, texts in (("aaa", ["alpha beta", "beta"]), ("bbb", ["gamma", "delta gamma", "eps"]),
                          ("ccc", ["zeta"])):
        add(c, doc_id, texts)
    monkeypatch.setattr(Lexicon, "_counted", _only_new(Lexicon._counted, limit=2))
    with c.writing():
        c.remove("bbb")
        info, chunks, vectors = make_doc("ddd", ["eta theta", "theta"])
        c.add(info, chunks, vectors, None, replacing=["aaa"])
    monkeypatch.undo()
    assert [d.page_content for d in c.documents] == ["zeta", "eta theta", "theta"]
    _assert_counts_match_a_recount(c)
    _assert_counts_match_a_recount(open_collection(tmp_path))


def test_a_page_shared_with_a_kept_chunk_is_recounted(tmp_path):
    c = open_collection(tmp_path)
    add(c, "aaa", ["alpha", "beta"])
    info, chunks, vectors = make_doc("bbb", ["gamma"])
    chunks[0].metadata["file"] = "aaa.pdf"  # the same page as aaa's first chunk
    with c.writing():
        c.add(info, chunks, vectors, None)
        c.remove("bbb")
    _assert_counts_match_a_recount(c)


def test_replacing_and_removing_keep_the_other_documents(tmp_path):
    c = open_collection(tmp_path)
    add(c, "aaa", ["alpha", "beta"])
    add(c, "bbb", ["gamma"])
    info, chunks, vectors = make_doc("ccc", ["delta", "epsilon"])
    with c.writing():
        c.add(info, chunks, vectors, None, replacing=["aaa"])
        c.remove("bbb")
    reopened = open_collection(tmp_path)
    assert [d.page_content for d in reopened.documents] == ["delta", "epsilon"]
    _consistent(reopened)
