"""End to end with real models and no Ollama: local embedder + embedded SmolLM2 via the chain.

The same ChatEngine the UI and CLI use; only the backend differs (auto falls back to the
embedded model because nothing listens at OLLAMA_HOST). Wording is not asserted: builds differ.
"""

import json
import re
import socket
import time

import pytest

from agent.chat.engine import ChatEngine, Done, Status, Token
from agent.config import load_settings
from agent.ingest.pipeline import ingest_file
from agent.workspace import Workspace
from tests.support import DEVSET, DEVSET_PDFS, PROMPT_MARKUP, engine_for, repeated_run, run_cli

pytest.importorskip("llama_cpp", reason="embedded model not installed (scripts/setup.sh installs it)")
pytestmark = pytest.mark.slow


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture(scope="module")
def offline_env(tmp_path_factory):
    return {"OLLAMA_HOST": closed_port(), "AGENT_DATA_DIR": str(tmp_path_factory.mktemp("data")),
            "AGENT_BACKEND": "auto", "AGENT_CONNECT_RETRIES": "1", "AGENT_NUM_PREDICT": "48",
            "AGENT_TEMPERATURE": "0"}


@pytest.fixture(scope="module")
def workspace(offline_env):
    workspace = Workspace(load_settings(environ=offline_env))
    for pdf in ("squad_Geology.pdf", "cmrc2018_DEV_573.pdf"):
        result = ingest_file(DEVSET_PDFS / pdf, workspace.collection(), workspace.embeddings, workspace.settings)
        assert result.status == "added"
    return workspace


def gold(question_id: str) -> dict:
    for line in (DEVSET / "questions.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["id"] == question_id:
            return row
    raise LookupError(question_id)


def test_embedded_model_answers_from_the_documents(workspace):
    q = gold("q014")  # "What do petrologists use electron microprobes in the laboratory for?" (page 3)
    engine = ChatEngine(workspace)
    events = list(engine.stream(q["question"], "e2e"))
    answer = events[-1].answer
    assert isinstance(events[-1], Done) and not answer.error, answer.error
    assert answer.mode == "always_retrieve" and "embedded" in answer.model
    assert "Ollama" in answer.notice  # the user is told how to switch
    assert len([e for e in events if isinstance(e, Token)]) > 1 and answer.text.strip()
    assert (q["file"], q["page"]) in {(s["file"], s["page"]) for s in answer.sources}


def test_cli_chat_works_offline(offline_env, workspace):
    result = run_cli(["chat"], offline_env, stdin="What is geology?\nexit\n", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "embedded" in result.stdout and "ollama serve" in result.stdout  # the notice
    answer = result.stdout.split(">>> ", 2)[1]
    assert answer.strip()


def test_web_app_answers_offline(offline_env, workspace, monkeypatch):
    """The Chat page answers with the embedded model when no Ollama runs (AppTest)."""
    from agent.config import ENV_VARS
    from tests.support import run_app

    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    for var, value in offline_env.items():
        monkeypatch.setenv(var, value)
    at = run_app()
    sidebar = "\n".join(str(e.value) for e in [*at.sidebar.info, *at.sidebar.warning, *at.sidebar.caption])
    assert "offline demo model answers" in sidebar and not at.sidebar.error  # a calm notice: the app works
    at.chat_input[0].set_value(gold("q014")["question"]).run()
    for _ in range(120):  # the answer runs in a worker thread: rerun until it is stored and shown
        if any("Sources" in e.label for e in at.expander):
            break
        time.sleep(0.5)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Sources" in e.label for e in at.expander)
    assert not at.main.error, [e.value for e in at.main.error]  # the sidebar rightly says Ollama is down
    assert any("offline demo model" in c.value for c in at.main.caption), "said next to the answer too"


@pytest.mark.parametrize("question_id", ["q014", "q341"])  # English (Geology p.3), Chinese (cmrc2018_DEV_573)
def test_offline_answer_quotes_at_once_then_a_short_clean_summary(workspace, question_id):
    q = gold(question_id)
    engine = engine_for(workspace, num_predict=1024)  # the product default: the embedded model caps it
    started, searched, first = time.monotonic(), None, None
    for event in engine.stream(q["question"]):
        if isinstance(event, Status) and event.code == "read" and searched is None:
            searched = time.monotonic()
        if isinstance(event, Token) and first is None:
            first = time.monotonic()
        if isinstance(event, Done):
            answer = event.answer
    took = time.monotonic() - started
    assert not answer.error and took < 90, (answer.error, took)
    assert first - searched < 2, "the quotes come before any model call"
    assert len(answer.sources) >= 2, "two excerpts fit the 2048-token window"
    assert (q["file"], q["page"]) in {(s["file"], s["page"]) for s in answer.sources}
    quotes = re.findall(r"^> (.+) \[(\d+)\]$", answer.text, flags=re.MULTILINE)
    by_number = {s["number"]: s for s in answer.sources}
    assert quotes and all(by_number[int(n)].get("cited") for _, n in quotes)
    assert all(" ".join(text.split()) in " ".join(by_number[int(n)]["text"].split()) for text, n in quotes)
    summary = answer.text.rsplit("\n\n", 1)[-1]
    assert summary and not summary.startswith("> "), "the model's summary follows the quotes"
    assert repeated_run(answer.text) is None, repeated_run(answer.text)
    assert not PROMPT_MARKUP.search(answer.text), answer.text
