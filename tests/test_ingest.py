"""Ingestion through the real pipeline: idempotence, replacement, bad input loses nothing."""

import shutil
import threading
import time

import pytest
from pypdf import PdfReader, PdfWriter

from agent.config import update_settings
from agent.ingest.pipeline import find_document, ingest_file, reindex, remove_document
from agent.workspace import Workspace
from tests.support import DEVSET_PDFS

GEOLOGY = DEVSET_PDFS / "squad_Geology.pdf"
HARVARD = DEVSET_PDFS / "squad_Harvard_University.pdf"


def ingest(workspace, path, **kw):
    return ingest_file(path, workspace.collection(), workspace.embeddings, workspace.settings, **kw)


def test_ingest_records_pages_chunks_and_citable_metadata(workspace):
    stages = []
    result = ingest(workspace, GEOLOGY, progress=lambda stage, done, total: stages.append(stage))
    assert result.status == "added" and result.pages == len(PdfReader(GEOLOGY).pages) and result.chunks > 0
    assert {"parse", "embed", "index"} <= set(stages)
    collection = workspace.collection()
    assert all(d.metadata["file"] == "squad_Geology.pdf" and d.metadata["page"] >= 1 for d in collection.documents)
    assert collection.stored_file(result.doc_id).read_bytes() == GEOLOGY.read_bytes()
    info = collection.document_infos()[0]
    assert (info.file, info.pages, info.chunks, info.size) == ("squad_Geology.pdf", result.pages, result.chunks,
                                                               GEOLOGY.stat().st_size)


def test_re_adding_an_unchanged_file_is_a_fast_no_op(workspace, ollama):
    ingest(workspace, GEOLOGY)
    version = workspace.collection().version
    embeds_before = len(ollama.embed_requests())
    started = time.perf_counter()
    again = ingest(workspace, GEOLOGY)
    assert again.status == "unchanged" and time.perf_counter() - started < 1.0
    assert workspace.collection().version == version and len(ollama.embed_requests()) == embeds_before


def test_same_name_new_content_replaces_the_old_version(workspace, tmp_path):
    first = tmp_path / "report.pdf"
    shutil.copy(GEOLOGY, first)
    old = ingest(workspace, first)
    shutil.copy(HARVARD, first)
    new = ingest(workspace, first)
    assert new.status == "replaced"
    assert [i.doc_id for i in workspace.collection().document_infos()] == [new.doc_id]
    assert all(d.metadata["doc_id"] == new.doc_id for d in workspace.collection().documents)
    assert old.doc_id != new.doc_id


@pytest.mark.parametrize("name,content,expected", [
    ("empty.pdf", b"", "empty"),
    ("garbage.pdf", b"\x00\x01garbage" * 100, "not a PDF"),
    ("image.pdf", b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "PNG"),
    ("notes.pdf", b"just some text\n" * 20, "not a PDF"),
])
def test_bad_files_fail_clearly_and_lose_nothing(workspace, tmp_path, name, content, expected):
    good = ingest(workspace, GEOLOGY)
    before = [d.id for d in workspace.collection().documents]
    bad = tmp_path / name
    bad.write_bytes(content)
    result = ingest(workspace, bad)
    assert result.status == "failed" and expected.lower() in result.message.lower()
    assert [d.id for d in Workspace(workspace.settings).collection().documents] == before
    assert good.ok


@pytest.mark.parametrize("devset_file,expected", [
    ("invalid.pdf", "could not be read"),
    ("libreoffice-writer-password.pdf", "password"),
])
def test_devset_bad_pdfs(workspace, devset_file, expected):
    result = ingest(workspace, DEVSET_PDFS / devset_file)
    assert result.status == "failed" and expected in result.message.lower()
    assert workspace.collection().documents == []


def test_encrypted_pdf_with_password(workspace):
    result = ingest(workspace, DEVSET_PDFS / "libreoffice-writer-password.pdf", password="openpassword")
    assert result.status == "added" and result.chunks > 0


def test_too_large_and_too_many_pages_are_refused(workspace, tmp_path):
    small = workspace.with_settings(update_settings(workspace.settings, max_pages=2, max_upload_mb=1))
    assert "pages" in ingest(small, DEVSET_PDFS / "squad_Apollo_program.pdf").message
    assert ingest(small, DEVSET_PDFS / "gnuplot.pdf").status == "failed"  # 1.3 MB > 1 MB


def test_hostile_names_stay_inside_the_data_dir(workspace, tmp_path):
    result = ingest(workspace, GEOLOGY, display_name="../../etc/passwd\n.pdf")
    assert result.ok and result.file == "passwd.pdf"
    stored = workspace.collection().stored_file(result.doc_id)
    assert stored.resolve().is_relative_to(workspace.data_dir.resolve())


def test_same_file_twice_at_once_is_indexed_once(workspace):
    results = []
    threads = [threading.Thread(target=lambda: results.append(ingest(workspace, GEOLOGY))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in results) == ["added", "unchanged"]
    assert len(workspace.collection().document_infos()) == 1


def test_remove_by_name_or_hash_prefix(workspace):
    geology = ingest(workspace, GEOLOGY)
    ingest(workspace, HARVARD)
    assert find_document(workspace.collection(), geology.doc_id[:8]).file == "squad_Geology.pdf"
    remove_document(workspace.collection(), "squad_Geology.pdf")
    assert {d.metadata["file"] for d in workspace.collection().documents} == {"squad_Harvard_University.pdf"}
    assert workspace.collection().stored_file(geology.doc_id) is None


def test_reindex_rebuilds_with_new_chunk_size(workspace):
    before = ingest(workspace, GEOLOGY).chunks
    smaller = workspace.with_settings(update_settings(workspace.settings, chunk_size=300, chunk_overlap=30))
    results = reindex(smaller.rebuildable("default"), smaller.embeddings, smaller.settings)
    assert [r.status for r in results] == ["added"] and results[0].chunks > before
    assert Workspace(smaller.settings).collection().document_infos()[0].chunks == results[0].chunks


def test_reindex_recovers_a_corrupt_index_from_stored_pdfs(workspace):
    ingest(workspace, GEOLOGY)
    collection = workspace.collection()
    collection.manifest_path.write_text("garbage")
    results = reindex(workspace.rebuildable("default"), workspace.embeddings, workspace.settings)
    assert [r.ok for r in results] == [True]
    assert Workspace(workspace.settings).collection().documents


def test_partial_pdf_pages_are_numbered_physically(workspace, tmp_path):
    writer = PdfWriter()
    reader = PdfReader(DEVSET_PDFS / "squad_Apollo_program.pdf")
    for page in reader.pages[:3]:
        writer.add_page(page)
    out = tmp_path / "three.pdf"
    with open(out, "wb") as handle:
        writer.write(handle)
    ingest(workspace, out)
    assert {d.metadata["page"] for d in workspace.collection().documents} == {1, 2, 3}
