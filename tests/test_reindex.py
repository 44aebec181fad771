"""Re-index never drops a document silently (issue 13, item 2).

A document that fails under the current settings keeps its old chunks and vectors and is
marked "kept"; when there is no usable old index, nothing is committed unless the user
asks to leave the failing documents out. Passwords are never stored: the UI asks, and the
document is re-indexed alone with it.
"""

from __future__ import annotations

import json

import pytest

from agent.config import update_settings
from agent.ingest.pipeline import ingest_file
from agent.search.retrieval import search
from agent.workspace import Workspace
from tests.support import DEVSET_PDFS, double_environ, run_cli

APOLLO = DEVSET_PDFS / "squad_Apollo_program.pdf"  # 8 pages
VICTORIA = DEVSET_PDFS / "squad_Victoria_Australia.pdf"  # 3 pages
ENCRYPTED = DEVSET_PDFS / "libreoffice-writer-password.pdf"  # user password "openpassword"
pytestmark = pytest.mark.skipif(not APOLLO.exists(), reason="devset PDFs not found")


@pytest.fixture
def indexed(workspace: Workspace) -> dict[str, str]:
    """Three documents, one of them encrypted (its password given once, at upload, never stored)."""
    ids = {}
    for pdf, password in ((APOLLO, None), (VICTORIA, None), (ENCRYPTED, "openpassword")):
        result = ingest_file(pdf, workspace.collection(), workspace.embeddings, workspace.settings, password=password)
        assert result.status == "added", result.message
        ids[pdf.name] = result.doc_id
    return ids


def chunks_of(workspace: Workspace, doc_id: str) -> list[tuple[str, str]]:
    return [(c.id, c.page_content) for c in Workspace(workspace.settings).collection().documents
            if c.metadata["doc_id"] == doc_id]


def test_failing_documents_keep_their_old_index_and_are_marked(workspace, indexed):
    apollo, victoria, locked = indexed[APOLLO.name], indexed[VICTORIA.name], indexed[ENCRYPTED.name]
    apollo_before, locked_before = chunks_of(workspace, apollo), chunks_of(workspace, locked)
    stricter = workspace.with_settings(update_settings(workspace.settings, max_pages=5, chunk_size=400,
                                                       chunk_overlap=40))
    results = stricter.reindex("default")
    assert results.committed
    by_file = {r.file: r for r in results}
    assert by_file[APOLLO.name].status == "kept" and "page" in by_file[APOLLO.name].message
    assert by_file[ENCRYPTED.name].status == "kept" and by_file[ENCRYPTED.name].needs_password
    assert by_file[VICTORIA.name].status == "added"
    assert by_file[VICTORIA.name].seconds > 0  # real per-file times (they all read "0.0 s")
    assert not by_file[APOLLO.name].ok  # the CLI exits non-zero: not everything was rebuilt

    fresh = Workspace(stricter.settings).collection()  # what a reload sees
    assert set(fresh.infos) == {apollo, victoria, locked}
    assert chunks_of(stricter, apollo) == apollo_before and chunks_of(stricter, locked) == locked_before
    hits = search("Apollo program", [fresh], embeddings=stricter.embeddings, k=3)
    assert hits and hits[0].document.metadata["doc_id"] == apollo  # still found by search


def test_the_password_reindexes_that_document_alone(workspace, indexed):
    locked, victoria = indexed[ENCRYPTED.name], indexed[VICTORIA.name]
    smaller = workspace.with_settings(update_settings(workspace.settings, chunk_size=300, chunk_overlap=30))
    first = smaller.reindex("default")
    assert [r.file for r in first if r.needs_password] == [ENCRYPTED.name]
    victoria_after_first = chunks_of(smaller, victoria)

    wrong = smaller.reindex("default", passwords={locked: "nope"}, only={locked})
    assert [(r.file, r.status, r.needs_password) for r in wrong] == [(ENCRYPTED.name, "kept", True)]

    right = smaller.reindex("default", passwords={locked: "openpassword"}, only={locked})
    assert [(r.file, r.status) for r in right] == [(ENCRYPTED.name, "added")] and right.committed
    assert chunks_of(smaller, victoria) == victoria_after_first  # the others were not re-processed
    sizes = [len(text) for _, text in chunks_of(smaller, locked)]
    assert sizes and max(sizes) <= 300 + 30  # rebuilt with the new chunk size


def test_without_a_usable_old_index_nothing_is_committed_unless_asked(workspace, indexed):
    collection = workspace.collection()
    manifest = collection.manifest_path
    manifest.write_text("damaged")  # the index cannot be read: there is no old version to keep
    results = workspace.reindex("default")
    assert not results.committed
    assert manifest.read_text() == "damaged"  # nothing was written
    assert {(r.file, r.status) for r in results} == {
        (APOLLO.name, "unchanged"), (VICTORIA.name, "unchanged"), (ENCRYPTED.name, "failed")}
    assert next(r for r in results if r.status == "failed").needs_password

    with_password = workspace.reindex("default", passwords={indexed[ENCRYPTED.name]: "openpassword"})
    assert with_password.committed and all(r.status == "added" for r in with_password)
    assert len(Workspace(workspace.settings).collection().infos) == 3

    manifest.write_text("damaged")
    dropped = workspace.reindex("default", drop_failed=True)
    assert dropped.committed
    assert {(r.file, r.status) for r in dropped} == {
        (APOLLO.name, "added"), (VICTORIA.name, "added"), (ENCRYPTED.name, "dropped")}
    assert {i.file for i in Workspace(workspace.settings).collection().infos.values()} == {APOLLO.name, VICTORIA.name}


def test_cli_reindex_says_what_it_kept_and_when_nothing_changed(ollama, tmp_path):
    env = double_environ(ollama, AGENT_DATA_DIR=str(tmp_path / "data"))
    assert run_cli(["ingest", str(APOLLO), str(ENCRYPTED), "--password", "openpassword"], env).returncode == 0
    kept = run_cli(["reindex"], {**env, "AGENT_MAX_PAGES": "5"})
    assert kept.returncode == 1 and "KEPT" in kept.stdout and "Re-indexed 0 of 2" in kept.stdout
    (tmp_path / "data" / "collections" / "default" / "manifest.json").write_text("damaged")
    refused = run_cli(["reindex"], env)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "Nothing was changed" in refused.stderr and "--drop-failed" in refused.stderr
    fixed = run_cli(["reindex", "--password", "openpassword"], env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    docs = json.loads(run_cli(["docs", "--json"], env).stdout)
    assert sorted(d["file"] for d in docs) == sorted([APOLLO.name, ENCRYPTED.name])
