"""Section titles by meaning (agent.search.title_vectors): embedded at ingest with the chunks, kept through saves,
segments, compaction and PostgreSQL, and ranked only for models with a floor."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.documents import Document

from agent.ingest.chunking import embedding_text
from agent.ingest.pipeline import embed_chunks
from agent.search import compaction, keyword_index, segments, store, title_vectors
from agent.search.keyword_index import collection_index
from agent.search.page_table import PageTable
from agent.search.retrieval import HybridRetriever, page_signals, search
from agent.search.snapshot import DocumentInfo
from agent.search.title_vectors import TITLE_VECTORS, decode
from tests.support import TinyEmbeddings, open_collection

#: page 1 starts the section "zzz yyy" (not a word of its text); page 2 holds the question's "qqq" twice
PAGES = {1: ("qqq ppp rrr filler", ["zzz yyy"]), 2: ("qqq qqq ppp rrr", [])}


def _chunks(doc_id: str, pages: dict[int, tuple[str, list[str]]]) -> list[Document]:
    out = []
    for page, (text, outline) in pages.items():
        for part in range(2):
            cid = f"{doc_id}:{page}:{part}"
            out.append(Document(f"{text} {part}", id=cid, metadata={
                "file": f"{doc_id}.pdf", "page": page, "doc_id": doc_id, "chunk_id": cid, "start": part * 20,
                **({"outline": outline} if outline else {})}))
    return out


def _add(collection, doc_id: str, pages=PAGES, embed: bool = True) -> None:
    chunks = _chunks(doc_id, pages)
    vectors = embed_chunks(chunks, TinyEmbeddings()) if embed else \
        np.asarray(TinyEmbeddings().embed_documents([c.page_content for c in chunks]), np.float32)
    info = DocumentInfo(doc_id, f"{doc_id}.pdf", len(pages), len(chunks), 10, "2026-01-01")
    with collection.writing():
        collection.add(info, chunks, vectors, None)


@pytest.fixture()
def floor(monkeypatch):
    """The tiny test model gets a floor, as `local` has one."""
    monkeypatch.setitem(title_vectors.FLOORS, "tiny-v1", 0.5)


def test_ingest_embeds_each_titled_pages_titles_on_its_first_chunk() -> None:
    chunks = _chunks("d", {1: ("text", ["Intro", "Scope  of\nwork"]), 2: ("more", []), 3: ("end", ["Usage"])})
    vectors = embed_chunks(chunks, TinyEmbeddings())
    assert vectors.shape == (6, 8)  # one row per chunk: the titles' vectors are not chunks
    np.testing.assert_allclose(vectors, TinyEmbeddings().embed_documents([embedding_text(c) for c in chunks]), atol=1e-6)
    firsts = [c for c in chunks if TITLE_VECTORS in c.metadata]
    assert [c.id for c in firsts] == ["d:1:0", "d:3:0"]
    got = decode(firsts[0].metadata[TITLE_VECTORS], 2)
    assert got is not None and got.dtype == np.float16
    np.testing.assert_allclose(got, TinyEmbeddings().embed_documents(["Intro", "Scope of work"]), atol=2e-3)


def test_a_damaged_vector_string_is_ignored() -> None:
    assert decode("not base64!", 1) is None
    assert decode(title_vectors.encode(np.ones((3, 4))), 5) is None  # 12 numbers are not 5 titles' worth
    assert decode(None, 1) is None


def test_the_page_table_keeps_title_rows_aligned_through_take_concat_and_files(tmp_path) -> None:
    a = PageTable.build(_chunks("a", {1: ("x", ["One", "Two"]), 2: ("y", []), 3: ("z", ["Three"])}))
    embed_chunks(chunks := _chunks("b", {1: ("x", ["Four"])}), TinyEmbeddings())
    b = PageTable.build(chunks)
    assert a.title_vectors.shape == (0, 0) and b.title_vectors.shape == (1, 8)  # a: ingested before vectors
    joined = a.concat(b)
    assert joined.title_owners().tolist() == [0, 0, 2, 3] and not joined.title_vectors[:3].any()
    np.testing.assert_array_equal(joined.title_vectors[3], b.title_vectors[0])
    kept = joined.take(np.array([2, 3]))
    assert kept.title_owners().tolist() == [0, 1] and kept.title_vectors[1].any()
    path = tmp_path / "pages.npz"
    path.write_bytes(kept.to_bytes())
    loaded = PageTable.load(path, 2)
    assert loaded is not None
    np.testing.assert_array_equal(loaded.title_vectors, kept.title_vectors)
    np.savez(path, **{k: v for k, v in np.load(path).items() if k != "title_vectors"})  # a table saved before
    old = PageTable.load(path, 2)
    assert old is not None and old.title_vectors.shape == (0, 0) and old.titles == kept.titles


def test_a_page_titled_like_the_question_ranks_first_only_for_a_model_with_a_floor(tmp_path, monkeypatch) -> None:
    c = open_collection(tmp_path)
    _add(c, "d")
    question = "zzz yyy qqq"
    plain = page_signals(question, [c], embeddings=TinyEmbeddings(), lexical=True, vector=True)
    assert plain is not None and "title_sem" not in plain.pages  # no floor for this model: ranks as before
    assert [h.document.metadata["page"] for h in search(question, [c], embeddings=TinyEmbeddings(), k=2)] == [2, 1]
    monkeypatch.setitem(title_vectors.FLOORS, "tiny-v1", 0.5)
    keyword_index.clear_cache()
    ps = page_signals(question, [c], embeddings=TinyEmbeddings(), lexical=True, vector=True)
    assert ps is not None and ps.pages["title_sem"][0] > 0.3 and ps.pages["title_sem"][1] == 0.0
    hits = search(question, [c], embeddings=TinyEmbeddings(), k=2)
    assert [h.document.metadata["page"] for h in hits] == [1, 2]
    docs = HybridRetriever(collections=[c], embeddings=TinyEmbeddings(), k=2).invoke(question)
    assert docs and all(TITLE_VECTORS not in d.metadata for d in docs)  # for ranking only, never shown


def test_a_collection_ingested_before_title_vectors_ranks_as_before(tmp_path, floor) -> None:
    c = open_collection(tmp_path)
    _add(c, "d", embed=False)
    ps = page_signals("zzz yyy qqq", [c], embeddings=TinyEmbeddings(), lexical=True, vector=True)
    assert ps is not None and "title_sem" not in ps.pages


def test_title_vectors_survive_segments_reopening_and_compaction(tmp_path, monkeypatch, floor) -> None:
    monkeypatch.setattr(store, "MAX_DELETED_SHARE", 0.5)
    monkeypatch.setattr(segments, "MERGE_RATIO", 0)
    c = open_collection(tmp_path, append_min=1)
    for doc_id in ("a", "b", "c"):
        _add(c, doc_id)
    expected = collection_index(c).pages.title_vectors.copy()
    assert expected.shape == (3, 8) and len(c.snapshot().segments) > 1
    reopened = open_collection(tmp_path, append_min=1)
    np.testing.assert_array_equal(collection_index(reopened).pages.title_vectors, expected)
    with reopened.writing():
        reopened.remove("a")
    snap = reopened.snapshot()
    _, documents, _, pages = compaction.whole(snap, reopened._rows_of(set()), 10**9)
    assert [d.metadata["doc_id"] for d in documents if TITLE_VECTORS in d.metadata] == ["b", "c"]
    np.testing.assert_array_equal(pages.title_vectors, expected[1:])
    hits = search("zzz yyy qqq", [reopened], embeddings=TinyEmbeddings(), k=1)
    assert hits and hits[0].document.metadata["page"] == 1


def test_title_vectors_survive_postgres(tmp_path, pg_url, floor) -> None:
    from agent.search.pg_store import PgCollection

    writer = PgCollection(pg_url, tmp_path / "a", "docs", TinyEmbeddings(), "tiny-v1")
    _add(writer, "d")
    reader = PgCollection(pg_url, tmp_path / "b", "docs", TinyEmbeddings(), "tiny-v1")
    np.testing.assert_array_equal(collection_index(reader).pages.title_vectors,
                                  collection_index(writer).pages.title_vectors)
    assert collection_index(reader).pages.title_vectors.shape == (1, 8)
    hits = search("zzz yyy qqq", [reader], embeddings=TinyEmbeddings(), k=1)
    assert hits and hits[0].document.metadata["page"] == 1


@pytest.mark.parametrize("top", [title_vectors.TOP, 4])
def test_title_scores_are_the_best_title_cosine_above_the_floor_of_each_page(monkeypatch, top) -> None:
    """Against the plain float32 product; with `top` = 4 more titles pass the floor than a question reads first."""
    monkeypatch.setattr(title_vectors, "TOP", top)
    rng = np.random.default_rng(7)
    q = rng.standard_normal(16)
    near = q + 0.3 * rng.standard_normal((40, 16))  # 40 titles close to the question, 300 random, 2 without a vector
    vectors = np.vstack([near, rng.standard_normal((300, 16)), np.zeros((2, 16))]).astype(np.float16)
    owner = rng.integers(0, 90, len(vectors))
    wide = vectors.astype(np.float64)
    unit = wide / np.maximum(np.linalg.norm(wide, axis=1, keepdims=True), 1e-12)
    expected = np.zeros(90)
    np.maximum.at(expected, owner, np.maximum(unit @ (q / np.linalg.norm(q)) - 0.7, 0))
    got = title_vectors.title_scores(title_vectors.TitleIndex.of(vectors, owner), q.tolist(), 90, 0.7)
    assert (expected > 0).sum() > 4 and np.allclose(got, expected, atol=1e-5)
    assert not title_vectors.title_scores(title_vectors.TitleIndex.of(np.zeros((0, 0), np.float16), np.zeros(0)),
                                          q.tolist(), 90, 0.7).any()
