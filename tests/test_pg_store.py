"""Collections in PostgreSQL (store = postgres): shared by instances, one transaction per document."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from agent.errors import EmbeddingMismatchError
from agent.ingest.pipeline import file_sha256
from agent.search.lexical import Lexicon
from agent.search.pg_store import PgCollection
from agent.search.retrieval import search
from tests.support import TinyEmbeddings, assert_consistent, make_doc


def _open(tmp_path, pg_url, name="a", model="tiny-v1", **kw) -> PgCollection:
    return PgCollection(pg_url, tmp_path / name, "docs", TinyEmbeddings(), model, **kw)


def _original(tmp_path, content: bytes) -> tuple[str, Path]:
    """A stored original and its doc_id (its SHA-256, as ingestion names documents)."""
    path = tmp_path / f"{hashlib.sha256(content).hexdigest()}.pdf"
    path.write_bytes(content)
    return file_sha256(path), path


def _add(collection: PgCollection, doc_id: str, texts: list[str], pdf=None, replacing=()) -> None:
    info, chunks, vectors = make_doc(doc_id, texts)
    with collection.writing():
        collection.add(info, chunks, vectors, pdf, replacing=replacing)


def test_a_document_written_by_one_instance_is_found_by_another_at_its_next_reload(tmp_path, pg_url):
    writer, reader = _open(tmp_path, pg_url, "a"), _open(tmp_path, pg_url, "b")
    d1, original = _original(tmp_path, b"%PDF-1.7 the original bytes")
    _add(writer, d1, ["alpha bravo", "charlie 中文检索 delta"], pdf=original)
    assert reader.infos == {} and reader.version == 0
    reader.reload()
    assert list(reader.infos) == [d1] and reader.version == writer.version == 1
    assert_consistent(reader)
    assert [d.page_content for d in reader.documents] == ["alpha bravo", "charlie 中文检索 delta"]
    local = Lexicon.build(reader.documents)  # the stored term counts are what the tokenizer makes
    assert [[local.vocabulary.terms[t] for t in local.chunks.row(i)[0]] for i in range(2)] == \
        [[reader.lexicon.vocabulary.terms[t] for t in reader.lexicon.chunks.row(i)[0]] for i in range(2)]
    np.testing.assert_allclose(reader.vectorstore.index.reconstruct_n(0, 2), make_doc(d1, ["alpha bravo",
                               "charlie 中文检索 delta"])[2], rtol=1e-6)
    hits = search("中文检索", [reader], embeddings=TinyEmbeddings(), k=1)
    assert hits and hits[0].document.metadata["page"] == 2
    stored = reader.stored_file(d1)  # from this instance's own data dir, fetched from the database
    assert stored is not None and stored.read_bytes() == original.read_bytes() and str(tmp_path / "b") in str(stored)


def test_replace_remove_and_reindex_keep_chunks_vectors_and_originals_in_step(tmp_path, pg_url):
    collection = _open(tmp_path, pg_url)
    (d1, p1), (d2, p2), (d3, p3) = (_original(tmp_path, f"%PDF {n}".encode()) for n in range(3))
    _add(collection, d1, ["one", "two"], pdf=p1)
    _add(collection, d2, ["three"], pdf=p2)
    _add(collection, d3, ["three again", "four"], pdf=p3, replacing=[d2])
    assert list(collection.infos) == [d1, d3]
    assert_consistent(collection)
    assert {d for d, _ in collection.stored_documents()} == {d1, d3}
    with collection.writing():
        assert collection.remove(d1).doc_id == d1
    assert list(collection.infos) == [d3] and [d for d, _ in collection.stored_documents()] == [d3]
    assert_consistent(collection)
    rebuilt = _open(tmp_path, pg_url, model="tiny-v2", rebuilding=True)
    assert rebuilt.infos == {} and list(rebuilt.recorded_infos()) == [d3]
    with pytest.raises(EmbeddingMismatchError):
        _open(tmp_path, pg_url, "c", model="tiny-v2")
    with rebuilt.writing():
        rebuilt.replace_all([make_doc(d3, ["three rebuilt"])], 8)
    fresh = _open(tmp_path, pg_url, "c", model="tiny-v2")
    assert [d.page_content for d in fresh.documents] == ["three rebuilt"]
    assert [d for d, _ in fresh.stored_documents()] == [d3]  # the original survives the re-index
    with pytest.raises(EmbeddingMismatchError):  # and the old model is now refused
        collection.reload()
