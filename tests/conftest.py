"""Shared fixtures: the Ollama test double, a settings object pointing at it, a workspace."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.documents import Document

from agent.config import Settings, load_settings
from agent.ingest.pipeline import embed_chunks
from agent.search.store import DocumentInfo
from agent.workspace import Workspace
from tests.ollama_double import OllamaDouble

ROOT = Path(__file__).resolve().parents[1]
DEVSET = Path(__file__).resolve().parents[2] / "shared" / "devset"
if not DEVSET.exists():  # a git worktree (e.g. /work/wt/NAME) is not next to ../shared
    DEVSET = Path("/work/shared/devset")
DEVSET_PDFS = DEVSET / "pdfs"


@pytest.fixture
def ollama() -> Iterator[OllamaDouble]:
    with OllamaDouble() as double:
        yield double


def double_environ(double: OllamaDouble, **extra: str) -> dict[str, str]:
    """Environment for code under test: the double, fast embeddings served by the double."""
    return {"OLLAMA_HOST": double.url, "AGENT_EMBEDDING": "ollama:nomic-embed-text",
            "AGENT_BACKEND": "ollama", "AGENT_CONNECT_RETRIES": "2", **extra}


def run_cli(args: list[str], env: dict[str, str], stdin: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m agent ARGS` in a child process with `env` and none of our AGENT_/OLLAMA_ variables."""
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "OLLAMA_"))}, **env}
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=ROOT, env=full_env, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def settings(tmp_path: Path, ollama: OllamaDouble) -> Settings:
    return load_settings(tmp_path / "data", environ=double_environ(ollama))


@pytest.fixture
def workspace(settings: Settings) -> Workspace:
    return Workspace(settings)


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
