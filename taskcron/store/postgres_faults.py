"""How the PostgreSQL store tells a server out of reach from a statement that failed."""

from __future__ import annotations

from typing import Any


def lost(db: Any, exc: Exception) -> bool:
    """Whether `exc`, raised on connection `db`, means the server is out of reach: the
    connection broke, or the server is shutting down or starting up."""
    import psycopg

    gone = (
        psycopg.errors.AdminShutdown,
        psycopg.errors.CrashShutdown,
        psycopg.errors.CannotConnectNow,
    )
    return isinstance(exc, psycopg.OperationalError) and (
        db.closed or db.broken or isinstance(exc, gone)
    )


def refused(exc: BaseException) -> bool:
    """Whether the server answered `exc` itself as it went away (shutting down, crashed,
    starting up): then it ran nothing of the statement."""
    return getattr(getattr(exc, "diag", None), "sqlstate", None) in ("57P01", "57P02", "57P03")


def first_line(exc: BaseException) -> str:
    """The first line of what `exc` says, or its type's name."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].strip()
