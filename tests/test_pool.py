"""The Ollama pool against two real-HTTP doubles on 127.0.0.1."""

from __future__ import annotations

import httpx
import ollama
import pytest

from agent.chat.llm import Backend, build_chat_model
from agent.config import Settings
from agent.search.pool import Pool
from tests.ollama_double import OllamaDouble, Reply


@pytest.fixture()
def doubles():
    with OllamaDouble(default_text="From the pool.") as one, OllamaDouble(default_text="From the pool.") as two:
        yield one, two


def _model(doubles, pool: Pool, monkeypatch):
    monkeypatch.setattr("agent.search.pool.POOL", pool)
    settings = Settings(ollama_hosts=[d.url for d in doubles], request_timeout=5)
    return build_chat_model(settings, Backend("ollama", "llama3.2", tools=False))


def _ask(model) -> str:
    return "".join(str(chunk.content) for chunk in model.stream("hi"))


def test_questions_spread_over_both_hosts_and_survive_one_stopping(doubles, monkeypatch):
    one, two = doubles
    model = _model(doubles, Pool(), monkeypatch)
    streams = [model.stream("hi") for _ in range(2)]
    firsts = [next(s) for s in streams]  # both in flight at once: the second goes to the idle host
    assert all(f is not None for f in firsts)
    for s in streams:
        list(s)
    assert len(one.chat_requests()) == 1 and len(two.chat_requests()) == 1
    one.stop()
    for _ in range(3):
        assert _ask(model) == "From the pool."
    assert len(two.chat_requests()) == 4


def test_a_host_failing_before_the_first_token_is_skipped(doubles, monkeypatch):
    one, two = doubles
    pool = Pool()
    model = _model(doubles, pool, monkeypatch)
    first = pool.order([one.url, two.url], "llama3.2")[0]
    broken = one if first == one.url else two
    broken.enqueue(Reply(status=500, error="GPU fell over"))
    assert _ask(model) == "From the pool."
    assert not pool.state(broken.url).healthy


def test_a_host_dying_mid_answer_reports_the_usual_error(doubles, monkeypatch):
    one, two = doubles
    for double in doubles:
        double.enqueue(Reply(text="one two three four five six", cut_after=2, disconnect=True))
    model = _model(doubles, Pool(), monkeypatch)
    received = []
    with pytest.raises((httpx.HTTPError, ollama.ResponseError)):
        for chunk in model.stream("hi"):
            received.append(chunk)
    assert received  # the partial answer reached the caller; no silent restart elsewhere
    assert len(one.chat_requests()) + len(two.chat_requests()) == 1


def test_all_hosts_down_raises_the_last_error(doubles, monkeypatch):
    model = _model(doubles, Pool(), monkeypatch)
    for double in doubles:
        double.stop()
    with pytest.raises((httpx.ConnectError, ConnectionError)):
        _ask(model)


def test_health_lists_models_and_is_cached(doubles):
    one, _ = doubles
    now = [0.0]
    pool = Pool(clock=lambda: now[0])
    state = pool.state(one.url)
    assert state.healthy and state.has("llama3.2")
    one.stop()
    assert pool.state(one.url).healthy  # cached
    now[0] += 10
    assert not pool.state(one.url).healthy


def test_hosts_setting_parses_comma_separated_and_defaults_to_ollama_host():
    assert Settings(ollama_hosts="127.0.0.1:1, http://127.0.0.1:2").hosts() == [
        "http://127.0.0.1:1", "http://127.0.0.1:2"]
    assert Settings(ollama_host="127.0.0.1:3").hosts() == ["http://127.0.0.1:3"]


def test_models_command_lists_every_host_with_health(doubles, monkeypatch, capsys, tmp_path):
    from agent.cli import main

    one, two = doubles
    two.stop()
    monkeypatch.setenv("AGENT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AGENT_OLLAMA_HOSTS", f"{one.url},{two.url}")
    monkeypatch.setenv("OLLAMA_HOST", two.url)  # the down one: listing must still use the live host
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("http")}
    assert "ok" in lines[one.url] and "llama3.2" in lines[one.url]
    assert "down" in lines[two.url]
    assert "llama3.2" in out.split(two.url, 1)[1]


# ------------------------------------------------------------------ embeddings through the pool

def _pooled_workspace(tmp_path, doubles, monkeypatch, pool: Pool | None = None):
    from agent.config import load_settings
    from agent.workspace import Workspace
    from tests.support import double_environ

    monkeypatch.setattr("agent.search.pool.POOL", pool or Pool())
    env = double_environ(doubles[0], AGENT_OLLAMA_HOSTS=",".join(d.url for d in doubles))
    return Workspace(load_settings(tmp_path / "data", environ=env))


def _ingest(workspace, path):
    from agent.ingest.pipeline import ingest_file

    return ingest_file(path, workspace.collection(), workspace.embeddings, workspace.settings)


def _found(workspace, question: str) -> list[str]:
    from agent.search.retrieval import search

    hits = search(question, workspace.chat_collections(), embeddings=workspace.embeddings, k=3, mode="vector")
    return [h.document.metadata["file"] for h in hits]


def test_embeddings_arriving_together_spread_over_both_hosts(tmp_path, doubles, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    for double in doubles:
        double.embed_delay = 1.0  # long enough that all four are in flight together, even on a busy box
    pool = Pool()
    embeddings = _pooled_workspace(tmp_path, doubles, monkeypatch, pool).embeddings
    with ThreadPoolExecutor(4) as threads:
        vectors = list(threads.map(embeddings.embed_query, ["rocks", "rivers", "granite", "basalt"]))
    assert all(len(v) == 768 for v in vectors)
    assert [len(d.embed_requests()) for d in doubles] == [2, 2]
    assert [pool.state(d.url).in_flight for d in doubles] == [0, 0]  # every finished request released its host


def test_ingest_and_search_work_with_one_host_down_or_failing(tmp_path, doubles, monkeypatch):
    from tests.support import DEVSET_PDFS

    one, two = doubles
    workspace = _pooled_workspace(tmp_path, doubles, monkeypatch)
    one.stop()
    assert _ingest(workspace, DEVSET_PDFS / "squad_Geology.pdf").status == "added"
    assert not one.embed_requests() and two.embed_requests()
    one.start()
    pool = Pool()
    monkeypatch.setattr("agent.search.pool.POOL", pool)  # forget that `one` was down: it is first again
    one.fail_next("/api/embed", 500, "GPU fell over")  # retried on the other host, no error
    before = len(two.embed_requests())
    assert _found(workspace, "What do geologists study?")[0] == "squad_Geology.pdf"
    assert len(two.embed_requests()) == before + 1 and not pool.state(one.url).healthy


def test_hosts_with_different_builds_of_the_embedding_model_are_refused(tmp_path, monkeypatch):
    from agent.errors import AgentError
    from tests.ollama_double import DEFAULT_MODELS, ModelSpec
    from tests.support import DEVSET_PDFS

    other_build = [m for m in DEFAULT_MODELS if not m.name.startswith("nomic")] + [
        ModelSpec("nomic-embed-text:latest", ("embedding",), embedding_length=1024, quantization_level="Q8_0")]
    with OllamaDouble() as one, OllamaDouble(models=other_build) as two:
        workspace = _pooled_workspace(tmp_path, (one, two), monkeypatch)
        with pytest.raises(AgentError) as refused:
            workspace.embeddings.embed_query("rocks")
        assert refused.value.code == "embedding_pool_mixed" and two.url in refused.value.message
        result = _ingest(workspace, DEVSET_PDFS / "squad_Geology.pdf")
        assert result.status == "failed" and result.code == "embedding_pool_mixed"
        assert not one.embed_requests() and not two.embed_requests()
        two.remove_model("nomic-embed-text")  # a host without the model is refused too
        monkeypatch.setattr("agent.search.pool.POOL", Pool())
        with pytest.raises(AgentError, match="missing"):
            workspace.embeddings.embed_query("rocks")


# ------------------------------------------------------------------ the sidebar

def test_sidebar_shows_each_hosts_health_and_models(data_dir, double, monkeypatch):
    from tests.support import plain, run_app

    monkeypatch.setattr("agent.search.pool.POOL", Pool())
    with OllamaDouble() as down:
        down.stop()
        monkeypatch.setenv("AGENT_OLLAMA_HOSTS", f"{down.url},{double.url}")
        monkeypatch.setenv("OLLAMA_HOST", down.url)  # the status line must still find the live host
        at = run_app()
        sidebar = [plain(c.value) for c in at.sidebar.caption]
        live = next(line for line in sidebar if double.url in line and "Ollama" in line and "llama3.2" in line)
        assert "nomic-embed-text" in live, sidebar
        assert any(down.url in line and "is down" in line for line in sidebar), sidebar
        assert not at.sidebar.error  # one live host: the app answers, no error box
        monkeypatch.setenv("AGENT_UI_LANGUAGE", "zh")
        at = run_app()
        assert any(down.url in plain(c.value) and "无法连接" in c.value for c in at.sidebar.caption)


def test_a_pool_of_one_host_serves_chat_discovery_and_embeddings(tmp_path, monkeypatch):
    from agent.chat.llm import list_models
    from agent.config import load_settings
    from agent.workspace import Workspace

    monkeypatch.setattr("agent.search.pool.POOL", Pool())
    with OllamaDouble() as only:
        env = {"OLLAMA_HOST": "http://127.0.0.1:9", "AGENT_OLLAMA_HOSTS": only.url,  # OLLAMA_HOST: nothing there
               "AGENT_EMBEDDING": "ollama:nomic-embed-text", "AGENT_CONNECT_RETRIES": "1"}
        workspace = Workspace(load_settings(tmp_path / "data", environ=env))
        assert len(workspace.embeddings.embed_query("rocks")) == 768 and only.embed_requests()
        assert "llama3.2:latest" in [m.name for m in list_models(workspace.settings)]


def test_a_host_whose_version_route_fails_is_marked_unhealthy(doubles):
    one, two = doubles
    one.fail_next("/api/version", 500, "broken")
    pool = Pool()
    assert not pool.state(one.url, fresh=True).healthy
    assert "broken" in pool.state(one.url).error
    healthy = pool.state(two.url, fresh=True)
    assert healthy.healthy and healthy.version == two.version
