"""Collections as append-only segments (agent.search.segments, issue 19.5): what an add or a
removal writes, that a segmented collection reads and searches as a whole save of the same
chunks would, compaction (at save time, and in the background: agent.search.compaction), and
kill -9 during a segment add, a removal, a compaction and a background compaction."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from agent.search import keyword_index, retrieval, segments, store
from agent.search.lexical import Lexicon
from tests.support import (
    ROOT,
    TinyEmbeddings,
    add,
    assert_pages_fit,
    hold_background_compactions,
    make_doc,
    open_collection,
)

TEXTS = {"aaa": ["alpha text one", "beta two words"], "bbb": ["gamma three", "gamma again"],
         "ccc": ["delta four", "epsilon five"], "ddd": ["zeta six"], "big": [f"big page {n}" for n in range(20)]}


@pytest.fixture(autouse=True)
def _tolerant(monkeypatch):
    """These collections are tiny: one removed document is a large share of them, and each added
    one would merge with the last (the tests that merge ask for it)."""
    monkeypatch.setattr(store, "MAX_DELETED_SHARE", 0.5)
    monkeypatch.setattr(segments, "MERGE_RATIO", 0)


def _segmented(path: Path, doc_ids=("aaa", "bbb", "ccc")):
    c = open_collection(path, append_min=1)
    for doc_id in doc_ids:
        add(c, doc_id, TEXTS[doc_id])
    return c


def _files(c) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in c.path.iterdir() if p.is_file() and p.name != "manifest.json"}


def _term_rows(lexicon: Lexicon) -> list[list[dict[str, int]]]:
    terms = lexicon.vocabulary.terms
    return [[dict(zip((terms[t] for t in counts.row(i)[0]), counts.row(i)[1].tolist())) for i in range(counts.rows)]
            for counts in (lexicon.chunks, lexicon.pages)]


def _assert_whole(c, doc_ids) -> None:
    """`c` holds exactly these documents' chunks, in order, with vectors, counts and pages that agree."""
    expected = [t for d in doc_ids for t in TEXTS[d]]
    assert [d.page_content for d in c.documents] == expected and c.vectorstore.index.ntotal == len(expected)
    assert set(c.infos) == set(doc_ids)
    assert _term_rows(c.lexicon) == _term_rows(Lexicon.build(list(c.documents)))
    assert_pages_fit(c)
    store_ = c.vectorstore
    assert [store_.docstore.search(store_.index_to_docstore_id[i]).page_content for i in range(len(expected))] \
        == expected


def test_an_add_writes_only_its_segment_and_a_removal_only_the_manifest(tmp_path):
    c = _segmented(tmp_path)
    manifest = json.loads(c.manifest_path.read_text())
    assert [s["generation"] for s in manifest["segments"]] == [1, 2, 3]
    before = _files(c)
    add(c, "ddd", TEXTS["ddd"])
    after = _files(c)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing rewritten
    assert sorted(set(after) - set(before)) == ["chunk-offsets-4.npy", "chunks-4.npy", "index-4.faiss",
                                                "lexicon-4.npz", "pages-4.npz", "postings-4.npy"]
    with c.writing():
        c.remove("bbb")
    assert _files(c) == after
    listed = json.loads(c.manifest_path.read_text())["segments"]
    assert [s["deleted"] for s in listed] == [[], [[0, 2]], [], []]
    _assert_whole(c, ["aaa", "ccc", "ddd"])
    _assert_whole(open_collection(tmp_path, append_min=1), ["aaa", "ccc", "ddd"])


def test_a_segmented_collection_searches_as_one_saved_whole(tmp_path):
    segmented = _segmented(tmp_path / "seg", ("aaa", "bbb", "ccc", "ddd"))
    with segmented.writing():
        segmented.remove("bbb")
    whole = open_collection(tmp_path / "whole")
    for doc_id in ("aaa", "ccc", "ddd"):
        add(whole, doc_id, TEXTS[doc_id])
    reopened = open_collection(tmp_path / "seg", append_min=1)
    for query in ("gamma three", "epsilon", "alpha words", "six"):
        by_vector = [[(d.id, round(float(s), 5)) for d, s in c.vectorstore.similarity_search_with_score(query, k=6)]
                     for c in (reopened, whole)]
        assert by_vector[0] == by_vector[1] and len(by_vector[0]) == 5  # 6 asked, 5 live chunks
        hits = [[(h.document.id, round(h.score, 5)) for h in retrieval.search(query, [c], embeddings=TinyEmbeddings(),
                                                                              k=3)] for c in (reopened, whole)]
        assert hits[0] == hits[1]


def test_a_replaced_document_is_marked_deleted_in_its_segment(tmp_path):
    c = _segmented(tmp_path)
    info, chunks, vectors = make_doc("bbb2", ["gamma revised"])
    with c.writing():
        c.add(info, chunks, vectors, None, replacing=["bbb"])
    assert [d.page_content for d in c.documents] == TEXTS["aaa"] + TEXTS["ccc"] + ["gamma revised"]
    assert [s["deleted"] for s in json.loads(c.manifest_path.read_text())["segments"]] == [[], [[0, 2]], [], []]
    assert_pages_fit(open_collection(tmp_path, append_min=1))


def test_segments_as_big_as_the_first_or_many_deleted_rows_are_compacted_by_the_next_save(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "MAX_DELETED_SHARE", 0.2)
    c = _segmented(tmp_path)
    monkeypatch.setattr(segments, "MERGE_RATIO", 2)
    add(c, "ddd", TEXTS["ddd"])  # 1 row merges the last 2, then the 2 before (<= 2x 3), then the first: all
    assert [s["generation"] for s in json.loads(c.manifest_path.read_text())["segments"]] == [4]
    assert sorted(p.name for p in c.path.glob("index-*")) == ["index-4.faiss"]
    _assert_whole(open_collection(tmp_path, append_min=1), ["aaa", "bbb", "ccc", "ddd"])
    add(c, "eee", ["eta seven"])
    with c.writing():
        c.remove("aaa")  # 2 of 8 rows deleted: more than 20%, compacted
    assert [s["deleted"] for s in json.loads(c.manifest_path.read_text())["segments"]] == [[]]
    assert [d.page_content for d in open_collection(tmp_path).documents] == \
        TEXTS["bbb"] + TEXTS["ccc"] + TEXTS["ddd"] + ["eta seven"]


def test_an_add_merges_the_small_last_segments_and_keeps_the_big_first(tmp_path, monkeypatch):
    c = _segmented(tmp_path, ("big", "aaa", "bbb"))
    with c.writing():
        c.remove("aaa")
    first = {k: v for k, v in _files(c).items() if k.split("-")[-1].startswith("1.")}
    monkeypatch.setattr(segments, "MERGE_RATIO", 2)
    add(c, "ccc", TEXTS["ccc"])  # 2 rows: bbb's 2 and aaa's 0 merged with them, big's 20 kept
    listed = json.loads(c.manifest_path.read_text())["segments"]
    assert [(s["generation"], s["rows"], s["deleted"]) for s in listed] == [(1, 20, []), (5, 4, [])]
    assert {k: v for k, v in _files(c).items() if k.split("-")[-1].startswith("1.")} == first
    assert not list(c.path.glob("*-[234].*"))
    _assert_whole(c, ["big", "bbb", "ccc"])
    _assert_whole(open_collection(tmp_path, append_min=1), ["big", "bbb", "ccc"])
    add(c, "ddd", TEXTS["ddd"])  # the merged segment's terms follow the first's: the next segment's too
    _assert_whole(open_collection(tmp_path, append_min=1), ["big", "bbb", "ccc", "ddd"])


def test_a_background_compaction_keeps_the_adds_and_removals_made_meanwhile_and_blocks_no_search(
        tmp_path, monkeypatch):
    monkeypatch.setattr(store, "MAX_DELETED_SHARE", 0.2)
    c = open_collection(tmp_path, append_min=1, background_min=1)
    for doc_id in ("aaa", "bbb", "ccc"):
        add(c, doc_id, TEXTS[doc_id])
    started, release = hold_background_compactions(monkeypatch)
    with c.writing():
        c.remove("aaa")  # 2 of 6 rows deleted: a compaction is due, left to a thread
    assert started.wait(30) and not c.compaction_finished(timeout=0)
    assert [s["deleted"] for s in json.loads(c.manifest_path.read_text())["segments"]] == [[[0, 2]], [], []]
    assert c.vectorstore.similarity_search("gamma three", k=1)[0].page_content == "gamma three"
    add(c, "ddd", TEXTS["ddd"])  # neither waits for the compaction
    with c.writing():
        c.remove("bbb")
    release.set()
    assert c.compaction_finished(timeout=60)
    listed = json.loads(c.manifest_path.read_text())["segments"]
    # the compacted rows are bbb's and ccc's: bbb's marked deleted in it; ddd's segment after it
    assert [(s["rows"], s["deleted"]) for s in listed] == [(4, [[0, 2]]), (1, [])]
    assert listed[0]["generation"] == c.version and not (c.path / "compacting").exists()
    assert sorted(p.name for p in c.path.glob("index-*")) == sorted(f"index-{s['generation']}.faiss" for s in listed)
    _assert_whole(c, ["ccc", "ddd"])
    _assert_whole(open_collection(tmp_path, append_min=1), ["ccc", "ddd"])
    add(c, "aaa", TEXTS["aaa"])  # 2 of 7 rows deleted: compacted again, with nothing left to mark
    assert c.compaction_finished(timeout=60)
    assert [(s["rows"], s["deleted"]) for s in json.loads(c.manifest_path.read_text())["segments"]] == [(5, [])]
    _assert_whole(open_collection(tmp_path, append_min=1), ["ccc", "ddd", "aaa"])


# --------------------------------------------------------------------------- killed mid-write

KILL_CHILD = textwrap.dedent("""
    import os, re, sys, threading, time
    sys.path.insert(0, {root!r})
    target, phase, operation, data_dir = sys.argv[1:5]
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        name = os.path.join(os.path.basename(os.path.dirname(dst)), os.path.basename(dst))
        if not name.startswith("compacting" + os.sep):
            name = os.path.basename(dst)
        in_thread = threading.current_thread().name.startswith("compact-")
        hit = re.fullmatch(target, name) and in_thread == (operation == "background")
        if hit and phase == "before":
            print("AT", os.path.basename(dst), flush=True)
            time.sleep(120)
        real_replace(src, dst, *args, **kwargs)
        if hit and phase == "after":
            print("AT", os.path.basename(dst), flush=True)
            time.sleep(120)

    os.replace = replace
    from agent.search import store
    from tests.support import add, open_collection

    from agent.search import segments
    store.MAX_DELETED_SHARE = 0.5
    if operation in ("add", "remove"):  # "compact": 2-row segments merge into all; "merge": not the first
        segments.MERGE_RATIO = 0
    c = open_collection(data_dir, append_min=1, background_min=1 if operation == "background" else 10**9)
    if operation == "remove":
        with c.writing():
            c.remove("bbb")
    else:
        add(c, "ddd", ["zeta six"])  # "background": as "compact", the compaction in a thread
        c.compaction_finished()
    print("DONE", flush=True)
""").format(root=str(ROOT))

SEGMENT_FILES = [r"index-4\.faiss", r"chunks-4\.npy", r"lexicon-4\.npz", r"pages-4\.npz", r"manifest\.json"]


@pytest.mark.parametrize("operation,target,phase", [
    *[("add", t, p) for t in SEGMENT_FILES for p in ("before", "after")],
    ("remove", r"manifest\.json", "before"), ("remove", r"manifest\.json", "after"),
    *[("compact", t, "before") for t in SEGMENT_FILES], ("compact", r"manifest\.json", "after"),
    ("merge", r"index-4\.faiss", "before"), ("merge", r"manifest\.json", "before"),
    ("merge", r"manifest\.json", "after"),
    ("background", r"compacting/index-\d+\.faiss", "before"), ("background", r"compacting/pages-\d+\.npz", "after"),
    ("background", r"index-5\.faiss", "before"), ("background", r"pages-5\.npz", "after"),
    ("background", r"manifest\.json", "before"), ("background", r"manifest\.json", "after"),
])
def test_killed_while_writing_segments_leaves_the_old_or_the_new_version(tmp_path, operation, target, phase):
    before = ["big", "aaa", "bbb"] if operation == "merge" else ["aaa", "bbb", "ccc"]
    _segmented(tmp_path, before)
    script = tmp_path / "child.py"
    script.write_text(KILL_CHILD)
    child = subprocess.Popen([sys.executable, str(script), target, phase, operation, str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = child.stdout.readline()
        assert line.startswith("AT"), (line, child.stderr.read() if child.poll() is not None else "")
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    committed = operation == "background" or (phase == "after" and target == r"manifest\.json")
    after = [d for d in before if d != "bbb"] if operation == "remove" else [*before, "ddd"]
    c = open_collection(tmp_path, append_min=1)
    _assert_whole(c, after if committed else before)  # "background": the add committed before the compaction
    assert not (c.path / "compacting").exists()
    compacted = operation == "background" and phase == "after" and target == r"manifest\.json"
    assert len(json.loads(c.manifest_path.read_text())["segments"]) == (1 if compacted else 4) \
        or operation != "background"
    add(c, "eee", ["eta seven"])  # the next write works and leaves only files the manifest names
    named = {str(s["generation"]) for s in json.loads(c.manifest_path.read_text())["segments"]}
    numbered = [p for p in c.path.iterdir() if re.search(r"-\d+\.", p.name)]
    assert all(p.name.rsplit("-", 1)[-1].split(".")[0] in named for p in numbered), sorted(numbered)
    assert not list(c.path.glob(".*.tmp"))
    assert np.isclose(c.vectorstore.similarity_search_with_score("eta seven", k=1)[0][1], 1.0)


def test_the_keyword_index_reads_the_saved_postings_in_place_and_scores_as_a_whole_rebuild(tmp_path):
    c = open_collection(tmp_path)  # whole saves: one segment of big, aaa, bbb
    for doc_id in ("big", "aaa", "bbb"):
        add(c, doc_id, TEXTS[doc_id])
    c = open_collection(tmp_path, append_min=1)
    with c.writing():
        c.remove("aaa")  # from the middle of the segment: its rows skipped, not copied out
    add(c, "ccc", TEXTS["ccc"])
    snap = open_collection(tmp_path, append_min=1).snapshot()
    assert [s.deleted for s in snap.segments] == [((20, 22),), ()]
    index = keyword_index.collection_index(snap)
    assert "_joined" not in snap.__dict__  # the whole term counts were never made
    saved = snap.segments[0].postings
    assert np.shares_memory(index.chunk_bm25.parts[0].postings.rows, saved.chunks.rows)  # mapped, not copied
    whole = snap.lexicon.bm25()  # BM25 made from the joined counts of the live chunks
    for mine, rebuilt in zip((index.chunk_bm25, index.page_bm25), whole):
        assert mine.idf.tolist() == rebuilt.idf.tolist() and mine.norm.tolist() == rebuilt.norm.tolist()
        for query in ("gamma three", "big page", "alpha words", "delta four", "page 7 two"):
            assert mine.scores(query).tolist() == rebuilt.scores(query).tolist()
    damaged = next(c.path.glob("postings-*.npy"))
    damaged.write_bytes(damaged.read_bytes()[:200])
    reopened = open_collection(tmp_path, append_min=1)
    assert reopened.snapshot().keyword_postings() is None  # built from the term counts instead
    hits = retrieval.search("gamma three", [reopened], embeddings=TinyEmbeddings(), k=1)
    assert hits[0].document.page_content == "gamma three"


def test_an_add_leaves_the_other_segments_term_counts_as_they_were(tmp_path):
    c = _segmented(tmp_path)
    before = c.snapshot()
    add(c, "ddd", TEXTS["ddd"])
    after = c.snapshot()
    assert all(a.counts is b.counts for a, b in zip(after.segments, before.segments))  # not copied
    keyword_index.collection_index(after)
    assert "_joined" not in after.__dict__  # neither the add nor its keyword index joined all the counts
    _assert_whole(c, ["aaa", "bbb", "ccc", "ddd"])


def test_a_removal_reads_only_the_rows_of_the_removed_file(tmp_path, monkeypatch):
    c = _segmented(tmp_path, ("big", "aaa", "bbb"))
    scanned = []
    real = store.ChunkTable.rows_with

    def spy(table, key, values, span=None):
        scanned.append(span)
        return real(table, key, values, span)

    monkeypatch.setattr(store.ChunkTable, "rows_with", spy)
    with c.writing():
        c.remove("aaa")
    assert scanned == [(0, 2)]  # its segment's rows of aaa.pdf, found from the page table; no other segment read
    _assert_whole(c, ["big", "bbb"])


def test_a_collection_saved_by_main_before_per_segment_counts_loads_and_grows(tmp_path):
    """Main 7efa28c kept one joined copy of the counts in memory; its files are the same: read as they are."""
    tree = tmp_path / "old"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "7efa28c", "agent", "tests"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from agent.search import segments, store
        from tests.support import add, open_collection
        segments.MERGE_RATIO, store.MAX_DELETED_SHARE = 0, 0.5
        c = open_collection(Path(sys.argv[1]))  # one whole segment of big, aaa, bbb
        for doc_id in ("big", "aaa", "bbb"):
            add(c, doc_id, {TEXTS!r}[doc_id])
        c = open_collection(Path(sys.argv[1]), append_min=1)
        with c.writing():
            c.remove("aaa")  # deleted in the middle of it
        add(c, "ccc", {TEXTS!r}["ccc"])
    """)
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "data")], cwd=tree, check=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(tree)})
    c = open_collection(tmp_path / "data", append_min=1)
    _assert_whole(c, ["big", "bbb", "ccc"])
    assert keyword_index.collection_index(c).chunk_bm25.parts[0].postings is c.snapshot().segments[0].postings.chunks
    add(c, "ddd", TEXTS["ddd"])
    with c.writing():
        c.remove("bbb")
    _assert_whole(open_collection(tmp_path / "data", append_min=1), ["big", "ccc", "ddd"])
