"""Persistent conversations: list, rename, delete, export, restart, consistency."""

import subprocess
import sys

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from agent.chat.conversations import ConversationStore, Turn
from agent.errors import ConversationNotFoundError
from tests.support import rows_read, seed_turns


def test_turns_persist_and_history_skips_incomplete(tmp_path):
    store = ConversationStore(tmp_path)
    cid = store.create()
    store.append_turn(cid, Turn("What is X?", "X is Y [a.pdf p.2]", [{"file": "a.pdf", "page": 2, "text": "t", "score": 1.0}], "m"))
    store.append_turn(cid, Turn("And Z?", "Z is", [], "m", incomplete=True, error="connection lost"))
    reopened = ConversationStore(tmp_path)
    history = reopened.history(cid)
    assert history == [HumanMessage("What is X?"), AIMessage("X is Y [a.pdf p.2]")]
    conv = reopened.get(cid)
    assert conv.title == "What is X?" and conv.turns[1].incomplete and conv.turns[0].sources[0]["page"] == 2


def test_list_rename_delete(tmp_path):
    store = ConversationStore(tmp_path)
    first, second = store.create(), store.create()
    store.append_turn(first, Turn("q", "a"))
    assert [c.id for c in store.list()][0] == first  # most recently updated first
    store.rename(second, "  My   notes ")
    assert store.get(second).title == "My notes"
    store.delete(first)
    assert [c.id for c in store.list()] == [second]
    with pytest.raises(ConversationNotFoundError):
        store.get(first)
    with pytest.raises(ConversationNotFoundError):
        store.rename("nope", "x")


def test_export_markdown_includes_sources(tmp_path):
    store = ConversationStore(tmp_path)
    store.append_turn("c1", Turn("问题?", "答案", [{"file": "手册.pdf", "page": 7, "text": "t", "score": 0.5}], "llama3.2"))
    text = store.export_markdown("c1")
    assert text.startswith("# 问题?") and "**You:** 问题?" in text and "- 手册.pdf p.7" in text


def test_export_words_each_source_location_as_asked(tmp_path):
    from agent.app.sources import page_label

    store = ConversationStore(tmp_path)
    docx_source = {"file": "r.docx", "page": 2, "text": "t", "score": 0.5, "loc_kind": "section",
                   "heading": "Install > Wiring", "para_start": 3, "para_end": 3}
    store.append_turn("c1", Turn("q?", "a", [docx_source], "llama3.2"))
    assert "- r.docx Install > Wiring, ¶ 3" in store.export_markdown("c1", page_label)


def test_history_of_unknown_conversation_is_empty(tmp_path):
    assert ConversationStore(tmp_path).history("new-id") == []


def test_survives_a_process_restart(tmp_path):
    code = ("import sys; from agent.chat.conversations import ConversationStore, Turn; "
            "ConversationStore(sys.argv[1]).append_turn('abc', Turn('persisted?', 'yes'))")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    assert ConversationStore(tmp_path).get("abc").turns[0].answer == "yes"


def test_write_ahead_log_is_on_and_workspaces_share_one_store(settings):
    import sqlite3
    from contextlib import closing

    from agent.config import update_settings
    from agent.workspace import Workspace

    base = Workspace(settings)
    other = base.with_settings(update_settings(settings, chat_model="gemma:2b"))  # before any use of the store
    assert other.conversations is base.conversations  # one store, one lock for the data directory
    with closing(sqlite3.connect(base.conversations.path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # readers never block the writer


def test_a_database_from_before_versioning_is_migrated_and_keeps_its_turns(tmp_path):
    import sqlite3

    from agent.chat.conversations import DB_FILE, MIGRATIONS
    from agent.errors import StoreError

    with sqlite3.connect(tmp_path / DB_FILE) as db:  # the schema as first released: no meta, version 0
        db.executescript("""
            CREATE TABLE conversations (id TEXT PRIMARY KEY, title TEXT NOT NULL, created TEXT NOT NULL,
                                        updated TEXT NOT NULL);
            CREATE TABLE turns (id INTEGER PRIMARY KEY AUTOINCREMENT, conversation_id TEXT NOT NULL,
                question TEXT NOT NULL, answer TEXT NOT NULL, sources TEXT NOT NULL, model TEXT NOT NULL,
                incomplete INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '', created TEXT NOT NULL);
            INSERT INTO conversations VALUES ('c1', 'Old one', '2025-01-01', '2025-01-01');
            INSERT INTO turns (conversation_id, question, answer, sources, model, created)
                VALUES ('c1', 'Q?', 'A.', '[]', 'm', '2025-01-01');
        """)
    store = ConversationStore(tmp_path)
    old = store.get("c1")
    assert old.title == "Old one" and old.turns[0].answer == "A." and old.turns[0].notes == []
    store.append_turn("c1", Turn("Q2?", "A2.", [], "m", error_code="timeout"))
    assert ConversationStore(tmp_path).get("c1").turns[1].error_code == "timeout"  # reopening changes nothing
    with sqlite3.connect(tmp_path / DB_FILE) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")  # as a newer app would leave it
    with pytest.raises(StoreError, match="newer than this app"):
        ConversationStore(tmp_path)


def test_history_reads_only_the_memory_window(tmp_path):
    store = ConversationStore(tmp_path)
    seed_turns(store, "long", 3000)
    store.append_turn("long", Turn("Cut short?", "Par", incomplete=True, error="stopped"))
    with rows_read() as rows:
        history = store.history("long", turns=5)
    assert history[0] == HumanMessage("Question 2995?") and history[-1] == AIMessage("Answer 2999.")
    assert len(history) == 10  # the incomplete last turn is not part of the memory
    assert rows[0] < 20, rows  # was every row of the conversation (3001)
    assert len(store.history("long")) == 6000


def test_recent_turns_are_the_end_of_the_conversation(tmp_path):
    store = ConversationStore(tmp_path)
    seed_turns(store, "long", 3000)
    with rows_read() as rows:
        recent = store.recent("long", 20)
    assert recent.total == 3000 and recent.first == 2980 and rows[0] < 30, rows
    assert [t.question for t in recent.turns[:2]] == ["Question 2980?", "Question 2981?"]
    assert recent.turns[-1].answer == "Answer 2999." and store.count_turns("long") == 3000
    short = store.recent("long", 5000)
    assert short.first == 0 and len(short.turns) == 3000
    assert store.recent("unknown", 20).total == 0 and store.count_turns("unknown") == 0
