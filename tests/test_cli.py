"""The command line, run as a user runs it: `python -m agent ...` in a subprocess."""

import json

import pytest

from tests.support import DEVSET_PDFS, double_environ, run_cli


@pytest.fixture
def env(ollama, tmp_path):
    return double_environ(ollama, AGENT_DATA_DIR=str(tmp_path / "data"))


@pytest.fixture
def ingested(env):
    result = run_cli(["ingest", str(DEVSET_PDFS / "squad_Geology.pdf")], env)
    assert result.returncode == 0, result.stderr
    return env


def test_ask_json_shape(ingested, ollama):
    ollama.reply_tool_call("search_documents", {"query": "what geology studies"})
    ollama.reply("Geology studies rocks [1]. It also studies planets [7].")
    result = run_cli(["ask", "What does geology study?", "--json"], ingested)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"answer", "sources", "model", "conversation", "invalid_citations", "nothing_found"}
    assert data["answer"] == "Geology studies rocks [1]. It also studies planets [7]."
    assert data["model"] == "llama3.2" and isinstance(data["conversation"], str)
    assert data["sources"] and set(data["sources"][0]) == {"number", "cited", "file", "page", "text", "score"}
    assert data["sources"][0]["file"] == "squad_Geology.pdf" and isinstance(data["sources"][0]["page"], int)
    assert [s["number"] for s in data["sources"]] == list(range(1, len(data["sources"]) + 1))
    assert [s["cited"] for s in data["sources"]] == [True] + [False] * (len(data["sources"]) - 1)
    assert len(data["sources"]) < 7 and data["invalid_citations"] == [7] and data["nothing_found"] is False


def test_conversation_survives_a_restart(ingested, ollama):
    ollama.reply("First answer.")
    first = run_cli(["ask", "First question about geology?", "--json", "--conversation", "keep1"], ingested)
    assert first.returncode == 0, first.stderr
    ollama.reply("What else does geology study?")  # the follow-up rewritten into a search query
    ollama.reply("Second answer.")
    second = run_cli(["ask", "And then?", "--conversation", "keep1"], ingested)
    assert second.returncode == 0, second.stderr
    contents = [m["content"] for m in ollama.chat_requests()[-1]["messages"]]
    assert "First question about geology?" in contents and "First answer." in contents
    listed = run_cli(["conversations", "--json"], ingested)
    assert [c["id"] for c in json.loads(listed.stdout)] == ["keep1"]


def test_models_json(env):
    result = run_cli(["models", "--json"], env)
    models = {m["name"]: m for m in json.loads(result.stdout)}
    assert models["llama3.2:latest"]["tools"] and not models["gemma:2b"]["tools"]


def test_unreachable_ollama_is_one_clear_line(tmp_path):
    env = {"OLLAMA_HOST": "http://127.0.0.1:9", "AGENT_DATA_DIR": str(tmp_path), "AGENT_BACKEND": "ollama",
           "AGENT_CONNECT_RETRIES": "1"}
    result = run_cli(["models"], env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Cannot reach Ollama" in lines[0] and "ollama serve" in lines[0]
    assert "Traceback" not in result.stderr


def test_chat_repl_streams_resets_and_shows_sources(ingested, ollama):
    ollama.reply_tool_call("search_documents", {"query": "geology"})
    ollama.reply("Rocks and minerals [1].")
    ollama.reply("Second conversation answer.")
    stdin = "What does geology study?\n/sources\n/reset\nHello again\nexit\n"
    result = run_cli(["chat"], ingested, stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert "Rocks and minerals [1]." in result.stdout
    assert "[squad_Geology.pdf p." in result.stdout.split("/sources")[-1] or "Sources:" in result.stdout
    assert "New conversation" in result.stdout
    second_request = ollama.chat_requests()[-1]
    assert "What does geology study?" not in json.dumps(second_request)  # /reset started afresh


def test_ingest_docs_retrieve_remove(env):
    bad = run_cli(["ingest", str(DEVSET_PDFS / "squad_Geology.pdf"), str(DEVSET_PDFS / "invalid.pdf")], env)
    assert bad.returncode == 1  # one file failed
    assert "ADDED" in bad.stdout and "FAILED    invalid.pdf" in bad.stdout
    again = run_cli(["ingest", str(DEVSET_PDFS / "squad_Geology.pdf")], env)
    assert again.returncode == 0 and "UNCHANGED squad_Geology.pdf" in again.stdout
    docs = json.loads(run_cli(["docs", "--json"], env).stdout)
    assert [d["file"] for d in docs] == ["squad_Geology.pdf"]
    hits = json.loads(run_cli(["retrieve", "geology", "--k", "3", "--json"], env).stdout)
    assert 0 < len(hits) <= 3 and set(hits[0]) == {"file", "page", "text", "score"}
    assert run_cli(["remove", "squad_Geology.pdf"], env).returncode == 0
    assert json.loads(run_cli(["docs", "--json"], env).stdout) == []


# ---- bad arguments: every command, one clear line, never a traceback (issue 13, item 14) -------------
BAD_ARGUMENTS = [
    ["chat", "--conversation"],
    ["ask"], ["ask", ""],
    ["models", "--bogus"],
    ["ingest"], ["ingest", "{tmp}/missing.pdf"], ["ingest", "{tmp}"],
    ["ingest", "--collection", "../bad", str(DEVSET_PDFS / "squad_Geology.pdf")],
    ["retrieve", "rocks", "--k", "0"], ["retrieve", "rocks", "--k", "51"], ["retrieve", "rocks", "--k", "abc"],
    ["retrieve", "rocks", "--collection", "../bad"], ["retrieve", "   "],
    ["docs", "--collection", "../bad"], ["docs", "--collection", ""], ["docs", "--collection", ".hidden"],
    ["remove", "nothing-like-this"], ["remove", "x", "--collection", "a/b"],
    ["reindex", "--collection", "../bad"],
    ["conversations", "rename", "no-such-id", "Title"], ["conversations", "export"], ["conversations", "bogus"],
    ["eval", "{tmp}/missing.jsonl", "--pdfs", "{tmp}"], ["eval", "{tmp}/bad.jsonl", "--pdfs", "{tmp}"],
    ["eval", "{tmp}/bad.jsonl", "--pdfs", "{tmp}/no-such-folder"],
    ["migrate"], ["migrate", "--to", "mars"], ["migrate", "--to", "postgres"],
    ["bogus"], [],
]


@pytest.mark.parametrize("args", BAD_ARGUMENTS, ids=lambda args: " ".join(args) or "(nothing)")
def test_bad_arguments_are_one_clear_line(env, tmp_path, args):
    (tmp_path / "bad.jsonl").write_text('{"question": "q", "file": "a.pdf"\n')
    result = run_cli([a.format(tmp=tmp_path) for a in args], env)
    said = (result.stderr or result.stdout).strip().splitlines()
    assert result.returncode != 0, result.stdout
    assert len(said) == 1 and said[0], result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert "Nothing was saved" not in said[0]  # a UI message (retrieve --k 0 printed it)


def test_every_command_is_audited():
    from agent.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert commands <= {args[0] for args in BAD_ARGUMENTS if args}


def test_a_bad_environment_value_is_one_line(env):
    result = run_cli(["docs"], {**env, "AGENT_RETRIEVAL_K": "-3"})
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "AGENT_RETRIEVAL_K" in result.stderr or "retrieval_k" in result.stderr


def test_chat_exits_cleanly_before_the_first_question(env):
    result = run_cli(["chat"], env, stdin="exit\n")  # the index warm-up is still running
    assert result.returncode == 0 and "FATAL" not in result.stderr, result.stderr


ESCAPES = "\x1b]0;pwned\x07\x1b[31mred\x1b[0m\x1b]52;c;ZXZpbA==\x1b\\\x9b2J\rover"


def test_escape_sequences_from_a_server_or_a_model_never_reach_the_terminal(ingested, ollama):
    ollama.add_model({"name": "evil:latest", "parameter_size": f"7B{ESCAPES}"})  # a server's text, not ours
    listed = run_cli(["models"], ingested)
    assert listed.returncode == 0 and "evil" in listed.stdout and "red" in listed.stdout
    ollama.reply(f"Rocks [1]. {ESCAPES}")
    asked = run_cli(["ask", "What does geology study?"], ingested)
    ollama.reply(f"Minerals. {ESCAPES}")
    chatted = run_cli(["chat"], ingested, stdin="What else?\nexit\n")
    for result in (listed, asked, chatted):
        assert result.returncode == 0, result.stderr
        output = result.stdout + result.stderr
        assert not any(c in output for c in "\x1b\x07\x9b\r"), repr(output)
    assert "Rocks [1]." in asked.stdout and "redover" not in asked.stdout and "red\nover" in asked.stdout
