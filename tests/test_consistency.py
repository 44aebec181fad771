"""Readers and writers of one collection, in threads and processes: each reader sees one whole
committed version, never a false "damaged" error, and nothing deleted or replaced comes back."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from agent.errors import StoreError
from agent.search import keyword_index
from agent.search.keyword_index import collection_index
from agent.search.retrieval import search
from agent.search.store import Collection, delete_collection
from agent.workspace import Workspace
from tests.support import ROOT, TinyEmbeddings, add, make_doc, open_collection


def pdf_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "originals" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"%PDF-1.4 stand-in for " + name.encode())
    return path


def add_with_pdf(collection: Collection, doc_id: str, texts: list[str], pdf: Path, replacing=()) -> None:
    info, chunks, vectors = make_doc(doc_id, texts)
    with collection.writing():
        collection.add(info, chunks, vectors, pdf, replacing=replacing)


# ---- 7: a writer committing between a reader's steps ------------------------------------------

def test_a_reader_retries_when_a_writer_commits_between_manifest_and_files(tmp_path, monkeypatch):
    data = tmp_path / "data"
    add(open_collection(data), "aaa", ["alpha"])
    reader = open_collection(data)
    add(open_collection(data), "bbb", ["beta"])  # generation 2 on disk; the reader still has 1
    real = Collection._load_generation
    calls = []

    def writer_sneaks_in(self, manifest):
        if self is reader:
            calls.append(manifest["generation"])
            if len(calls) == 1:  # between reading manifest N and its files: commit N+1, N's files deleted
                add(open_collection(data), "ccc", ["gamma"])
        return real(self, manifest)

    monkeypatch.setattr(Collection, "_load_generation", writer_sneaks_in)
    reader.reload()
    assert calls == [2, 3]  # generation 2 had gone: read again, not reported damaged
    assert set(reader.infos) == {"aaa", "bbb", "ccc"} and reader.version == 3


def test_a_damaged_generation_is_still_reported(tmp_path):
    data = tmp_path / "data"
    add(open_collection(data), "aaa", ["alpha"])
    (data / "collections" / "docs" / "chunks-1.npy").unlink()
    with pytest.raises(StoreError, match="damaged"):
        open_collection(data)


READER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tests.support import open_collection
    data, stop = Path(sys.argv[1]), Path(sys.argv[2])
    loads = errors = 0
    deadline = time.monotonic() + 120
    while not stop.exists() and time.monotonic() < deadline:
        try:
            c = open_collection(data)
            assert len(c.documents) == sum(i.chunks for i in c.infos.values())
            loads += 1
            (data.parent / "reading").touch()  # the writer starts once the reader is loading
        except Exception as exc:
            errors += 1
            print("ERROR", type(exc).__name__, exc, flush=True)
    print("LOADS", loads, "ERRORS", errors, flush=True)
""")


@pytest.mark.slow
def test_fresh_loads_in_another_process_never_fail_while_a_writer_commits(tmp_path):
    data = tmp_path / "data"
    writer = open_collection(data)
    add(writer, "seed", ["seed text " * 50] * 200)
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(data), str(stop)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "reading").exists() and time.monotonic() < deadline:  # its imports take seconds
            time.sleep(0.05)
        for n in range(60):  # bounded: 60 commits (adds and removes) while the reader loads
            add(writer, f"d{n}", [f"text {n} " * 40] * 20)
            if n % 3 == 2:
                with writer.writing():
                    writer.remove(f"d{n - 1}")
    finally:
        stop.touch()
        out, _ = reader.communicate(timeout=150)
    assert "ERRORS 0" in out, out[-2000:]
    assert int(out.split("LOADS")[1].split()[0]) > 5, out  # the reader really raced the writer


# ---- 8 and 11: a replace is one commit; a killed writer leaves no second version, no orphan ---

def test_replacing_a_document_is_one_commit(tmp_path, monkeypatch):
    c = open_collection(tmp_path / "data")
    add_with_pdf(c, "old", ["old text"], pdf_file(tmp_path, "old.pdf"))
    saves = []
    real = Collection._save
    monkeypatch.setattr(Collection, "_save", lambda self, *a: (saves.append(1), real(self, *a))[1])
    add_with_pdf(c, "new", ["new text"], pdf_file(tmp_path, "new.pdf"), replacing=["old"])
    assert len(saves) == 1 and set(c.infos) == {"new"}
    assert [d.page_content for d in c.documents] == ["new text"]
    assert not (c.path / "files" / "old").exists()  # its stored copy went with it


KILLED_WRITER = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import agent.search.store as store
    from tests.support import make_doc, open_collection
    data, point, pdf = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    if point == "before-commit":
        real = store.atomic_write_text
        def write(path, text):
            if path.name == "manifest.json":
                os._exit(9)
            real(path, text)
        store.atomic_write_text = write
    else:  # committed, old files and folders not yet deleted
        store.Collection._drop_old_generations = lambda self, **kw: os._exit(9)
    c = open_collection(data)
    info, chunks, vectors = make_doc("new", ["new text"])
    with c.writing():
        c.add(info, chunks, vectors, pdf, replacing=["old"])
""")


@pytest.mark.parametrize("point,survivor", [("before-commit", "old"), ("after-commit", "new")])
def test_a_replace_killed_midway_leaves_one_version_and_no_orphan(tmp_path, point, survivor):
    data = tmp_path / "data"
    add_with_pdf(open_collection(data), "old", ["old text"], pdf_file(tmp_path, "old.pdf"))
    child = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(data), point, str(pdf_file(tmp_path, "new.pdf"))],
                           cwd=ROOT, timeout=120)
    assert child.returncode == 9
    c = open_collection(data)
    assert set(c.infos) == {survivor} and [d.page_content for d in c.documents] == [f"{survivor} text"]
    assert [doc_id for doc_id, _ in c.stored_documents()] == [survivor]  # a re-index would not resurrect
    add(c, "other", ["other text"])  # the next save collects what the killed writer left
    assert sorted(p.name for p in (c.path / "files").iterdir()) == [survivor]


def test_reindex_reads_only_the_documents_of_the_manifest(tmp_path):
    c = open_collection(tmp_path / "data")
    add_with_pdf(c, "kept", ["kept text"], pdf_file(tmp_path, "kept.pdf"))
    orphan = c.path / "files" / "removed"
    orphan.mkdir()
    (orphan / "removed.pdf").write_bytes(b"%PDF-1.4 left by a killed remove")
    assert [doc_id for doc_id, _ in c.stored_documents()] == ["kept"]
    (c.path / "manifest.json").write_text("{damaged")  # unreadable manifest: every stored copy counts
    assert sorted(doc_id for doc_id, _ in c.stored_documents()) == ["kept", "removed"]


# ---- 9: one snapshot per version, keyword index on it, no global lock ------------------------

def test_a_snapshot_stays_whole_while_the_next_version_is_published(tmp_path):
    c = open_collection(tmp_path / "data")
    add(c, "aaa", ["alpha one", "alpha two"])
    before = c.snapshot()
    index = collection_index(c)
    assert collection_index(c) is index  # built once per version
    add(c, "bbb", ["beta"])
    assert len(before.documents) == 2 and before.vectorstore.index.ntotal == 2 and set(before.infos) == {"aaa"}
    after = c.snapshot()
    assert after is not before and len(after.documents) == 3 and after.vectorstore.index.ntotal == 3
    assert collection_index(c) is not index and collection_index(before) is index


def test_building_one_keyword_index_does_not_block_searches_of_another(tmp_path, monkeypatch):
    slow, fast = (Collection(tmp_path / "data", name, TinyEmbeddings(), "tiny-v1") for name in ("slow", "fast"))
    add(slow, "s", ["slow text"])
    add(fast, "f", ["fast text"])
    release, started = threading.Event(), threading.Event()
    real = keyword_index.CollectionIndex.__init__

    def held_build(self, documents, *args):
        if documents and documents[0].page_content == "slow text":
            started.set()
            release.wait(30)
        real(self, documents, *args)

    monkeypatch.setattr(keyword_index.CollectionIndex, "__init__", held_build)
    builder = threading.Thread(target=collection_index, args=(slow,))
    builder.start()
    try:
        assert started.wait(10)
        t0 = time.monotonic()
        hits = search("fast", [fast], embeddings=None, k=1, mode="bm25")
        assert time.monotonic() - t0 < 2 and hits[0].document.page_content == "fast text"
    finally:
        release.set()
        builder.join(30)


def test_workspaces_of_one_data_dir_open_each_collection_once(settings, monkeypatch):
    first = Workspace(settings)
    second = first.with_settings(settings.model_copy(update={"temperature": 0.5}))
    real = Collection.__init__

    def slow_open(self, *args, **kwargs):
        time.sleep(0.2)  # widens the window in which two workspaces could both open it
        real(self, *args, **kwargs)

    monkeypatch.setattr(Collection, "__init__", slow_open)
    opened: list[Collection] = []
    threads = [threading.Thread(target=lambda w=w: opened.append(w.collection("shared"))) for w in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(opened) == 2 and opened[0] is opened[1]
    assert first.conversations is second.conversations


def test_loading_one_collection_does_not_block_opening_and_searching_another(settings, monkeypatch):
    from tests.support import add_texts

    workspace = Workspace(settings)
    add_texts(workspace, "fast.pdf", ["fast text"], collection="fast")
    add_texts(workspace, "slow.pdf", ["slow text"], collection="slow")
    fresh = Workspace(settings)  # a new process's view: nothing loaded yet
    release, started = threading.Event(), threading.Event()
    real = Collection.reload

    def held_reload(self):
        if self.name == "slow" and not started.is_set():
            started.set()
            release.wait(30)
        real(self)

    monkeypatch.setattr(Collection, "reload", held_reload)
    loader = threading.Thread(target=fresh.collection, args=("slow",))
    loader.start()
    try:
        assert started.wait(10)
        t0 = time.monotonic()
        hits = search("fast", [fresh.collection("fast")], embeddings=None, k=1, mode="bm25")
        assert time.monotonic() - t0 < 2 and hits[0].document.page_content == "fast text"
    finally:
        release.set()
        loader.join(30)
    assert fresh.collection("slow").documents[0].page_content == "slow text"


# ---- 10: deleting a collection during an upload ------------------------------------------------

def test_deleting_a_collection_while_it_is_written_is_refused_and_loses_nothing(tmp_path):
    data = tmp_path / "data"
    c = open_collection(data)
    add(c, "aaa", ["alpha"])
    writing, done = threading.Event(), threading.Event()

    def upload():
        with c.writing():
            writing.set()
            done.wait(30)
            info, chunks, vectors = make_doc("bbb", ["beta"])
            c.add(info, chunks, vectors, None)

    thread = threading.Thread(target=upload)
    thread.start()
    try:
        assert writing.wait(10)
        with pytest.raises(StoreError, match="being written") as err:
            delete_collection(data, "docs")
        assert err.value.code == "collection_busy"
    finally:
        done.set()
        thread.join(30)
    assert set(open_collection(data).infos) == {"aaa", "bbb"}
    delete_collection(data, "docs")
    assert not c.path.exists()


def test_documents_deleted_by_another_process_do_not_come_back(tmp_path):
    data = tmp_path / "data"
    here = open_collection(data)
    add(here, "aaa", ["alpha"])
    delete_collection(data, "docs")  # as another process would: this one still holds "aaa" in memory
    add(here, "bbb", ["beta"])  # the upload that was under way
    again = open_collection(data)
    assert set(here.infos) == set(again.infos) == {"bbb"}
    assert [d.page_content for d in again.documents] == ["beta"]
