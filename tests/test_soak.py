"""A bounded soak: many conversations in threads, ingestions meanwhile, injected faults,
against the Ollama double on loopback. Memory must stay flat and every turn and document
must be accounted for. Runs in about a minute; the figures are printed (pytest -s).
"""

from __future__ import annotations

import gc
import random
import threading
import time

import pytest

from agent.chat.engine import ChatEngine, Done
from agent.config import update_settings
from agent.ingest.pipeline import ingest_file, remove_document
from agent.workspace import Workspace
from tests.support import DEVSET_PDFS, assert_consistent, rss_mb

WORKERS = 6
ROUNDS = 25  # conversations per worker
TURNS = 4  # turns per conversation: 6 * 25 * 4 = 600 turns
WARMUP_ROUNDS = 5
INJECTED_FAILURES = 12
MAX_GROWTH_MB = 50
BASE_PDFS = ["squad_Geology.pdf", "squad_Harvard_University.pdf"]
LATER_PDFS = ["squad_Steam_engine.pdf", "squad_Victoria_Australia.pdf", "squad_Apollo_program.pdf",
              "cmrc2018_DEV_1011.pdf", "squad_Jacksonville_Florida.pdf"]
QUESTIONS = ["What does geology study?", "Which university is in Cambridge?", "How does a steam engine work?",
             "哪里是维多利亚州的首府？", "What was the Apollo program?", "Tell me more about that.",
             "And the second one?", "Summarise the documents."]


def drain_request_log(ollama) -> int:
    """Count and forget the double's recorded /api/chat requests. The double keeps every
    request body in memory (~14 KB per turn here); left alone, that test-harness log would
    be counted as the app's memory growth."""
    with ollama._lock:
        log = ollama._state.log
        chats = sum(1 for r in log if r.path == "/api/chat")
        log.clear()
    return chats


@pytest.mark.slow
def test_soak_many_conversations_and_ingestions_keep_memory_flat(workspace, ollama):
    collection = workspace.collection()
    for name in BASE_PDFS:
        assert ingest_file(DEVSET_PDFS / name, collection, workspace.embeddings, workspace.settings).ok
    ollama.chunk_delay = 0.001  # real streaming: many small chunks, interleaved across threads
    engines = {model: ChatEngine(workspace.with_settings(update_settings(workspace.settings, chat_model=model)))
               for model in ("llama3.2", "gemma:2b")}

    expected: dict[str, int] = {}  # conversation -> turns asked
    failures: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    warm = threading.Barrier(WORKERS + 1)
    resume = threading.Event()

    def worker(n: int) -> None:
        rng = random.Random(n)
        engine = engines["llama3.2" if n % 2 else "gemma:2b"]  # both modes, shared like the UI's cache
        try:
            for round_ in range(ROUNDS):
                if round_ == WARMUP_ROUNDS:
                    warm.wait(timeout=120)
                    resume.wait(timeout=120)
                conversation = f"w{n}-c{round_}"
                for _ in range(TURNS):
                    events = list(engine.stream(rng.choice(QUESTIONS), conversation))
                    done = [e for e in events if isinstance(e, Done)]
                    assert len(done) == 1 and events[-1] is done[0]
                    answer = done[0].answer
                    with lock:
                        expected[conversation] = expected.get(conversation, 0) + 1
                        if answer.error:
                            failures.append(answer.error)
                    assert answer.text or answer.error
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            warm.abort()

    def ingester() -> None:
        try:
            resume.wait(timeout=120)
            for name in LATER_PDFS:
                result = ingest_file(DEVSET_PDFS / name, workspace.collection(), workspace.embeddings,
                                     workspace.settings)
                assert result.ok, result.message
                time.sleep(0.5)
            remove_document(workspace.collection(), "squad_Jacksonville_Florida.pdf")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    samples: list[tuple[int, float]] = []
    sampling = threading.Event()
    chat_requests = [0]

    def sampler() -> None:  # RSS against turns done, to tell a plateau from a trend
        while not sampling.wait(1.0):
            chat_requests[0] += drain_request_log(ollama)
            with lock:
                done = sum(expected.values())
            samples.append((done, rss_mb()))

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(WORKERS)]
    threads.append(threading.Thread(target=ingester, daemon=True))
    for thread in threads:
        thread.start()
    warm.wait(timeout=180)  # every worker finished its warm-up conversations
    chat_requests[0] += drain_request_log(ollama)
    gc.collect()
    with lock:
        warm_turns = sum(expected.values())
    warm_rss = rss_mb()
    threading.Thread(target=sampler, daemon=True).start()
    ollama.fail_next("/api/chat", 503, "server busy, please try again.  maximum pending requests exceeded",
                     times=INJECTED_FAILURES)
    resume.set()
    for thread in threads:
        thread.join(timeout=240)
    elapsed = time.monotonic() - started
    assert not [t for t in threads if t.is_alive()], "the soak did not finish"
    assert not errors, errors[:3]
    sampling.set()
    chat_requests[0] += drain_request_log(ollama)
    gc.collect()
    end_rss = rss_mb()

    turns = sum(expected.values())
    print(f"\nsoak: {turns} turns in {len(expected)} conversations, {len(LATER_PDFS)} ingestions + 1 removal "
          f"during the chats, {chat_requests[0]} chat requests in {elapsed:.1f} s; "
          f"RSS after warm-up ({warm_turns} turns) {warm_rss:.1f} MB, at the end {end_rss:.1f} MB, "
          f"growth {end_rss - warm_rss:+.1f} MB; {len(failures)} answers failed on injected 503s\n"
          f"RSS by turns done: {', '.join(f'{n}:{mb:.0f}' for n, mb in samples)}")

    assert turns == WORKERS * ROUNDS * TURNS
    # Every answer is accounted for: one stored turn per question, failed ones marked incomplete.
    store = workspace.conversations
    assert {c.id for c in store.list()} == set(expected)
    stored = {cid: store.get(cid).turns for cid in expected}
    assert {cid: len(t) for cid, t in stored.items()} == expected
    incomplete = [t for turns_ in stored.values() for t in turns_ if t.incomplete]
    assert len(failures) == len(incomplete) == INJECTED_FAILURES, sorted(set(failures))
    assert all("busy" in t.error for t in incomplete) and all("busy" in f for f in failures)
    assert all(t.answer for turns_ in stored.values() for t in turns_ if not t.incomplete)
    # Every document is accounted for, and the index agrees with itself after a restart.
    final = Workspace(workspace.settings).collection()
    assert_consistent(final)
    assert {i.file for i in final.infos.values()} == set(BASE_PDFS + LATER_PDFS) - {"squad_Jacksonville_Florida.pdf"}
    # Memory stays flat once warm (the ingestions legitimately add their index and caches),
    # and there is no steady trend in the second half, when only chats run.
    assert end_rss - warm_rss < MAX_GROWTH_MB, f"RSS grew {end_rss - warm_rss:.1f} MB"
    halfway = next(mb for n, mb in samples if n >= turns // 2)
    assert end_rss - halfway < MAX_GROWTH_MB / 3, f"RSS still rising: {halfway:.1f} -> {end_rss:.1f} MB"
