"""What tests (and benches) share: the devset, ports, memory, the streamlit server, CLI runs,
small collections built in-test, and the consistency check of a stored collection."""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from streamlit.testing.v1 import AppTest

from agent.chat.conversations import ConversationStore
from agent.config import load_settings
from agent.ingest.pipeline import embed_chunks, file_sha256, ingest_file
from agent.search import store
from agent.search.store import Collection, DocumentInfo
from agent.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]


def find_devset() -> Path:
    """The devset: $BENCH_DEVSET, else shared/ beside the repository (as in CI), else /work/shared."""
    candidates = [Path(os.environ["BENCH_DEVSET"])] if os.environ.get("BENCH_DEVSET") else []
    candidates += [ROOT.parent / "shared" / "devset", Path("/work/shared/devset")]
    return next((c for c in candidates if (c / "pdfs").is_dir()), candidates[0])


DEVSET = find_devset()
DEVSET_PDFS = DEVSET / "pdfs"

# ------------------------------------------------------------------ processes, ports, memory

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-background-networking", "--disable-gpu", "--no-first-run",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_status_kb(field: str) -> float:
    """A field of /proc/self/status in KB (NaN where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return math.nan


def rss_mb() -> float:
    """Current resident memory of this process (MB)."""
    return proc_status_kb("VmRSS") / 1024


def wait_for_http(url: str, seconds: float, process: subprocess.Popen | None = None, poll: float = 0.3) -> float:
    """Poll `url` until it answers 200; return when (perf_counter). Raises if it never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter()
        except OSError:
            time.sleep(poll)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


@contextmanager
def streamlit_server(env: dict[str, str], port: int, log: IO[bytes]) -> Iterator[subprocess.Popen]:
    """`streamlit run streamlit_app.py` on 127.0.0.1:`port`, stopped (terminate, then kill) on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# ------------------------------------------------------------------ the app under test

def double_environ(double, **extra: str) -> dict[str, str]:
    """Environment for code under test: the Ollama double, fast embeddings served by the double."""
    return {"OLLAMA_HOST": double.url, "AGENT_EMBEDDING": "ollama:nomic-embed-text",
            "AGENT_BACKEND": "ollama", "AGENT_CONNECT_RETRIES": "2", **extra}


def run_cli(args: list[str], env: dict[str, str], stdin: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m agent ARGS` in a child process with `env` and none of our AGENT_/OLLAMA_ variables."""
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "OLLAMA_"))}, **env}
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=ROOT, env=full_env, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def seed_turns(store: ConversationStore, conversation_id: str, n: int) -> None:
    """`n` finished turns in one transaction (appending them one by one takes minutes at 10k)."""
    store.create(conversation_id=conversation_id)
    rows = [(conversation_id, f"Question {i}?", f"Answer {i}.", "[]", "llama3.2", "2026-01-01T00:00:00+00:00")
            for i in range(n)]
    with closing(sqlite3.connect(store.path)) as db, db:
        db.executemany("INSERT INTO turns (conversation_id, question, answer, sources, model, created) "
                       "VALUES (?, ?, ?, ?, ?, ?)", rows)


@contextmanager
def rows_read() -> Iterator[list[int]]:
    """Counts the rows every new SQLite connection fetches while inside (the count is `[0]`)."""
    count = [0]
    connect = sqlite3.connect

    def counted(cursor: sqlite3.Cursor, row: tuple) -> tuple:
        count[0] += 1
        return row

    def counting(*args, **kwargs) -> sqlite3.Connection:
        db = connect(*args, **kwargs)
        db.row_factory = counted
        return db

    sqlite3.connect = counting
    try:
        yield count
    finally:
        sqlite3.connect = connect


def add_texts(workspace: Workspace, file: str, pages: list[str], collection: str | None = None) -> None:
    """Index a few in-test texts as one document (one chunk per page), bypassing PDF parsing."""
    doc_id = hashlib.sha256("\0".join([file, *pages]).encode()).hexdigest()
    chunks = [Document(text, id=f"{doc_id}:{n}:0",
                       metadata={"file": file, "page": n, "doc_id": doc_id, "chunk_id": f"{doc_id}:{n}:0", "ocr": False})
              for n, text in enumerate(pages, 1)]
    target = workspace.collection(collection)
    vectors = embed_chunks(chunks, workspace.embeddings)
    info = DocumentInfo(doc_id, file, len(pages), len(chunks), sum(map(len, pages)), "2026-01-01T00:00:00+00:00")
    with target.writing():
        target.add(info, chunks, vectors, None)


def build_pdf(objects: list[bytes]) -> bytes:
    """A PDF whose objects 1..n are `objects` (1 must be the catalog), with a correct xref."""
    out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


# ------------------------------------------------------------------ stored collections

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


def open_collection(tmp_path, model="tiny-v1", **kw) -> Collection:
    return Collection(tmp_path, "docs", TinyEmbeddings(), model, **kw)


def add(collection: Collection, doc_id: str, texts: list[str]) -> None:
    info, chunks, vectors = make_doc(doc_id, texts)
    with collection.writing():
        collection.add(info, chunks, vectors, None)


def assert_consistent(collection: Collection) -> None:
    """Document infos, chunks, vectors and stored PDFs all agree."""
    per_doc: dict[str, int] = {}
    for chunk in collection.documents:
        per_doc[chunk.metadata["doc_id"]] = per_doc.get(chunk.metadata["doc_id"], 0) + 1
    assert per_doc == {doc_id: info.chunks for doc_id, info in collection.infos.items()}
    assert collection.vectorstore.index.ntotal == len(collection.documents)
    if collection.version:  # a saved generation has its keyword counts, in step with its chunks
        assert collection.lexicon is not None and collection.lexicon.fits(collection.documents)
        if isinstance(collection, Collection):  # the file store's page table (PostgreSQL's has none)
            assert_pages_fit(collection)
    store = collection.vectorstore  # every vector position leads to its own chunk
    assert [store.docstore.search(store.index_to_docstore_id[i]).metadata["chunk_id"]
            for i in range(len(collection.documents))] == [d.metadata["chunk_id"] for d in collection.documents]
    for doc_id, info in collection.infos.items():
        stored = collection.stored_file(doc_id)
        assert stored is not None and stored.name == info.file, (stored, info.file)
        assert file_sha256(stored) == doc_id  # the stored copy is complete


def assert_pages_fit(collection: Collection) -> None:
    """The saved page of each chunk and the page table are what the chunks give when read again."""
    from agent.search.lexical import page_groups
    from agent.search.page_table import PageTable

    lexicon, pages, docs = collection.lexicon, collection.snapshot().pages, list(collection.documents)
    keys, members = page_groups(docs)
    assert lexicon is not None and lexicon.chunk_page is not None and lexicon.pages.rows == len(keys)
    assert [lexicon.chunk_page[rows].tolist() for rows in members] == [[p] * len(rows) for p, rows in enumerate(members)]
    fresh = PageTable.build(docs)
    assert pages is not None and pages.keys() == keys and pages.contents.tolist() == fresh.contents.tolist()
    assert pages.titles_by_page() == fresh.titles_by_page()
    assert pages.last.tolist() == fresh.last.tolist() and pages.continues.tolist() == fresh.continues.tolist()


# ------------------------------------------------------------------ the web app in AppTest

APP = ROOT / "streamlit_app.py"
GEOLOGY = DEVSET_PDFS / "squad_Geology.pdf"
ENCRYPTED = DEVSET_PDFS / "libreoffice-writer-password.pdf"
TIMEOUT = 60

needs_devset = pytest.mark.skipif(not GEOLOGY.exists(), reason=f"devset PDFs not found at {DEVSET_PDFS}")


def run_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def ingest(path: Path) -> None:
    settings = load_settings()
    workspace = Workspace(settings)
    result = ingest_file(path, workspace.collection(), workspace.embeddings, settings)
    assert result.ok, result.message


def plain(markdown: str) -> str:
    """Markdown source as the user reads it: backslash escapes removed."""
    return re.sub(r"\\(.)", r"\1", markdown)


def texts(at: AppTest) -> str:
    """All visible text of the run (markdown, captions, text, alerts), one element per line."""
    parts = []
    for kind in ("markdown", "caption", "text", "error", "warning", "success", "info"):
        parts += [plain(str(e.value)) for e in getattr(at, kind)]
    return "\n".join(parts)


def until(at: AppTest, done, seconds: float = 30) -> AppTest:
    """Rerun the page (as its job panel does on a timer) until `done(at)`: jobs run in the background."""
    deadline = time.monotonic() + seconds
    while not done(at) and time.monotonic() < deadline:
        time.sleep(0.2)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    assert done(at), texts(at)
    return at


def succeeded(text: str):
    return lambda at: any(text in plain(s.value) for s in at.success)


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# ---- a small two-document library for chat tests -------------------------------------------------
GEOLOGY_TEXTS = ["Geology is the study of the solid Earth and the rocks of which it is composed.",
                 "Igneous rocks form from magma. Sedimentary rocks form from deposited sediment.",
                 "Plate tectonics explains earthquakes and mountain building."]
COOKING_TEXTS = ["A risotto needs arborio rice, stock and patience.",
                 "Bread rises because yeast produces carbon dioxide."]


def add_library(workspace: Any) -> Any:
    """geology.pdf (3 pages) and cooking.pdf (2 pages) in the workspace's collection."""
    add_texts(workspace, "geology.pdf", GEOLOGY_TEXTS)
    add_texts(workspace, "cooking.pdf", COOKING_TEXTS)
    return workspace


def engine_for(workspace: Any, **changes: Any) -> Any:
    """A chat engine on `workspace` with some settings changed."""
    from agent.chat.engine import ChatEngine
    from agent.config import update_settings

    settings = update_settings(workspace.settings, **changes) if changes else workspace.settings
    return ChatEngine(workspace.with_settings(settings))


def user_messages(body: dict[str, Any]) -> list[str]:
    """The user messages of one recorded /api/chat request."""
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


# ---- what an offline answer must never contain (tests/test_embedded_e2e.py, bench/offline.py) ------
PROMPT_MARKUP = re.compile(r"</?document|Question / 问题|\[[^\]\n]+ p\.\d+\]")


def repeated_run(text: str, size: int = 40, times: int = 3) -> str | None:
    """A `size`-character run that occurs `times` times in `text`, if any (a looping answer)."""
    return next((text[i:i + size] for i in range(len(text) - size) if text.count(text[i:i + size]) >= times), None)


def hold_background_compactions(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """Make a background compaction wait (before its `store.whole`) until `release` is set; `started` is set
    once one waits. Returns (started, release)."""
    started, release = threading.Event(), threading.Event()
    real_whole = store.whole

    def held(*args, **kwargs):
        if threading.current_thread().name.startswith("compact-"):
            started.set()
            assert release.wait(30)
        return real_whole(*args, **kwargs)

    monkeypatch.setattr(store, "whole", held)
    return started, release
