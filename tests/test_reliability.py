"""Faults never lose the user's data or end in a traceback.

Chat faults run against the Ollama double over real HTTP in both chat modes (agent:
llama3.2, which calls the search tool; always-retrieve: gemma:2b, no tools). Index faults
kill real subprocesses mid-save, run two ingesting processes at once, corrupt files on
disk, and make the disk refuse writes.

Already covered elsewhere (not repeated here): Ollama down before the first question
(test_chain.test_unreachable_server_is_a_message_not_a_traceback), a first-token timeout
and an in-stream error line in always-retrieve mode (test_chain.test_timeout_keeps_what_was_said,
test_broken_stream_keeps_partial_answer_and_next_turn_works), a crash just before the
manifest switch simulated in-process (test_store.test_crash_before_manifest_switch_keeps_previous_index),
three processes adding through `Collection.add` (test_store.test_two_processes_adding_at_once_both_land),
a corrupt manifest / index file on `Collection` (test_store) and reindex after a corrupt
manifest (test_ingest.test_reindex_recovers_a_corrupt_index_from_stored_pdfs), a corrupt or
invalid settings file (test_config).
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import agent._files as fileio
from agent.chat.engine import ChatEngine, Done, Token
from agent.config import load_settings, save_settings, update_settings
from agent.errors import StoreError
from agent.ingest.pipeline import file_sha256, ingest_file, reindex
from agent.workspace import Workspace
from tests.support import DEVSET_PDFS, add_texts, assert_consistent, double_environ

ROOT = Path(__file__).resolve().parents[1]
GEOLOGY_PDF = DEVSET_PDFS / "squad_Geology.pdf"
HARVARD_PDF = DEVSET_PDFS / "squad_Harvard_University.pdf"
STEAM_PDF = DEVSET_PDFS / "squad_Steam_engine.pdf"

GEOLOGY = ["Geology is the study of the solid Earth and the rocks of which it is composed.",
           "Igneous rocks form from magma. Sedimentary rocks form from deposited sediment.",
           "Plate tectonics explains earthquakes and mountain building."]

# (chat model, the mode it runs in)
MODES = [pytest.param("llama3.2", "agent", id="agent"),
         pytest.param("gemma:2b", "always_retrieve", id="always_retrieve")]


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def indexed(workspace):
    add_texts(workspace, "geology.pdf", GEOLOGY)
    return workspace


def engine_for(workspace, **changes) -> ChatEngine:
    return ChatEngine(workspace.with_settings(update_settings(workspace.settings, **changes)))


def ask_streamed(engine, question, conversation):
    """(tokens streamed, the final answer); the stream must end with exactly one Done."""
    events = list(engine.stream(question, conversation))
    assert sum(isinstance(e, Done) for e in events) == 1 and isinstance(events[-1], Done)
    return "".join(e.text for e in events if isinstance(e, Token)), events[-1].answer


def before_answer(ollama, mode, has_history, query="rocks"):
    """Queue the requests that precede the answer itself: the tool call (agent mode) or
    the follow-up rewrite (always-retrieve mode with history)."""
    if mode == "agent":
        ollama.reply_tool_call("search_documents", {"query": query})
    elif has_history:
        ollama.reply(query)


def role_shape(body) -> str:
    """The request's messages as letters: S system, U user, C assistant tool call, T tool, A answer."""
    letters = []
    for m in body["messages"]:
        role = m["role"]
        letters.append({"system": "S", "user": "U", "tool": "T"}.get(role) or ("C" if m.get("tool_calls") else "A"))
    return "".join(letters)


def assert_well_formed(body, broken_questions=()):
    """System prompt first, then complete turns, then the current question (plus this turn's
    tool round trips); no empty answer and none of the broken turns."""
    assert re.fullmatch(r"S(U(CT+)*A)*U(CT+)*", role_shape(body)), role_shape(body)
    for m in body["messages"]:
        if m["role"] == "assistant" and not m.get("tool_calls"):
            assert (m.get("content") or "").strip(), "an empty assistant message reached the model"
        for broken in broken_questions:
            assert broken not in (m.get("content") or ""), f"the broken turn {broken!r} was replayed"


def answer_request(ollama):
    """The request that produced the last answer (the last /api/chat request)."""
    return ollama.last_chat()


# --------------------------------------------------------------------------- chat faults

@pytest.mark.parametrize("model,mode", MODES)
def test_disconnect_mid_stream_keeps_partial_answer_and_conversation_stays_clean(indexed, ollama, model, mode):
    engine = engine_for(indexed, chat_model=model)
    ollama.reply("Geology studies rocks.")  # turn 1, answered without searching
    first = engine.ask("What is geology?", "dc")
    assert not first.error
    before_answer(ollama, mode, has_history=True)
    ollama.reply_disconnect_after(3, "Igneous rocks form from magma deep below.")
    streamed, broken = ask_streamed(engine, "How do igneous rocks form?", "dc")
    assert broken.mode == mode and broken.incomplete
    assert broken.text == streamed == "Igneous rocks form "  # the partial answer is kept as shown
    assert "broke off mid-answer" in broken.error and "ask again" in broken.error
    # Asking again works and the broken turn is not replayed.
    before_answer(ollama, mode, has_history=True)
    ollama.reply("Igneous rocks form from magma [1].")
    retry = engine.ask("How do igneous rocks form?", "dc")
    assert retry.text == "Igneous rocks form from magma [1]." and not retry.error
    body = answer_request(ollama)
    assert_well_formed(body)
    users = [m["content"] for m in body["messages"] if m["role"] == "user"]
    assert len(users) == 2 and "What is geology?" in users[0]  # turn 1 + the retry, not the broken one
    turns = indexed.conversations.get("dc").turns
    assert [(t.incomplete, bool(t.error)) for t in turns] == [(False, False), (True, True), (False, False)]
    assert turns[1].answer == "Igneous rocks form "
    assert "cut short" in indexed.conversations.export_markdown("dc")
    assert ollama.pending == 0


@pytest.mark.parametrize("model,mode", MODES)
def test_disconnect_before_any_byte_is_a_clear_error(indexed, ollama, model, mode):
    engine = engine_for(indexed, chat_model=model)
    ollama.reply_disconnect_after(0, "never sent")
    answer = engine.ask("Tell me about rocks.", "d0")
    assert answer.text == "" and answer.incomplete and "broke off" in answer.error
    ollama.clear()
    ollama.default_text = "Geology studies the solid Earth."
    again = engine.ask("What is geology?", "d0")
    assert again.text == "Geology studies the solid Earth." and not again.error
    assert_well_formed(answer_request(ollama), broken_questions=["Tell me about rocks."])
    assert len([m for m in answer_request(ollama)["messages"] if m["role"] == "user"]) == 1


@pytest.mark.parametrize("model,mode", MODES)
def test_busy_503_is_reported_and_asking_again_works(indexed, ollama, model, mode):
    engine = engine_for(indexed, chat_model=model)
    ollama.reply("Rocks.")
    engine.ask("What is geology?", "busy")
    before_answer(ollama, mode, has_history=True)
    ollama.reply_error(503, "server busy, please try again.  maximum pending requests exceeded")
    busy = engine.ask("How do igneous rocks form?", "busy")
    assert busy.incomplete and busy.text == ""
    assert "busy" in busy.error and "ask again" in busy.error
    before_answer(ollama, mode, has_history=True)
    ollama.reply("From magma [1].")
    retry = engine.ask("How do igneous rocks form?", "busy")
    assert retry.text == "From magma [1]." and not retry.error
    assert_well_formed(answer_request(ollama))
    users = [m["content"] for m in answer_request(ollama)["messages"] if m["role"] == "user"]
    assert len(users) == 2
    assert [t.incomplete for t in indexed.conversations.get("busy").turns] == [False, True, False]


def test_in_stream_error_line_in_agent_mode_keeps_partial_answer(indexed, ollama):
    # always-retrieve mode: test_chain.test_broken_stream_keeps_partial_answer_and_next_turn_works
    engine = engine_for(indexed, chat_model="llama3.2")
    ollama.reply_tool_call("search_documents", {"query": "igneous rocks"})
    ollama.reply_stream_error_after(2, "Igneous rocks form from magma.", "llama runner process has terminated")
    streamed, answer = ask_streamed(engine, "How do igneous rocks form?", "err")
    assert answer.text == streamed == "Igneous rocks " and answer.incomplete
    assert "llama runner process has terminated" in answer.error
    assert answer.sources and answer.sources[0]["file"] == "geology.pdf"  # the search did happen
    ollama.reply_tool_call("search_documents", {"query": "igneous rocks"})
    ollama.reply("From magma [1].")
    assert engine.ask("How do igneous rocks form?", "err").text == "From magma [1]."
    assert_well_formed(answer_request(ollama))
    assert [m["role"] for m in answer_request(ollama)["messages"]] == ["system", "user", "assistant", "tool"]


@pytest.mark.parametrize("model,mode", MODES)
def test_timeout_mid_answer_keeps_the_partial_answer(indexed, ollama, model, mode):
    # A first-token timeout in always-retrieve mode: test_chain.test_timeout_keeps_what_was_said.
    engine = engine_for(indexed, chat_model=model, request_timeout=0.5)
    before_answer(ollama, mode, has_history=False)
    ollama.reply("Igneous rocks form from magma deep below the surface.", chunk_delay=2.0)
    started = time.monotonic()
    streamed, answer = ask_streamed(engine, "How do igneous rocks form?", "slow")
    assert time.monotonic() - started < 5  # the read timeout applies between chunks too
    assert answer.text == streamed == "Igneous " and answer.incomplete
    assert "did not answer within 0.5 s" in answer.error and "timeout" in answer.error.lower()
    before_answer(ollama, mode, has_history=False)
    ollama.reply("From magma [1].")
    retry = engine.ask("How do igneous rocks form?", "slow")
    assert retry.text == "From magma [1]." and not retry.error
    assert_well_formed(answer_request(ollama))
    assert [t.incomplete for t in indexed.conversations.get("slow").turns] == [True, False]


@pytest.mark.parametrize("model,mode", MODES)
def test_ollama_down_mid_conversation_then_back(indexed, ollama, model, mode):
    engine = engine_for(indexed, chat_model=model)
    before_answer(ollama, mode, has_history=False)
    ollama.reply("Geology studies rocks [1].")
    assert not engine.ask("What is geology?", "down").error
    ollama.stop()
    started = time.monotonic()
    down = engine.ask("How do igneous rocks form?", "down")
    assert time.monotonic() - started < 10  # bounded retries, no hang
    assert "Cannot reach Ollama" in down.error and "ollama serve" in down.error
    assert down.text == "" and down.incomplete
    ollama.start()  # same port: the user restarted `ollama serve`
    before_answer(ollama, mode, has_history=True)
    ollama.reply("From magma [1].")
    back = engine.ask("How do igneous rocks form?", "down")
    assert back.text == "From magma [1]." and not back.error
    body = answer_request(ollama)
    assert_well_formed(body)
    assert [m["content"] for m in body["messages"] if m["role"] == "assistant" and not m.get("tool_calls")] \
        == ["Geology studies rocks [1]."]
    assert [t.incomplete for t in indexed.conversations.get("down").turns] == [False, True, False]


# --------------------------------------------------------------------------- killed mid-save

KILL_CHILD = textwrap.dedent("""
    import os, re, sys, time
    sys.path.insert(0, {root!r})
    target, phase, pdf, data_dir = sys.argv[1:5]
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        # every persistent write ends in this rename (agent.fileio.atomic_write_bytes)
        hit = re.fullmatch(target, os.path.basename(dst))
        if hit and phase == "before":  # temp file complete, not yet renamed
            print("AT", os.path.basename(dst), flush=True)
            time.sleep(120)
        real_replace(src, dst, *args, **kwargs)
        if hit and phase == "after":  # renamed, the next step not started
            print("AT", os.path.basename(dst), flush=True)
            time.sleep(120)

    os.replace = replace
    from agent.config import load_settings
    from agent.ingest.pipeline import ingest_file
    from agent.workspace import Workspace

    workspace = Workspace(load_settings(data_dir))
    result = ingest_file(pdf, workspace.collection(), workspace.embeddings, workspace.settings)
    print("DONE", result.status, result.message, flush=True)
""").format(root=str(ROOT))


def first_line(child: subprocess.Popen, timeout: float = 90.0) -> str:
    """The child's first stdout line, or a failure instead of a hang if it never comes."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"the child printed nothing within {timeout:g} s")
    return child.stdout.readline()


def child_env(ollama, data_dir: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "OLLAMA_"))}
    return {**base, **double_environ(ollama, AGENT_DATA_DIR=str(data_dir))}


def snapshot(collection) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for chunk in collection.documents:
        out.setdefault(chunk.metadata["doc_id"], []).append((chunk.id, chunk.page_content))
    return out


def leftovers(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.rglob("*.tmp"))


@pytest.mark.parametrize("target,phase", [
    (r"report\.pdf", "before"), (r"report\.pdf", "after"),
    (r"index-\d+\.faiss", "before"), (r"index-\d+\.faiss", "after"),
    (r"chunks-\d+\.npy", "before"), (r"chunks-\d+\.npy", "after"),
    (r"chunk-offsets-\d+\.npy", "before"), (r"chunk-offsets-\d+\.npy", "after"),
    (r"lexicon-\d+\.npz", "before"), (r"lexicon-\d+\.npz", "after"),
    (r"manifest\.json", "before"), (r"manifest\.json", "after"),
])
def test_killed_during_index_save_keeps_previous_index(workspace, ollama, tmp_path, target, phase):
    first = ingest_file(GEOLOGY_PDF, workspace.collection(), workspace.embeddings, workspace.settings)
    assert first.status == "added"
    before = snapshot(workspace.collection())
    report = tmp_path / "report.pdf"
    report.write_bytes(HARVARD_PDF.read_bytes())
    child = subprocess.Popen([sys.executable, "-c", KILL_CHILD, target, phase, str(report), str(workspace.data_dir)],
                             env=child_env(ollama, workspace.data_dir), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        line = first_line(child)
        assert line.startswith("AT"), (line, child.stderr.read() if child.poll() is not None else "")
        child.send_signal(signal.SIGKILL)  # no cleanup, no atexit, no finally
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()

    restarted = Workspace(workspace.settings).collection()  # a fresh process's view
    assert_consistent(restarted)
    after = snapshot(restarted)
    assert after[first.doc_id] == before[first.doc_id]  # the previous index is intact
    interrupted = file_sha256(report)
    committed = target == r"manifest\.json" and phase == "after"
    assert (interrupted in after) == committed  # all of the document, or none of it
    assert set(after) == set(before) | ({interrupted} if committed else set())

    # Ingesting the file again completes the job; crash debris does not confuse the store.
    again = ingest_file(report, restarted, workspace.embeddings, workspace.settings)
    assert again.status == ("unchanged" if committed else "added"), again.message
    fresh = Workspace(workspace.settings).collection()
    assert_consistent(fresh)
    assert set(fresh.infos) == {first.doc_id, interrupted}
    assert leftovers(fresh.path) == []  # the dead writer's temp files are cleaned by the next save
    rebuilt = reindex(workspace.rebuildable("default"), workspace.embeddings, workspace.settings)
    assert sorted((r.file, r.status) for r in rebuilt) == [("report.pdf", "added"), ("squad_Geology.pdf", "added")]
    assert_consistent(Workspace(workspace.settings).collection())


RANDOM_KILL_CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from agent.config import load_settings
    from agent.ingest.pipeline import ingest_file, remove_document
    from agent.workspace import Workspace

    workspace = Workspace(load_settings(sys.argv[1]))
    collection = workspace.collection()
    print("READY", flush=True)
    while True:  # add every PDF, then remove them all, until killed: the index is always being written
        for pdf in sys.argv[2:]:
            ingest_file(pdf, collection, workspace.embeddings, workspace.settings)
        for info in collection.document_infos():
            remove_document(collection, info.doc_id)
""").format(root=str(ROOT))


def test_killed_at_random_moments_never_corrupts_the_index(workspace, ollama, tmp_path):
    import random

    rng = random.Random(20260101)
    pdfs = [GEOLOGY_PDF, HARVARD_PDF, STEAM_PDF, DEVSET_PDFS / "squad_Victoria_Australia.pdf"]
    env = child_env(ollama, workspace.data_dir)
    debris_seen = 0
    for _ in range(6):
        child = subprocess.Popen([sys.executable, "-c", RANDOM_KILL_CHILD, str(workspace.data_dir), *map(str, pdfs)],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert first_line(child).startswith("READY")
            time.sleep(rng.uniform(0.2, 1.5))
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
        debris_seen += bool(leftovers(workspace.data_dir))
        assert_consistent(Workspace(workspace.settings).collection())
    finished = Workspace(workspace.settings).collection()
    for pdf in pdfs:
        assert ingest_file(pdf, finished, workspace.embeddings, workspace.settings).ok
    final = Workspace(workspace.settings).collection()
    assert_consistent(final)
    assert {i.file for i in final.infos.values()} == {p.name for p in pdfs}
    assert leftovers(final.path) == []
    print(f"random kills: {debris_seen} of 6 landed mid-write")


# --------------------------------------------------------------------------- two writers

INGEST_CHILD = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, {root!r})
    from agent.config import load_settings
    from agent.ingest.pipeline import ingest_file
    from agent.workspace import Workspace

    go = sys.argv[1]
    workspace = Workspace(load_settings())  # AGENT_DATA_DIR, OLLAMA_HOST, AGENT_EMBEDDING from the environment
    collection = workspace.collection()
    print("READY", flush=True)
    while not os.path.exists(go):  # start both processes' ingestions at the same moment
        time.sleep(0.005)
    for pdf in sys.argv[2:]:
        result = ingest_file(pdf, collection, workspace.embeddings, workspace.settings)
        print(json.dumps(result.as_dict()), flush=True)
""").format(root=str(ROOT))


def test_two_processes_ingesting_into_one_collection_both_land(workspace, ollama, tmp_path):
    go = tmp_path / "go"
    env = child_env(ollama, workspace.data_dir)
    jobs = [[GEOLOGY_PDF, STEAM_PDF], [HARVARD_PDF, DEVSET_PDFS / "cmrc2018_DEV_1011.pdf"]]
    children = [subprocess.Popen([sys.executable, "-c", INGEST_CHILD, str(go), *map(str, job)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for job in jobs]
    try:
        for child in children:
            assert first_line(child).startswith("READY")
        go.touch()
        outputs = [child.communicate(timeout=120) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert [c.returncode for c in children] == [0, 0], [err for _, err in outputs]
    results = [json.loads(line) for out, _ in outputs for line in out.splitlines()]
    assert [r["status"] for r in results] == ["added"] * 4, results
    collection = Workspace(workspace.settings).collection()
    assert_consistent(collection)
    assert {i.file for i in collection.infos.values()} == {p.name for job in jobs for p in job}
    assert {r["doc_id"]: r["chunks"] for r in results} == {k: v.chunks for k, v in collection.infos.items()}
    hits = collection.vectorstore.similarity_search("Harvard University", k=3)
    assert hits and all(h.id in {d.id for d in collection.documents} for h in hits)


# --------------------------------------------------------------------------- corrupt files on disk


def _edit_manifest(change):
    def corrupt(collection):
        manifest = json.loads(collection.manifest_path.read_text())
        change(manifest)
        collection.manifest_path.write_text(json.dumps(manifest))
    return corrupt


def _generation_file(collection, pattern):
    return next(collection.path.glob(pattern))


def _flip_byte(path):
    """One changed byte in the middle of the chunk texts: the shape still reads, the checksum does not."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "manifest-empty": lambda c: c.manifest_path.write_bytes(b""),
    "manifest-binary": lambda c: c.manifest_path.write_bytes(os.urandom(300)),
    "manifest-json-list": lambda c: c.manifest_path.write_text("[]"),
    "manifest-missing-keys": lambda c: c.manifest_path.write_text('{"format": 1}'),
    "manifest-bad-document-entry": _edit_manifest(lambda m: m["documents"].update(x={"bogus": 1})),
    "manifest-missing-generation": _edit_manifest(lambda m: m["segments"][0].update(generation=99)),
    "index-truncated": lambda c: _generation_file(c, "index-*.faiss").write_bytes(
        _generation_file(c, "index-*.faiss").read_bytes()[:64]),
    "index-empty": lambda c: _generation_file(c, "index-*.faiss").write_bytes(b""),
    "chunks-truncated": lambda c: _generation_file(c, "chunks-*.npy").write_bytes(
        _generation_file(c, "chunks-*.npy").read_bytes()[:300]),
    "chunks-byte-flipped": lambda c: _flip_byte(_generation_file(c, "chunks-*.npy")),
    "chunks-random": lambda c: _generation_file(c, "chunks-*.npy").write_bytes(b"\xff\xfe" + os.urandom(500)),
    "offsets-truncated": lambda c: _generation_file(c, "chunk-offsets-*.npy").write_bytes(
        _generation_file(c, "chunk-offsets-*.npy").read_bytes()[:140]),
    "offsets-missing": lambda c: _generation_file(c, "chunk-offsets-*.npy").unlink(),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_index_is_reported_with_the_rebuild_and_reindex_restores_it(workspace, ollama, corruption):
    collection = workspace.collection()
    for pdf in (GEOLOGY_PDF, HARVARD_PDF):
        assert ingest_file(pdf, collection, workspace.embeddings, workspace.settings).status == "added"
    expected = {(i.file, i.chunks) for i in collection.infos.values()}
    pdfs = {p: p.read_bytes() for p in collection.path.glob("files/*/*")}
    CORRUPTIONS[corruption](collection)

    with pytest.raises(StoreError) as err:  # what the Documents page and the CLI call
        Workspace(workspace.settings).collection()
    assert "cannot be loaded" in err.value.message and "reindex" in err.value.fix
    assert "PDFs are kept" in err.value.fix
    # The chat reports it as a message, in both modes, instead of crashing.
    for model in ("llama3.2", "gemma:2b"):
        ollama.reply_tool_call("search_documents", {"query": "rocks"})
        answer = ChatEngine(Workspace(update_settings(workspace.settings, chat_model=model))).ask("What is geology?")
        assert "cannot be loaded" in answer.error and "reindex" in answer.error
        ollama.clear()
    assert {p: p.read_bytes() for p in collection.path.glob("files/*/*")} == pdfs  # never deleted or changed

    results = reindex(workspace.rebuildable("default"), workspace.embeddings, workspace.settings)
    assert [r.ok for r in results] == [True, True]
    restored = Workspace(workspace.settings).collection()
    assert_consistent(restored)
    assert {(i.file, i.chunks) for i in restored.infos.values()} == expected
    assert {p: p.read_bytes() for p in restored.path.glob("files/*/*")} == pdfs


def run_cli(args, env, timeout=120):
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_reports_a_corrupt_index_in_one_line_and_reindex_repairs_it(workspace, ollama):
    collection = workspace.collection()
    ingest_file(GEOLOGY_PDF, collection, workspace.embeddings, workspace.settings)
    CORRUPTIONS["manifest-json-list"](collection)
    env = child_env(ollama, workspace.data_dir)
    broken = run_cli(["docs"], env)
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1 and "python -m agent reindex" in broken.stderr
    fixed = run_cli(["reindex"], env)
    assert fixed.returncode == 0, fixed.stderr
    assert "Re-indexed 1 of 1" in fixed.stdout
    listed = run_cli(["docs", "--json"], env)
    assert [d["file"] for d in json.loads(listed.stdout)] == ["squad_Geology.pdf"]


@pytest.mark.parametrize("damage", ["directory", "not-utf8", "json-list", "truncated"])
def test_damaged_settings_file_never_stops_the_app(workspace, ollama, damage):
    path = workspace.settings.settings_path
    save_settings(update_settings(workspace.settings, retrieval_k=7))
    if damage == "directory":
        path.unlink()
        path.mkdir()
    elif damage == "not-utf8":
        path.write_bytes(b'{"retrieval_k": "\xff\xfe"}')
    elif damage == "json-list":
        path.write_text("[1, 2]")
    else:
        path.write_text(path.read_text()[:5])
    from agent.config import read_settings

    settings, problems = read_settings(workspace.data_dir, environ=double_environ(ollama))
    assert settings.retrieval_k == 5 and problems  # defaults, and the UI can say why
    assert "settings.json" in str(problems[0]) and "defaults" in str(problems[0])
    add_texts(Workspace(settings), "geology.pdf", GEOLOGY)  # the app works meanwhile
    ollama.reply("Rocks [1].")
    assert ChatEngine(Workspace(update_settings(settings, chat_model="gemma:2b"))).ask("Rocks?").text
    if damage == "directory":  # saving cannot fix this one: a clear StoreError, nothing deleted
        with pytest.raises(StoreError) as err:
            save_settings(update_settings(settings, retrieval_k=8))
        assert "settings.json" in err.value.message and "writable" in err.value.fix
        assert path.is_dir()
    else:  # saving from the Settings page replaces the damaged file
        save_settings(update_settings(settings, retrieval_k=8))
        again, problems = read_settings(workspace.data_dir, environ=double_environ(ollama))
        assert again.retrieval_k == 8 and problems == []
    assert leftovers(workspace.data_dir) == []


def test_damaged_conversation_database_does_not_break_the_chat_stream(indexed, ollama):
    (indexed.data_dir / "conversations.sqlite3").write_bytes(b"not a database " * 500)
    engine = ChatEngine(Workspace(update_settings(indexed.settings, chat_model="gemma:2b")))
    streamed, answer = ask_streamed(engine, "What is geology?", "db")  # no exception out of the stream
    assert "Conversation database" in answer.error
    assert (indexed.data_dir / "conversations.sqlite3").read_bytes().startswith(b"not a database")


# --------------------------------------------------------------------------- read-only data, full disk


def fail_replace(monkeypatch, nth: int, err: int = errno.ENOSPC) -> list[str]:
    """Make the nth rename of an atomic write fail (1-based; 0: every one), as a full disk would."""
    real = os.replace
    calls: list[str] = []

    def replace(src, dst, *args, **kwargs):
        calls.append(os.path.basename(dst))
        if nth in (0, len(calls)):
            raise OSError(err, os.strerror(err), str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(fileio.os, "replace", replace)
    return calls


def state_on_disk(collection) -> dict[str, bytes]:
    return {str(p.relative_to(collection.path)): p.read_bytes()
            for p in sorted(collection.path.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.mark.parametrize("nth,target", [(1, "stored PDF copy"), (2, "index"), (3, "chunks"), (4, "manifest")])
def test_disk_full_during_ingestion_changes_nothing(workspace, monkeypatch, nth, target):
    collection = workspace.collection()
    first = ingest_file(GEOLOGY_PDF, collection, workspace.embeddings, workspace.settings)
    before = state_on_disk(collection)
    calls = fail_replace(monkeypatch, nth)
    result = ingest_file(HARVARD_PDF, collection, workspace.embeddings, workspace.settings)
    monkeypatch.undo()
    assert len(calls) == nth  # it stopped at the first failed write
    assert result.status == "failed" and "No space left on device" in result.message
    assert "disk has space" in result.message and "previous version is unchanged" in result.message
    assert state_on_disk(collection) == before  # no temp file, no orphan PDF copy, same manifest
    assert set(collection.infos) == {first.doc_id} and collection.vectorstore.index.ntotal == first.chunks
    restarted = Workspace(workspace.settings).collection()
    assert_consistent(restarted)
    assert set(restarted.infos) == {first.doc_id}
    # Space freed: the same ingestion now works, and a rebuild does not resurrect anything.
    assert ingest_file(HARVARD_PDF, collection, workspace.embeddings, workspace.settings).status == "added"
    assert_consistent(Workspace(workspace.settings).collection())


def test_disk_full_while_replacing_a_document_keeps_the_old_version(workspace, monkeypatch, tmp_path):
    report = tmp_path / "report.pdf"
    report.write_bytes(GEOLOGY_PDF.read_bytes())
    old = ingest_file(report, workspace.collection(), workspace.embeddings, workspace.settings)
    report.write_bytes(HARVARD_PDF.read_bytes())  # a new version under the same name
    real = fileio.atomic_write_bytes

    def no_room_for_big_files(path, data):  # small index files still fit, the new PDF copy does not
        if Path(path).name == "report.pdf":
            raise StoreError("Could not write report.pdf: No space left on device.", "Free some space.")
        return real(path, data)

    import agent.search.store as store

    monkeypatch.setattr(store, "atomic_write_bytes", no_room_for_big_files)
    result = ingest_file(report, workspace.collection(), workspace.embeddings, workspace.settings)
    monkeypatch.undo()
    assert result.status == "failed" and "No space left" in result.message
    kept = Workspace(workspace.settings).collection()
    assert_consistent(kept)
    assert list(kept.infos) == [old.doc_id], "the old version was removed before the new one was stored"
    assert file_sha256(kept.stored_file(old.doc_id)) == old.doc_id
    assert ingest_file(report, kept, workspace.embeddings, workspace.settings).status == "replaced"
    assert_consistent(Workspace(workspace.settings).collection())


def test_disk_full_when_saving_settings_keeps_the_previous_file(workspace, monkeypatch):
    path = save_settings(update_settings(workspace.settings, retrieval_k=7))
    before = path.read_bytes()
    fail_replace(monkeypatch, 0)
    with pytest.raises(StoreError) as err:
        save_settings(update_settings(workspace.settings, retrieval_k=9))
    monkeypatch.undo()
    assert "settings.json" in err.value.message and "No space left" in err.value.message
    assert path.read_bytes() == before and leftovers(workspace.data_dir) == []


def make_read_only(monkeypatch, folder: Path) -> str:
    """Make `folder` refuse writes: chmod where that works; as root (chmod does not stop root)
    every temp file creation under it fails with EACCES instead. Returns the method used."""
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
    for p in modes:
        p.chmod(0o555 if p.is_dir() else 0o444)
    probe = folder / ".probe"
    try:
        probe.touch()
    except PermissionError:
        return "chmod"
    probe.unlink()
    for p, mode in modes.items():
        p.chmod(mode)
    real = fileio.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve().is_relative_to(folder.resolve()):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp)
    return "EACCES on create (running as root)"


def restore_writable(folder: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


def test_read_only_data_dir_is_a_clear_message_and_loses_nothing(workspace, monkeypatch):
    collection = workspace.collection()
    first = ingest_file(GEOLOGY_PDF, collection, workspace.embeddings, workspace.settings)
    save_settings(update_settings(workspace.settings, retrieval_k=7))
    before = state_on_disk(collection)
    settings_before = workspace.settings.settings_path.read_bytes()
    try:
        make_read_only(monkeypatch, workspace.data_dir)
        result = ingest_file(HARVARD_PDF, collection, workspace.embeddings, workspace.settings)
        assert result.status == "failed" and "writable" in result.message
        with pytest.raises(StoreError, match="writable"):
            save_settings(update_settings(workspace.settings, retrieval_k=9))
        from agent.ingest.pipeline import remove_document

        with pytest.raises(StoreError, match="writable"):
            remove_document(collection, "squad_Geology.pdf")
        # Reading still works: the documents can be listed and searched.
        reader = Workspace(workspace.settings)
        assert [i.file for i in reader.collection().document_infos()] == ["squad_Geology.pdf"]
        assert ChatEngine(reader).retrieve("geology rocks")
    finally:
        monkeypatch.undo()
        restore_writable(workspace.data_dir)
    assert state_on_disk(collection) == before
    assert workspace.settings.settings_path.read_bytes() == settings_before
    assert set(Workspace(workspace.settings).collection().infos) == {first.doc_id}


def test_a_file_where_the_data_folders_should_be_is_a_clear_message(tmp_path, ollama):
    data = tmp_path / "data"
    data.mkdir()
    (data / "collections").write_text("not a folder")
    settings = load_settings(data, environ=double_environ(ollama))
    workspace = Workspace(settings)
    result = ingest_file(GEOLOGY_PDF, workspace.collection(), workspace.embeddings, settings)
    assert result.status == "failed"
    assert "collection" in result.message.lower() and "writable" in result.message
    assert "Cannot read squad_Geology.pdf" not in result.message  # the PDF is fine: the data dir is not
    assert (data / "collections").read_text() == "not a folder"
    # The data directory itself is a file: the chat says so instead of raising.
    blocked = tmp_path / "blocked"
    blocked.write_text("x")
    engine = ChatEngine(Workspace(load_settings(blocked, environ=double_environ(ollama, AGENT_CHAT_MODEL="gemma:2b"))))
    answer = engine.ask("What is geology?")
    assert answer.error and "conversation database" in answer.error.lower()
