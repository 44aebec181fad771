"""Conversations and turns in PostgreSQL, shared by every app instance (store = postgres).

Same public methods and shapes as the SQLite `ConversationStore`; each call is one
transaction, so another instance sees a turn whole at its next question, or not at all.
"""

from __future__ import annotations

import json
import uuid

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from agent._pg import transaction
from agent.chat.conversations import (
    DEFAULT_TITLE,
    TITLE_LENGTH,
    Conversation,
    Conversations,
    ConversationStore,
    RecentTurns,
    Turn,
    _now,
    _turn,
)
from agent.config import Settings
from agent.errors import ConversationNotFoundError

_COLUMNS = "question, answer, sources, model, incomplete, error, created, meta"
_COUNT = "SELECT COUNT(*) FROM turns WHERE conversation_id = %s"


def _missing(conversation_id: str) -> ConversationNotFoundError:
    return ConversationNotFoundError(f"No conversation with id {conversation_id!r}.",
                                     "List them with `python -m agent conversations`.")


class PgConversationStore(Conversations):
    """All conversations in one PostgreSQL database. Safe to share between threads, processes and machines."""

    def __init__(self, url: str) -> None:
        self.url = url
        with transaction(url):
            pass  # opens the pool and brings the schema up to date now, not at the first question

    def create(self, title: str = DEFAULT_TITLE, conversation_id: str | None = None) -> str:
        """A new empty conversation; returns its id."""
        conversation_id = conversation_id or uuid.uuid4().hex[:12]
        now = _now()
        with transaction(self.url) as db:
            db.execute("INSERT INTO conversations (id, title, created, updated) VALUES (%s, %s, %s, %s) "
                       "ON CONFLICT (id) DO NOTHING", (conversation_id, title, now, now))
        return conversation_id

    def exists(self, conversation_id: str) -> bool:
        with transaction(self.url) as db:
            return db.execute("SELECT 1 FROM conversations WHERE id = %s", (conversation_id,)).fetchone() is not None

    def list(self) -> list[Conversation]:
        """All conversations, most recently updated first (without their turns)."""
        with transaction(self.url) as db:
            rows = db.execute("SELECT id, title, created, updated FROM conversations "
                              "ORDER BY updated DESC, seq DESC").fetchall()
        return [Conversation(*row) for row in rows]

    def get(self, conversation_id: str) -> Conversation:
        with transaction(self.url) as db:
            row = db.execute("SELECT id, title, created, updated FROM conversations WHERE id = %s",
                             (conversation_id,)).fetchone()
            if row is None:
                raise _missing(conversation_id)
            turns = db.execute(f"SELECT {_COLUMNS} FROM turns WHERE conversation_id = %s ORDER BY id",
                               (conversation_id,)).fetchall()
        conversation = Conversation(*row)
        conversation.turns = [_turn(turn) for turn in turns]
        return conversation

    def recent(self, conversation_id: str, limit: int) -> RecentTurns:
        """The last `limit` turns, oldest first, and how many there are."""
        with transaction(self.url) as db:
            total = db.execute(_COUNT, (conversation_id,)).fetchone()[0]  # type: ignore[index]
            rows = db.execute(f"SELECT {_COLUMNS} FROM turns WHERE conversation_id = %s ORDER BY id DESC LIMIT %s",
                              (conversation_id, max(limit, 0))).fetchall()
        return RecentTurns(total=total, turns=[_turn(row) for row in reversed(rows)])

    def count_turns(self, conversation_id: str) -> int:
        """How many turns are stored (0 for an unknown id)."""
        with transaction(self.url) as db:
            return int(db.execute(_COUNT, (conversation_id,)).fetchone()[0])  # type: ignore[index]

    def rename(self, conversation_id: str, title: str) -> None:
        title = " ".join(title.split())[:200] or "Untitled"
        with transaction(self.url) as db:
            if db.execute("UPDATE conversations SET title = %s WHERE id = %s", (title, conversation_id)).rowcount == 0:
                raise _missing(conversation_id)

    def delete(self, conversation_id: str) -> None:
        with transaction(self.url) as db:
            if db.execute("DELETE FROM conversations WHERE id = %s", (conversation_id,)).rowcount == 0:
                raise _missing(conversation_id)

    def append_turn(self, conversation_id: str, turn: Turn) -> None:
        """Store a finished (or cut-short) turn in one transaction; creates the conversation if needed."""
        now = _now()
        title = " ".join(turn.question.split())[:TITLE_LENGTH] or DEFAULT_TITLE
        with transaction(self.url) as db:
            db.execute("INSERT INTO conversations (id, title, created, updated) VALUES (%s, %s, %s, %s) "
                       "ON CONFLICT (id) DO NOTHING", (conversation_id, title, now, now))
            db.execute("UPDATE conversations SET updated = %s, title = CASE WHEN title = %s THEN %s ELSE title END "
                       "WHERE id = %s", (now, DEFAULT_TITLE, title, conversation_id))
            db.execute("INSERT INTO turns (conversation_id, question, answer, sources, model, incomplete, error, "
                       "created, meta) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                       (conversation_id, turn.question, turn.answer, json.dumps(turn.sources, ensure_ascii=False),
                        turn.model, turn.incomplete, turn.error, now, turn.meta_json()))

    def history(self, conversation_id: str, turns: int | None = None) -> list[BaseMessage]:
        """The last `turns` complete turns (all if None) as chat messages, oldest first."""
        with transaction(self.url) as db:
            rows = db.execute("SELECT question, answer FROM turns WHERE conversation_id = %s AND NOT incomplete "
                              "ORDER BY id DESC LIMIT %s", (conversation_id, turns)).fetchall()
        return [message for question, answer in reversed(rows) for message in (HumanMessage(question), AIMessage(answer))]


def open_conversations(settings: Settings) -> ConversationStore | PgConversationStore:
    """The conversation store `settings.store` selects: this data directory's SQLite file or the shared database."""
    if settings.store == "postgres":
        return PgConversationStore(settings.database_url)
    return ConversationStore(settings.data_dir)


def copy_conversations(source: ConversationStore | PgConversationStore,
                       target: ConversationStore | PgConversationStore) -> int:
    """Copy every conversation's turns that `target` lacks (by position); returns how many were added.

    Idempotent: a second run adds nothing, and a run cut short continues where it stopped."""
    added = 0
    for listed in reversed(source.list()):  # oldest first, so the target lists them in the same order
        conversation = source.get(listed.id)
        target.create(conversation.title, conversation.id)
        for turn in conversation.turns[target.count_turns(conversation.id):]:
            target.append_turn(conversation.id, turn)
            added += 1
    return added
