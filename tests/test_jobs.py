"""Background jobs (agent/app/jobs.py): progress, stop, one report of the result, the registry;
and the ingest and re-index jobs the Documents page starts."""

from __future__ import annotations

import threading
import time

import pytest

from agent.app.jobs import Job, JobRegistry, JobStopped
from agent.app.uploads import ingest_job, reindex_job, save_upload
from agent.errors import DocumentError
from tests.support import DEVSET_PDFS

GNUPLOT = DEVSET_PDFS / "gnuplot.pdf"  # 311 pages, 1305 chunks: long enough to stop half-way
GEOLOGY = DEVSET_PDFS / "squad_Geology.pdf"
needs_devset = pytest.mark.skipif(not GNUPLOT.exists(), reason="devset PDFs not found")


def wait_until(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert condition()


def test_result_is_claimed_exactly_once_and_progress_never_goes_back() -> None:
    release = threading.Event()

    def work(job: Job[str]) -> str:
        for stage, done, total in [("parse", 0, 4), ("parse", 4, 4), ("embed", 1, 10), ("parse", 1, 4)]:
            job.report(stage, done, total)
        release.wait(10)
        return "finished"

    job = Job(work, kind="test").start()
    wait_until(lambda: job.progress.stage == "parse" and job.progress.done == 1)
    assert job.progress.fraction == pytest.approx(0.6 + 0.35 * 0.1)  # a late report does not move the bar back
    assert not job.done and not job.claim()  # nothing to report while it runs
    release.set()
    assert job.wait(10) and job.result == "finished" and job.error is None
    claims = [job.claim() for _ in range(3)]
    assert claims == [True, False, False]


def test_multi_item_progress_spans_the_items() -> None:
    def work(job: Job[None]) -> None:
        job.begin_item("a.pdf", 0, 2)
        job.report("embed", 5, 10)
        job.begin_item("b.pdf", 1, 2)
        job.report("parse", 0, 3)

    job = Job(work, kind="test").start()
    assert job.wait(10)
    assert job.progress.item == "b.pdf" and job.progress.items == 2
    assert job.progress.fraction == pytest.approx(0.5)


def test_stop_ends_the_work_at_its_next_report_but_never_while_committing() -> None:
    committed = threading.Event()

    def work(job: Job[str]) -> str:
        job.stop()
        job.report("index", 0, 1)  # committing: not interrupted
        committed.set()
        job.report("embed", 1, 2)  # interrupted here
        return "not reached"

    job = Job(work, kind="test").start()
    assert job.wait(10)
    assert committed.is_set() and job.stopped and job.result is None and job.error is None
    assert issubclass(JobStopped, BaseException) and not issubclass(JobStopped, Exception)


def test_failures_become_errors_never_exceptions() -> None:
    def user_error(job: Job[None]) -> None:
        raise DocumentError("That PDF is broken.", "Try another.")

    def bug(job: Job[None]) -> None:
        raise KeyError("oops")

    first, second = Job(user_error, kind="test").start(), Job(bug, kind="test").start()
    assert first.wait(10) and second.wait(10)
    assert first.error.message == "That PDF is broken." and first.result is None
    assert "Unexpected error" in second.error.message and "oops" in second.error.message


def test_registry_finds_jobs_and_forgets_claimed_ones() -> None:
    registry = JobRegistry()
    gate = threading.Event()
    slow = registry.start(Job(lambda job: gate.wait(10), kind="ingest", scope="a", owner="me"))
    quick = registry.start(Job(lambda job: 1, kind="reindex", scope="b", owner="you"))
    assert quick.wait(10)
    assert registry.jobs(owner="me") == [slow]
    assert registry.jobs(kind="reindex") == [quick]
    assert registry.jobs(scope="a", running=True) == [slow]
    assert registry.jobs(running=False) == [quick]
    assert quick.claim()
    gate.set()
    assert slow.wait(10)
    registry.start(Job(lambda job: None, kind="x"))  # starting a job drops the claimed ones
    assert quick not in registry.jobs() and slow in registry.jobs()  # slow is still to be reported


@needs_devset
def test_stopped_ingest_adds_nothing_and_deletes_its_upload(workspace, ollama) -> None:
    ollama.embed_delay = 0.05  # about 2 s of embedding: time to stop it half-way
    upload = save_upload(workspace.settings, GNUPLOT.read_bytes())
    job = ingest_job(workspace, "default", upload, "gnuplot.pdf").start()
    wait_until(lambda: job.progress.stage == "embed" and job.progress.done > 0, seconds=60)
    job.stop()
    assert job.wait(30) and job.stopped and job.result is None
    assert workspace.collection().document_infos() == []
    assert not upload.exists()
    files = workspace.collection().path / "files"
    assert not files.exists() or not any(files.iterdir())  # no stored copy either


@needs_devset
def test_ingest_job_runs_to_the_end_without_anyone_watching(workspace) -> None:
    upload = save_upload(workspace.settings, GEOLOGY.read_bytes())
    job = ingest_job(workspace, "default", upload, "../../squad_Geology.pdf").start()
    assert job.wait(60)
    assert job.result.status == "added" and job.result.pages == 4
    assert [i.file for i in workspace.collection().document_infos()] == ["squad_Geology.pdf"]
    assert not upload.exists()


@needs_devset
def test_reindex_job_reports_each_document(workspace) -> None:
    for pdf in (GEOLOGY, DEVSET_PDFS / "squad_Harvard_University.pdf"):
        upload = save_upload(workspace.settings, pdf.read_bytes())
        assert ingest_job(workspace, "default", upload, pdf.name).start().wait(60)
    job = reindex_job(workspace, "default").start()
    assert job.wait(60) and job.result.committed
    assert job.progress.items == 2 and job.progress.item_index == 1  # it went through both documents
    assert sorted(r.file for r in job.result) == ["squad_Geology.pdf", "squad_Harvard_University.pdf"]
    assert all(r.status == "added" and r.seconds > 0 for r in job.result)  # real per-file times
