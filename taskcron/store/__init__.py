"""Task stores: opening one by URL, and the names of the `Store` protocol and its records.

A store is chosen by URL, in SQLAlchemy's form: `sqlite:////abs/path/tasks.db`
(four slashes: absolute) or `sqlite:///tasks.db` (relative) for `SqliteStore`;
`postgresql://user@host/db` (or `postgres://`, libpq's URL, with
`?schema=NAME`) for `PostgresStore`. Each backend reads its own URLs
(`resolve_url` in its module); a backend is imported only when its URL is read.

This face is light (it imports no dataclasses, no `typing.Protocol`): the idle
question under it (`taskcron.store.sqlite_line`) imports it first. The contract
and its records live in `taskcron.store.protocol` and are named here on first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskcron import errors

if TYPE_CHECKING:
    from taskcron.store.protocol import (
        Claim as Claim,
    )
    from taskcron.store.protocol import (
        ClaimOutcome as ClaimOutcome,
    )
    from taskcron.store.protocol import (
        Decide as Decide,
    )
    from taskcron.store.protocol import (
        Lease as Lease,
    )
    from taskcron.store.protocol import (
        LogRow as LogRow,
    )
    from taskcron.store.protocol import (
        NewTask as NewTask,
    )
    from taskcron.store.protocol import (
        PoolLease as PoolLease,
    )
    from taskcron.store.protocol import (
        PruneCount as PruneCount,
    )
    from taskcron.store.protocol import (
        RecordFilter as RecordFilter,
    )
    from taskcron.store.protocol import (
        Recovered as Recovered,
    )
    from taskcron.store.protocol import (
        SharedLog as SharedLog,
    )
    from taskcron.store.protocol import (
        Skip as Skip,
    )
    from taskcron.store.protocol import (
        Store as Store,
    )
    from taskcron.store.protocol import (
        Tasks as Tasks,
    )
    from taskcron.store.protocol import (
        WakeSource as WakeSource,
    )
    from taskcron.store.protocol import (
        machine_id as machine_id,
    )

#: The names `taskcron.store.protocol` defines, read from it on first use.
PROTOCOL = frozenset(
    {
        "Claim",
        "ClaimOutcome",
        "Decide",
        "Lease",
        "LogRow",
        "NewTask",
        "PoolLease",
        "PruneCount",
        "RecordFilter",
        "Recovered",
        "SharedLog",
        "Skip",
        "Store",
        "Tasks",
        "WakeSource",
        "machine_id",
    }
)


def __getattr__(name: str) -> Any:
    if name in PROTOCOL:
        return getattr(importlib.import_module("taskcron.store.protocol"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: URL scheme -> the module that reads its URLs (`resolve_url`), and "module:Class" of
#: the store that serves it.
BACKENDS: dict[str, tuple[str, str]] = {
    "sqlite": ("taskcron.store.sqlite_line", "taskcron.store.sqlite:SqliteStore"),
    "postgresql": ("taskcron.store.postgres", "taskcron.store.postgres:PostgresStore"),
    "postgres": ("taskcron.store.postgres", "taskcron.store.postgres:PostgresStore"),
}
#: URL scheme -> "module:Class" of the shared log its store keeps, if it keeps one.
SHARED_LOGS: dict[str, str] = {
    "postgresql": "taskcron.store.postgres_log:PostgresLog",
    "postgres": "taskcron.store.postgres_log:PostgresLog",
}


def _scheme(url: str, where: str) -> str:
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme not in BACKENDS:
        known = ", ".join(f"{name}://" for name in BACKENDS)
        shown = f"scheme {scheme!r}" if scheme else "no scheme"
        raise errors.StoreURLError(
            f"invalid store URL {redact(url)!r} ({where}): {shown}; known: {known}"
        )
    return scheme


def resolve_url(url: str, *, base: Path, where: str = "store") -> str:
    """A store URL checked by its backend, a relative SQLite path made absolute against
    `base`.

    An unknown scheme, or a URL its backend cannot read, is a `StoreURLError`:
    bad input before any home or store is looked for (no driver is imported).
    """
    url = url.strip()
    reader = importlib.import_module(BACKENDS[_scheme(url, where)][0])
    resolved: str = reader.resolve_url(url, base)
    return resolved


def file_url(path: Path) -> str:
    """The URL of the SQLite store in the file at `path` (made absolute)."""
    from taskcron.store.sqlite_line import file_url

    return file_url(path)


def same_store(url: str, other: str) -> bool:
    """Whether two store URLs name the same store: the same SQLite file, or the same
    URL but for a password."""
    if url.startswith("sqlite:") and other.startswith("sqlite:"):
        from taskcron.store.sqlite_line import sqlite_path

        return Path(sqlite_path(url)).resolve() == Path(sqlite_path(other)).resolve()
    return redact(url) == redact(other)


def redact(url: str) -> str:
    """The URL without its password (in the authority or a `password=` parameter),
    for messages and displays. The rest is kept as written."""
    if "@" not in url and "password" not in url:
        return url  # no credentials: no need to parse (the tick's path)
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    user, at, host = authority.rpartition("@")
    if at and ":" in user:
        authority = user.partition(":")[0] + "@" + host
    path, question, query = tail.partition("?")
    if question:
        kept = [p for p in query.split("&") if p.partition("=")[0] != "password"]
        tail = path + ("?" + "&".join(kept) if kept else "")
    return f"{scheme}://{authority}{slash}{tail}"


def open_store(url: str, *, create: bool = True, host: str | None = None) -> Store:
    """Open the store at `url` with the backend its scheme names.

    With `create=False` nothing is created: a store that does not exist yet
    is a `StoreMissingError`. `host` names this host in leases and pools
    (default: the node name).
    """
    module_name, _, class_name = BACKENDS[_scheme(url, "store")][1].partition(":")
    backend = getattr(importlib.import_module(module_name), class_name)
    store: Store = backend.from_url(url, create=create, host=host)
    return store


def open_shared_log(url: str, *, host: str) -> SharedLog | None:
    """The shared log of the store at `url`, naming `host` in its rows; None when its
    backend keeps none. Nothing is imported for such a backend, nor connected yet."""
    found = SHARED_LOGS.get(_scheme(url, "store"))
    if found is None:
        return None
    module_name, _, class_name = found.partition(":")
    shared: SharedLog = getattr(importlib.import_module(module_name), class_name)(url, host=host)
    return shared
