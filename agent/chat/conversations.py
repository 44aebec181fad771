"""Persistent conversations in SQLite under the data directory.

The store keeps every turn (question, answer, sources, model) so conversations survive
restarts and can be listed, renamed, deleted and exported. A turn is written in one
transaction after the answer ends, so a crash or a broken stream never leaves a question
without its answer; an answer cut short is stored marked `incomplete` and is shown to
the user but not replayed to the model, so the next request stays consistent.

Both chat modes read their history from here: the model's memory is this history,
windowed and budgeted by `agent.memory` at request time.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from agent.errors import ConversationNotFoundError, StoreError
from agent.search.retrieval import Source

DB_FILE = "conversations.sqlite3"
DEFAULT_TITLE = "New conversation"  # until the first question names it (the UI shows its own words)
TITLE_LENGTH = 60
_TABLES = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    question TEXT NOT NULL, answer TEXT NOT NULL, sources TEXT NOT NULL, model TEXT NOT NULL,
    incomplete INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '', created TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns(conversation_id, id);
"""


def _create_tables(db: sqlite3.Connection) -> None:
    db.executescript(_TABLES)


def _add_meta(db: sqlite3.Connection) -> None:
    """Error codes and notes per turn (older rows read as {})."""
    if "meta" not in {row[1] for row in db.execute("PRAGMA table_info(turns)")}:
        db.execute("ALTER TABLE turns ADD COLUMN meta TEXT NOT NULL DEFAULT '{}'")


#: Schema changes in order; PRAGMA user_version counts those applied. Append, never edit: a
#: file from before versioning (version 0) may already have some of them, so each is idempotent.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_create_tables, _add_meta)


def migrate(db: sqlite3.Connection) -> None:
    """Bring the database to the current schema version, in the caller's transaction."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StoreError(f"The conversation database is schema version {version}, newer than this app "
                         f"({len(MIGRATIONS)}).", "Update the app, or point it at another data directory.")
    for step in MIGRATIONS[version:]:
        step(db)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")


class Note(TypedDict):
    """Something to say under an answer, as a code and values the UI words (e.g. prompt_truncated)."""

    code: str
    params: dict[str, Any]


@dataclass
class Turn:
    question: str
    answer: str
    sources: list[Source] = field(default_factory=list)
    model: str = ""
    incomplete: bool = False
    error: str = ""
    created: str = ""
    error_code: str = ""  # AgentError.code of `error`, so the UI can word it in the user's language
    error_params: dict[str, Any] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)

    def meta_json(self) -> str:
        return json.dumps({"error_code": self.error_code, "error_params": self.error_params, "notes": self.notes},
                          ensure_ascii=False, default=str)


@dataclass
class Conversation:
    id: str
    title: str
    created: str
    updated: str
    turns: list[Turn] = field(default_factory=list)


@dataclass
class RecentTurns:
    """The end of a conversation: its last turns, oldest first, out of `total`."""

    total: int
    turns: list[Turn]

    @property
    def first(self) -> int:
        """Index (from 0) of the first turn shown in the whole conversation."""
        return self.total - len(self.turns)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class Conversations:
    """What every conversation store offers beyond its own queries (SQLite here, PostgreSQL in pg_conversations)."""

    def get(self, conversation_id: str) -> Conversation:
        raise NotImplementedError

    def export_markdown(self, conversation_id: str, where: Callable[[Source], str] | None = None) -> str:
        """The conversation as Markdown, with each answer's sources; `where` words a source's location
        (agent.app.sources.page_label: slide, heading and paragraph, ...), else "p.N"."""
        where = where or (lambda source: f"p.{source['page']}")
        conversation = self.get(conversation_id)
        lines = [f"# {conversation.title}", "", f"_Created {conversation.created}, id `{conversation.id}`_", ""]
        for turn in conversation.turns:
            lines += [f"**You:** {turn.question}", "", f"**Assistant** ({turn.model}):", "", turn.answer, ""]
            if turn.incomplete:
                lines += [f"> The answer was cut short: {turn.error}", ""]
            if turn.sources:
                lines.append("Sources:")
                lines += [f"- {s['file']} {where(s)}" for s in turn.sources]
                lines.append("")
        return "\n".join(lines)


class ConversationStore(Conversations):
    """All conversations of one data directory. Safe to share between threads and processes."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / DB_FILE
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                migrate(db)
            with closing(sqlite3.connect(self.path, timeout=30)) as db:
                db.execute("PRAGMA journal_mode = WAL")  # a property of the file: set once, not per call
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"Cannot open the conversation database {self.path}: {exc}.",
                             "Check that the data directory is writable and the file is not damaged.") from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = sqlite3.connect(self.path, timeout=30)
            try:
                db.execute("PRAGMA foreign_keys = ON")
                with db:  # one transaction: commit on success, roll back on error
                    yield db
            except sqlite3.Error as exc:
                raise StoreError(f"Conversation database error: {exc}.",
                                 "Check disk space and permissions of the data directory.") from exc
            finally:
                db.close()

    def create(self, title: str = DEFAULT_TITLE, conversation_id: str | None = None) -> str:
        """A new empty conversation; returns its id."""
        conversation_id = conversation_id or uuid.uuid4().hex[:12]
        now = _now()
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO conversations VALUES (?, ?, ?, ?)",
                       (conversation_id, title, now, now))
        return conversation_id

    def exists(self, conversation_id: str) -> bool:
        with self._connect() as db:
            return db.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone() is not None

    def list(self) -> list[Conversation]:
        """All conversations, most recently updated first (without their turns)."""
        with self._connect() as db:
            rows = db.execute("SELECT id, title, created, updated FROM conversations "
                              "ORDER BY updated DESC, rowid DESC").fetchall()
        return [Conversation(*row) for row in rows]

    def get(self, conversation_id: str) -> Conversation:
        with self._connect() as db:
            row = db.execute("SELECT id, title, created, updated FROM conversations WHERE id = ?",
                             (conversation_id,)).fetchone()
            if row is None:
                raise ConversationNotFoundError(f"No conversation with id {conversation_id!r}.",
                                                "List them with `python -m agent conversations`.")
            turns = db.execute(f"SELECT {_TURN_COLUMNS} FROM turns WHERE conversation_id = ? ORDER BY id",
                               (conversation_id,)).fetchall()
        conversation = Conversation(*row)
        conversation.turns = [_turn(row) for row in turns]
        return conversation

    def recent(self, conversation_id: str, limit: int) -> RecentTurns:
        """The last `limit` turns, oldest first, and how many there are: a long conversation is
        shown from its end without reading all of it (an unknown id has none)."""
        with self._connect() as db:
            total = db.execute(_COUNT_TURNS, (conversation_id,)).fetchone()[0]
            rows = db.execute(f"SELECT {_TURN_COLUMNS} FROM turns WHERE conversation_id = ? ORDER BY id DESC LIMIT ?",
                              (conversation_id, max(limit, 0))).fetchall()
        return RecentTurns(total=total, turns=[_turn(row) for row in reversed(rows)])

    def count_turns(self, conversation_id: str) -> int:
        """How many turns are stored (0 for an unknown id)."""
        with self._connect() as db:
            return db.execute(_COUNT_TURNS, (conversation_id,)).fetchone()[0]

    def rename(self, conversation_id: str, title: str) -> None:
        title = " ".join(title.split())[:200] or "Untitled"
        with self._connect() as db:
            if db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id)).rowcount == 0:
                raise ConversationNotFoundError(f"No conversation with id {conversation_id!r}.")

    def delete(self, conversation_id: str) -> None:
        with self._connect() as db:
            if db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount == 0:
                raise ConversationNotFoundError(f"No conversation with id {conversation_id!r}.")

    def append_turn(self, conversation_id: str, turn: Turn) -> None:
        """Store a finished (or cut-short) turn atomically; creates the conversation if needed.

        A new conversation takes its first question as its title.
        """
        now = _now()
        title = " ".join(turn.question.split())[:TITLE_LENGTH] or DEFAULT_TITLE
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO conversations VALUES (?, ?, ?, ?)", (conversation_id, title, now, now))
            db.execute("UPDATE conversations SET updated = ?, title = CASE WHEN title = ? "
                       "THEN ? ELSE title END WHERE id = ?", (now, DEFAULT_TITLE, title, conversation_id))
            db.execute("INSERT INTO turns (conversation_id, question, answer, sources, model, incomplete, error, "
                       "created, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (conversation_id, turn.question, turn.answer, json.dumps(turn.sources, ensure_ascii=False),
                        turn.model, int(turn.incomplete), turn.error, now, turn.meta_json()))

    def history(self, conversation_id: str, turns: int | None = None) -> list[BaseMessage]:
        """The last `turns` complete turns (all if None) as chat messages, oldest first.

        Incomplete turns are left out; only the rows asked for are read, so the model's
        memory window costs the same at 10 turns and at 10,000."""
        with self._connect() as db:
            rows = db.execute("SELECT question, answer FROM turns WHERE conversation_id = ? AND incomplete = 0 "
                              "ORDER BY id DESC LIMIT ?", (conversation_id, -1 if turns is None else turns)).fetchall()
        return [message for question, answer in reversed(rows) for message in (HumanMessage(question), AIMessage(answer))]

_COUNT_TURNS = "SELECT COUNT(*) FROM turns WHERE conversation_id = ?"
_TURN_COLUMNS = "question, answer, sources, model, incomplete, error, created, meta"


def _turn(row: tuple[Any, ...]) -> Turn:
    question, answer, sources, model, incomplete, error, created, meta = row
    return Turn(question, answer, json.loads(sources), model, bool(incomplete), error, created, **_meta(meta))


def _meta(raw: str) -> dict[str, Any]:
    """Turn fields stored as JSON in `meta`; a damaged value reads as none (the turn still shows)."""
    try:
        meta = json.loads(raw or "{}")
    except ValueError:
        return {}
    if not isinstance(meta, dict):
        return {}
    notes = [n for n in meta.get("notes") or [] if isinstance(n, dict) and isinstance(n.get("code"), str)]
    params = meta.get("error_params")
    return {"error_code": str(meta.get("error_code") or ""), "error_params": params if isinstance(params, dict) else {},
            "notes": [Note(code=n["code"], params=dict(n.get("params") or {})) for n in notes]}
