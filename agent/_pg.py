"""PostgreSQL connections and the versioned schema shared by every app instance (store = postgres).

Connections come from one psycopg 3 pool per URL and process; each `transaction()` is one
database transaction, so a killed instance leaves nothing half-written. The schema is
created and upgraded by the app itself: `schema_version` counts the applied steps, and an
advisory lock makes two instances starting at once apply them one at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from agent.errors import StoreError

if TYPE_CHECKING:  # psycopg takes ~150 ms to import: only the postgres store loads it
    import psycopg
    from psycopg_pool import ConnectionPool

#: Schema steps in order; append, never edit (an existing database has the earlier ones).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY, title TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL,
        seq BIGSERIAL);
    CREATE TABLE turns (
        id BIGSERIAL PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        question TEXT NOT NULL, answer TEXT NOT NULL, sources TEXT NOT NULL, model TEXT NOT NULL,
        incomplete BOOLEAN NOT NULL DEFAULT FALSE, error TEXT NOT NULL DEFAULT '', created TEXT NOT NULL,
        meta TEXT NOT NULL DEFAULT '{}');
    CREATE INDEX turns_by_conversation ON turns(conversation_id, id);
    """,
    """
    CREATE EXTENSION IF NOT EXISTS vector;
    CREATE TABLE collections (
        name TEXT PRIMARY KEY, embedding_model TEXT NOT NULL, dimension INTEGER,
        version BIGINT NOT NULL DEFAULT 0);
    CREATE TABLE documents (
        collection TEXT NOT NULL REFERENCES collections(name) ON DELETE CASCADE, doc_id TEXT NOT NULL,
        seq BIGSERIAL, info JSONB NOT NULL, lexicon BYTEA NOT NULL, PRIMARY KEY (collection, doc_id));
    CREATE TABLE chunks (
        collection TEXT NOT NULL, doc_id TEXT NOT NULL, position INTEGER NOT NULL, id TEXT NOT NULL,
        text TEXT NOT NULL, metadata JSONB NOT NULL, embedding vector NOT NULL,
        PRIMARY KEY (collection, doc_id, position),
        FOREIGN KEY (collection, doc_id) REFERENCES documents(collection, doc_id) ON DELETE CASCADE);
    CREATE TABLE originals (
        collection TEXT NOT NULL REFERENCES collections(name) ON DELETE CASCADE, doc_id TEXT NOT NULL,
        file TEXT NOT NULL, content BYTEA NOT NULL, PRIMARY KEY (collection, doc_id));
    """,
)
_LOCK_KEY = 0x6167656E74  # pg_advisory_xact_lock key for schema upgrades ("agent")
_pools: dict[str, ConnectionPool] = {}
_pools_lock = threading.Lock()


def _fail(url: str, exc: Exception) -> StoreError:
    return StoreError(f"PostgreSQL error ({_redact(url)}): {str(exc).strip().splitlines()[0] if str(exc) else exc}.",
                      "Check AGENT_DATABASE_URL and that the server is running with pgvector installed.")


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme_user = head.rsplit(":", 1)[0]
    return f"{scheme_user}:***@{tail}"


def pool(url: str) -> ConnectionPool:
    """The process's pool for `url`, opened (and the schema brought up to date) on first use."""
    import psycopg
    from psycopg_pool import ConnectionPool

    with _pools_lock:
        found = _pools.get(url)
        if found is None:
            # autocommit: `transaction()` still opens one explicitly; a single poll (`query_one`) needs no BEGIN/COMMIT
            found = ConnectionPool(url, min_size=1, max_size=8, open=False, timeout=30, kwargs={"autocommit": True})
            try:
                found.open(wait=True, timeout=30)
                with found.connection() as db, db.transaction():
                    migrate(db)
            except (psycopg.Error, TimeoutError) as exc:
                found.close()
                raise _fail(url, exc) from exc
            _pools[url] = found
        return found


@contextmanager
def transaction(url: str) -> Iterator[psycopg.Connection]:
    """One connection in one transaction: committed on success, rolled back on any error."""
    import psycopg

    try:
        with pool(url).connection() as db, db.transaction():
            yield db
    except psycopg.Error as exc:
        raise _fail(url, exc) from exc


def query_one(url: str, sql: str, params: tuple[object, ...]) -> tuple[object, ...] | None:
    """The first row of one statement run on its own: one round trip, for a poll such as a version check."""
    import psycopg

    try:
        with pool(url).connection() as db:
            return db.execute(sql, params).fetchone()  # type: ignore[arg-type]  # trusted constant SQL
    except psycopg.Error as exc:
        raise _fail(url, exc) from exc


def migrate(db: psycopg.Connection) -> None:
    """Bring the schema to the current version, in the caller's transaction."""
    db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = db.execute("SELECT version FROM schema_version").fetchone()
    version = row[0] if row else 0
    if version > len(MIGRATIONS):
        raise StoreError(f"The PostgreSQL schema is version {version}, newer than this app ({len(MIGRATIONS)}).",
                         "Update the app on this machine to the version the other instances run.")
    for step in MIGRATIONS[version:]:
        db.execute(step)  # type: ignore[arg-type]  # trusted constant SQL
    db.execute("DELETE FROM schema_version")
    db.execute("INSERT INTO schema_version VALUES (%s)", (len(MIGRATIONS),))


def close_all() -> None:
    """Close every pool (tests and process exit)."""
    with _pools_lock:
        for opened in _pools.values():
            opened.close()
        _pools.clear()
