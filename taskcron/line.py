"""Reading the line from SQLite in a few indexed statements: each module's head, and
whether anything runs in a scope.

The claim reads the line with these (`taskcron.store.sqlite` takes its
statements from here, and `taskcron.store.sql` its scope fragments'
joining), and so does `nothing_to_do`, the question an idle tick asks before
the rest of taskcron loads: it answers "nothing to do" only when a claim of
the same scope would find nothing due and nothing running. The module
imports nothing heavy for that reason (sqlite3 only when a store is opened).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from taskcron.syntax import covers, in_scope

#: `PRAGMA application_id` of a taskcron store: "tcrn".
APPLICATION_ID = 0x7463726E
#: How long a statement waits for another process's lock before the store is "busy".
BUSY_TIMEOUT = timedelta(seconds=10)
#: The SQLite store's schema version (`taskcron.store.sqlite` migrates to it).
SCHEMA_VERSION = 7

# Scopes: `scope_where` joins these into a statement's `{scope}`.
#: A module and every module under it, as index-friendly ranges: the parameters
#: are "m", "m." and "m/" ("/" is the character after ".").
SCOPE_MODULE = "(module = ? OR (module >= ? AND module < ?))"
SCOPE_NOT_MODULE = f"NOT {SCOPE_MODULE}"
#: What an empty scope matches: every task.
SCOPE_ALL = "1"

#: A task running in scope, if any: a scope runs one task at a time.
SELECT_RUNNING = "SELECT id FROM tasks WHERE state = 'running' AND {scope} LIMIT 1"
#: Any task due at all, in any scope: when there is none, no module's head is due.
SELECT_ANY_DUE = (
    "SELECT id FROM tasks INDEXED BY tasks_state WHERE state = 'queued' AND due_at <= ? LIMIT 1"
)
#: The oldest queued task of the first module at or after a module id (its head).
FIRST_MODULE_HEAD = (
    "SELECT module, due_at, id FROM tasks INDEXED BY tasks_line"
    " WHERE state = 'queued' AND module >= ?"
    " ORDER BY module, due_at, id LIMIT 1"
)
#: The head of the first module after a module id: the skip-scan's step.
NEXT_MODULE_HEAD = (
    "SELECT module, due_at, id FROM tasks INDEXED BY tasks_line"
    " WHERE state = 'queued' AND module > ?"
    " ORDER BY module, due_at, id LIMIT 1"
)
# Opening a store to ask it.
READ_STORE = "SELECT * FROM pragma_application_id, pragma_user_version, pragma_journal_mode"
#: A write transaction takes the write lock first, so that what it reads stays true: a
#: claim reads the line in one, and so does the question, to see what the claim would.
BEGIN_WRITE = "BEGIN IMMEDIATE"


def module_ranges(modules: Sequence[str]) -> list[tuple[str, str | None]]:
    """The key ranges of `module` that a scope of `modules` covers, merged so that no
    module is in two (all of them, one open range, when `modules` is empty).

    "m" covers ["m", "m/"): "/" is the character after ".". Overlaps come from
    nesting ("a" and "a.x") and from look-alikes ("e" and "e-x": "e-x" < "e/").
    """
    if not modules:
        return [("", None)]
    merged: list[tuple[str, str | None]] = []
    for low, high in sorted((m, m + "/") for m in modules):
        if merged:
            last_low, last_high = merged[-1]
            assert last_high is not None
            if low < last_high:
                merged[-1] = (last_low, max(last_high, high))
                continue
        merged.append((low, high))
    return merged


def scope_where(
    modules: Sequence[str], excepts: Sequence[str], *, module: str, not_module: str, every: str
) -> tuple[str, list[Any]]:
    """A scope's WHERE fragment on `module`, joined from a dialect's fragments (`module`
    and `not_module` take "m", "m." and "m/"; `every` matches all), and its parameters."""
    clauses: list[str] = []
    if modules:
        clauses.append("(" + " OR ".join(module for _ in modules) + ")")
    clauses.extend(not_module for _ in excepts)
    params: list[Any] = [bound for m in (*modules, *excepts) for bound in (m, m + ".", m + "/")]
    return (" AND ".join(clauses) or every), params


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
            row = db.execute(head, (bound,)).fetchone()
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
    the epoch, as the store keeps due times): then a claim of it is idle."""
    where, params = scope_where(
        modules, excepts, module=SCOPE_MODULE, not_module=SCOPE_NOT_MODULE, every=SCOPE_ALL
    )
    if db.execute(SELECT_RUNNING.format(scope=where), params).fetchone() is not None:
        return False
    if db.execute(SELECT_ANY_DUE, (now,)).fetchone() is None:
        return True
    return all(due > now for _, due, _ in heads(db, modules, excepts))


def open_file(path: Path, *, create: bool) -> None:
    """Open a store's file for writing and close it, creating it (mode 0600) if `create`;
    `OSError` when the system will not. SQLite then opens it by the same path: this
    reads the path as the system does (SQLite alone folds "x/.." away, though x be
    missing) and refuses a file this process may not write (SQLite alone reads it)."""
    os.close(os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600))


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
