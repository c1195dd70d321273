"""A PostgreSQL server for the rows that measure the PostgreSQL store (rows/pg_*.py).

Each such row starts a private server of its own (tests/pgserver.py: Unix
socket only, `fsync` and `synchronous_commit` off, as a SQLite store in WAL
mode with `synchronous=NORMAL` does not flush at each commit either) and
stops it when done. A row that cannot start one here (no PostgreSQL binaries,
no psycopg) is skipped, saying why.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.bench.harness import Skipped
from tests.pgserver import PostgresServer, PostgresUnavailable


@contextmanager
def server() -> Iterator[PostgresServer]:
    """A private PostgreSQL server while in use; `Skipped` when none can start here."""
    try:
        started = PostgresServer.start()
    except PostgresUnavailable as exc:
        raise Skipped(f"no PostgreSQL server: {exc}".replace("\n", " ")) from None
    try:
        yield started
    finally:
        started.stop()
