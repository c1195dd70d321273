"""The SQLite store's file and line read in a few indexed statements: its URL, each
module's head by skip-scan, and the idle question.

`nothing_to_do` is the question an idle tick asks before the rest of taskcron
loads (see `taskcron.__main__`): it answers "nothing to do" only when a claim of
the same scope would find nothing due and nothing running. The module imports
nothing heavy for that reason (sqlite3 only when a store is opened), and
`SqliteStore` reads its line with the same statements.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from taskcron import errors
from taskcron.inputs import covers, in_scope
from taskcron.store.scopes import SELECT_RUNNING, SQLITE_ANY_MISSED, module_ranges, scope_where
from taskcron.store.sqlite_schema import APPLICATION_ID, SCHEMA_VERSION

#: What a SQLite store URL starts with; the file's path follows.
SQLITE_PREFIX = "sqlite:///"
#: How long a statement waits for another process's lock before the store is "busy".
BUSY_TIMEOUT = timedelta(seconds=10)
#: Any task due at all, in any scope: when there is none, no module's head is due.
SELECT_ANY_DUE = (
    "SELECT id FROM tasks INDEXED BY tasks_state WHERE state = 'queued' AND due_at <= :now LIMIT 1"
)
#: The oldest queued task of the first module at or after a module id (its head).
FIRST_MODULE_HEAD = (
    "SELECT module, due_at, id FROM tasks INDEXED BY tasks_line"
    " WHERE state = 'queued' AND module >= :module"
    " ORDER BY module, due_at, id LIMIT 1"
)
#: The head of the first module after a module id: the skip-scan's step.
NEXT_MODULE_HEAD = (
    "SELECT module, due_at, id FROM tasks INDEXED BY tasks_line"
    " WHERE state = 'queued' AND module > :module"
    " ORDER BY module, due_at, id LIMIT 1"
)
# Opening a store to ask it.
READ_STORE = "SELECT * FROM pragma_application_id, pragma_user_version, pragma_journal_mode"
#: A write transaction takes the write lock first, so that what it reads stays true: a
#: claim reads the line in one, and so does the question, to see what the claim would.
BEGIN_WRITE = "BEGIN IMMEDIATE"


def heads(
    db: Any, modules: Sequence[str], excepts: Sequence[str]
) -> Iterator[tuple[str, Any, int]]:
    """Each in-scope module's oldest queued task: (module, due_at, id), by skip-scan.

    `db` is a sqlite3 connection whose rows are `sqlite3.Row`.
    """
    for low, high in module_ranges(modules):
        bound, inclusive = low, True
        while True:
            head = FIRST_MODULE_HEAD if inclusive else NEXT_MODULE_HEAD
            row = db.execute(head, {"module": bound}).fetchone()
            if row is None or (high is not None and row["module"] >= high):
                break
            module = row["module"]
            excluded = next((e for e in excepts if covers(e, module)), None)
            if excluded is not None:
                # Skip the excluded subtree in one step ("/" follows "." in ASCII);
                # "e-x" sorts between "e" and "e.a" and is not excluded.
                if module == excluded:
                    bound, inclusive = module, False
                else:
                    bound, inclusive = excluded + "/", True
                continue
            if in_scope(module, modules, excepts):
                yield module, row["due_at"], row["id"]
            bound, inclusive = module, False


def nothing_to_do(db: Any, modules: Sequence[str], excepts: Sequence[str], now: int) -> bool:
    """Whether a scope has nothing running and nothing due at `now` (microseconds since
    the epoch, as the store keeps due times), and no task of any scope has missed its
    time (the full tick records it): then a tick of it is idle."""
    where, params = scope_where(modules, excepts, _mark)
    if db.execute(SELECT_RUNNING.format(scope=where), params).fetchone() is not None:
        return False
    if db.execute(SQLITE_ANY_MISSED, {"now": now}).fetchone() is not None:
        return False
    if db.execute(SELECT_ANY_DUE, {"now": now}).fetchone() is None:
        return True
    return all(due > now for _, due, _ in heads(db, modules, excepts))


def _mark(name: str) -> str:
    return f":{name}"


def open_file(path: Path, *, create: bool) -> None:
    """Check that a store's file can be opened for writing, creating it (mode 0600) if
    `create`; `OSError` when the system will not. SQLite then opens it by the same path:
    this reads the path as the system does (SQLite alone folds "x/.." away, though x be
    missing) and refuses a file this process may not write (SQLite alone reads it).

    An existing file is only looked at (stat, access), never opened: closing a
    descriptor of a file drops every POSIX lock this process holds on it, those of
    SQLite's own connections to it too (another `TaskCron` of the same store), and
    a connection that lost its lock may read a write-ahead log that another process
    has checkpointed and reset behind it.
    """
    try:
        found = path.stat()
    except FileNotFoundError:
        if not create:
            raise
        try:  # a new file: no connection of this process has it open
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            return
        except FileExistsError:  # made meanwhile by another process: look at it
            found = path.stat()
    if stat.S_ISDIR(found.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not os.access(path, os.R_OK | os.W_OK, effective_ids=os.access in os.supports_effective_ids):
        os.close(os.open(path, os.O_RDWR))  # fails, saying why (EACCES, EPERM, EROFS)
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))


def idle_url(url: str, modules: Sequence[str], excepts: Sequence[str]) -> bool:
    """`idle_store` of the store at `url`; False for a URL that names no SQLite store."""
    return url.startswith(SQLITE_PREFIX) and idle_store(Path(sqlite_path(url)), modules, excepts)


def idle_store(path: Path, modules: Sequence[str], excepts: Sequence[str]) -> bool:
    """True when the SQLite store at `path` is certainly idle in scope right now; False
    when it is not, or when opening it would be more than a read (it is missing, new,
    older, not ours, not in WAL mode), or when the store would not open (this process
    may not write it): then a claim must look.

    It reads as a claim does, under the write lock, waiting for it as long as a claim
    would (and then sees what the writer committed), and writes nothing.
    """
    import sqlite3

    try:
        open_file(path, create=False)  # missing, a directory, not writable: OSError
    except OSError:
        return False
    try:
        db = sqlite3.connect(
            f"{path.as_uri()}?mode=rw",
            uri=True,
            isolation_level=None,
            timeout=BUSY_TIMEOUT.total_seconds(),
        )
    except (sqlite3.Error, ValueError):
        return False
    try:
        db.row_factory = sqlite3.Row
        db.execute(BEGIN_WRITE)  # still locked after the wait: the claim says it is busy
        app_id, version, journal = db.execute(READ_STORE).fetchone()
        if (app_id, version, str(journal).lower()) != (APPLICATION_ID, SCHEMA_VERSION, "wal"):
            return False
        return nothing_to_do(db, modules, excepts, time.time_ns() // 1000)
    except sqlite3.Error:
        return False
    finally:
        db.close()


def sqlite_path(url: str) -> str:
    """The file path of a `sqlite:///` URL, as written (relative or absolute).

    Everything after `sqlite:///` is the path, taken literally: a home may hold
    `%`, `#` or `?`, which a general URL parser would read as escapes, a
    fragment or a query.
    """
    if not url.startswith(SQLITE_PREFIX):
        raise errors.StoreURLError(
            f"invalid store URL {url!r}: expected sqlite:///relative/path or "
            "sqlite:////absolute/path"
        )
    path = url[len(SQLITE_PREFIX) :]
    if not path or path.endswith("/"):
        raise errors.StoreURLError(f"invalid store URL {url!r}: it names no file")
    if path == ":memory:":
        raise errors.StoreURLError(
            f"invalid store URL {url!r}: an in-memory store would vanish with each command"
        )
    return path


def sqlite_url(url: str, base: Path) -> str:
    """A `sqlite:///` URL with its path made absolute against `base`."""
    path = Path(sqlite_path(url)).expanduser()
    return SQLITE_PREFIX + str((base / path).absolute())


def file_url(path: Path) -> str:
    """The URL of the SQLite store in the file at `path` (made absolute)."""
    return SQLITE_PREFIX + str(path.absolute())


def resolve_url(url: str, base: Path) -> str:
    """A `sqlite:///` URL checked, its path made absolute against `base` (see
    `taskcron.store.resolve_url`)."""
    return sqlite_url(url, base)
