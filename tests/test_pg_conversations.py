"""Conversations in PostgreSQL (store = postgres): shared by instances with different data dirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.chat.conversations import Turn
from agent.chat.pg_conversations import PgConversationStore
from agent.config import load_settings
from agent.errors import ConversationNotFoundError, SettingsError

_CHILD = """
import json, sys
from agent.chat.conversations import Turn
from agent.workspace import Workspace
store = Workspace().conversations
cid, question = sys.argv[1], sys.argv[2]
history = [m.content for m in store.history(cid)]
store.append_turn(cid, Turn(question, f"answer to {question} after {len(history)} messages", [], "m"))
print(json.dumps(history))
"""


def _instance(tmp_path: Path, name: str, pg_url: str, *args: str) -> list[str]:
    """Run one app instance (own data dir, shared database) in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "OLLAMA_"))}
    env.update(AGENT_DATA_DIR=str(tmp_path / name), AGENT_STORE="postgres", AGENT_DATABASE_URL=pg_url)
    done = subprocess.run([sys.executable, "-c", _CHILD, *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parent.parent, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_one_instance_starts_a_conversation_and_another_continues_it_with_its_history(tmp_path, pg_url):
    assert _instance(tmp_path, "a", pg_url, "c1", "what is pgvector?") == []
    seen = _instance(tmp_path, "b", pg_url, "c1", "and how fast is it?")
    assert seen == ["what is pgvector?", "answer to what is pgvector? after 0 messages"]
    conversation = PgConversationStore(pg_url).get("c1")
    assert [t.question for t in conversation.turns] == ["what is pgvector?", "and how fast is it?"]
    assert conversation.title == "what is pgvector?"
    assert not (tmp_path / "a" / "conversations.sqlite3").exists()


def test_the_store_keeps_the_sqlite_stores_behaviour(pg_url):
    store = PgConversationStore(pg_url)
    cid = store.create()
    store.append_turn(cid, Turn("q1", "a1", [], "m"))
    store.append_turn(cid, Turn("q2", "cut", [], "m", incomplete=True, error="stopped"))
    store.append_turn(cid, Turn("q3", "a3", [], "m"))
    assert store.count_turns(cid) == 3 and store.count_turns("nope") == 0
    assert [m.content for m in store.history(cid)] == ["q1", "a1", "q3", "a3"]
    assert [m.content for m in store.history(cid, turns=1)] == ["q3", "a3"]
    recent = store.recent(cid, 2)
    assert recent.total == 3 and [t.question for t in recent.turns] == ["q2", "q3"] and recent.turns[0].incomplete
    store.rename(cid, "  renamed   here ")
    assert [c.title for c in store.list()] == ["renamed here"]
    assert "**You:** q2" in store.export_markdown(cid)
    store.delete(cid)
    assert not store.exists(cid)
    with pytest.raises(ConversationNotFoundError):
        store.get(cid)


def test_a_second_instance_on_the_same_database_finds_the_schema_in_place(pg_url):
    PgConversationStore(pg_url).append_turn("x", Turn("q", "a", [], "m"))
    assert PgConversationStore(pg_url).count_turns("x") == 1


def test_store_postgres_needs_a_database_url(tmp_path):
    with pytest.raises(SettingsError):
        load_settings(tmp_path, environ={"AGENT_STORE": "postgres"})
    settings = load_settings(tmp_path, environ={"AGENT_STORE": "postgres",
                                                "AGENT_DATABASE_URL": "postgresql://me@/db?host=/run/pg"})
    assert settings.store == "postgres" and settings.database_url.endswith("host=/run/pg")


def test_migrate_round_trip_copies_conversations_once(tmp_path, pg_url):
    from agent.chat.conversations import ConversationStore
    from tests.support import run_cli

    local = ConversationStore(tmp_path / "one")
    local.append_turn("c1", Turn("first", "a1", [], "m"))
    local.append_turn("c1", Turn("second", "a2", [], "m"))
    local.append_turn("c2", Turn("other", "a3", [], "m"))
    env = {"AGENT_DATA_DIR": str(tmp_path / "one"), "AGENT_DATABASE_URL": pg_url}
    assert "3 turns copied" in run_cli(["migrate", "--to", "postgres"], env).stdout
    assert "0 turns copied" in run_cli(["migrate", "--to", "postgres"], env).stdout, "idempotent"
    shared = PgConversationStore(pg_url)
    assert [m.content for m in shared.history("c1")] == ["first", "a1", "second", "a2"]
    assert [c.id for c in shared.list()] == ["c2", "c1"]
    back = {"AGENT_DATA_DIR": str(tmp_path / "two"), "AGENT_DATABASE_URL": pg_url}
    assert "3 turns copied" in run_cli(["migrate", "--to", "local"], back).stdout
    assert ConversationStore(tmp_path / "two").get("c1").title == "first"
    assert run_cli(["migrate", "--to", "postgres"], {"AGENT_DATA_DIR": str(tmp_path / "one")}).returncode != 0


_WRITER = """
import sys
from concurrent.futures import ThreadPoolExecutor
from agent.chat.conversations import Turn
from agent.chat.pg_conversations import PgConversationStore
store, name = PgConversationStore(sys.argv[1]), sys.argv[2]
def user(u):
    for i in range(25):
        store.append_turn(f"{name}-u{u}", Turn(f"q{i}", "a", [], "m"))
        assert len(store.history(f"{name}-u{u}", turns=5)) == 2 * min(i + 1, 5)
with ThreadPoolExecutor(4) as pool:
    list(pool.map(user, range(4)))
"""


def test_two_instances_with_eight_users_lose_no_turn(pg_url):
    """2 processes x 4 threads x 25 turns, each reading its history: all 200 turns stored, in order."""
    children = [subprocess.Popen([sys.executable, "-c", _WRITER, pg_url, name], cwd=Path(__file__).parent.parent,
                                 stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    store = PgConversationStore(pg_url)
    assert sum(store.count_turns(c.id) for c in store.list()) == 200
    assert [t.question for t in store.get("b-u3").turns] == [f"q{i}" for i in range(25)]
