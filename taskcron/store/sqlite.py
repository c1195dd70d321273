"""SqliteStore: the task store in one SQLite file (`<home>/tasks.db`, WAL mode).

Times are stored as integer microseconds since the epoch (UTC), so that they
sort exactly and index well. Ids come from AUTOINCREMENT: an id is never
reused, so "due time, then id" is a stable FIFO order even after deletes.

The schema version lives in `PRAGMA user_version` and the file is marked as
taskcron's with `PRAGMA application_id`; a file that is not ours, or that a
newer taskcron wrote, is refused before anything is written to it.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskcron import errors
from taskcron.model import (
    Lanes,
    Next,
    Outcome,
    Progress,
    Recurrence,
    Run,
    RunEnd,
    Scope,
    State,
    Target,
    Task,
    covers,
)
from taskcron.store import (
    Claim,
    ClaimOutcome,
    Decide,
    Lease,
    NewTask,
    PoolLease,
    Recovered,
    Skip,
    Store,
    Tasks,
    sqlite_path,
)

log = logging.getLogger(__name__)

#: "tcrn": marks a SQLite file as a taskcron store.
APPLICATION_ID = 0x7463726E
BUSY_TIMEOUT = timedelta(seconds=10)
#: SQLite's result code for a full disk (`sqlite3.SQLITE_FULL` from Python 3.11 on).
SQLITE_FULL = 13
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_V1 = """
CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    module           TEXT    NOT NULL,
    title            TEXT    NOT NULL,
    target           TEXT    NOT NULL,
    data             TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    state            TEXT    NOT NULL,
    due_at           INTEGER NOT NULL,
    attempts         INTEGER NOT NULL,
    max_attempts     INTEGER NOT NULL,
    timeout          REAL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    result           TEXT,
    run_id           INTEGER,
    lease_host       TEXT,
    lease_pid        INTEGER,
    lease_expires_at INTEGER
);
-- The line: each module's oldest queued task, found without a scan.
CREATE INDEX tasks_line ON tasks (module, due_at, id) WHERE state = 'queued';
-- Inside a module: the oldest task of each priority.
CREATE INDEX tasks_priority ON tasks (module, priority, due_at, id) WHERE state = 'queued';
CREATE INDEX tasks_running ON tasks (module) WHERE state = 'running';
CREATE INDEX tasks_state ON tasks (state, due_at, id);
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    elapsed     REAL,
    outcome     TEXT,
    exit_code   INTEGER,
    error       TEXT,
    traceback   TEXT,
    output_tail TEXT    NOT NULL DEFAULT '',
    truncated   INTEGER NOT NULL DEFAULT 0,
    host        TEXT    NOT NULL,
    pid         INTEGER NOT NULL,
    child_pid   INTEGER
);
CREATE INDEX runs_task ON runs (task_id, id);
"""

_V2 = """
ALTER TABLE tasks ADD COLUMN schedule TEXT;
ALTER TABLE tasks ADD COLUMN max_lateness REAL;
ALTER TABLE tasks ADD COLUMN key TEXT;
CREATE INDEX tasks_key ON tasks (module, key) WHERE key IS NOT NULL
    AND state IN ('queued', 'running');
"""

_V3 = """
ALTER TABLE tasks ADD COLUMN owner TEXT;
-- An owner's waiting tasks, for `list --owner` and `cancel --owner`.
CREATE INDEX tasks_owner ON tasks (owner, state) WHERE owner IS NOT NULL;
ALTER TABLE runs ADD COLUMN child_start TEXT;
-- The pools serving a scope on a host, with the scope as `Scope.to_json` in JSON.
CREATE TABLE pools (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    host        TEXT    NOT NULL,
    pid         INTEGER NOT NULL,
    scope       TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX pools_host ON pools (host);
CREATE INDEX pools_expires ON pools (expires_at);
"""

_V4 = """
ALTER TABLE tasks ADD COLUMN progress TEXT;
ALTER TABLE tasks ADD COLUMN steps INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN step_state TEXT;
"""

_STATUS_INDEXES = """
-- `status`: tasks counted by module and state from this index alone.
CREATE INDEX tasks_module_state ON tasks (module, state);
-- `status`: the failed tasks, the most recently updated first, with their module for the scope.
CREATE INDEX tasks_failed ON tasks (state, updated_at, id, module) WHERE state = 'failed';
-- `status`: tasks that ran and will run again (a one-off task with attempts left, a
-- recurring task), among which are those whose last run failed.
CREATE INDEX tasks_rerun ON tasks (state, module) WHERE attempts > 0 OR schedule IS NOT NULL;
"""

#: MIGRATIONS[n] takes a store from version n to n + 1.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _STATUS_INDEXES)
SCHEMA_VERSION = len(MIGRATIONS)

# --- SQL ----------------------------------------------------------------------
#
# Every statement SqliteStore runs, by name. Values go in as `?` parameters; a
# `{field}` is filled with str.format before the statement runs: `{scope}` with
# the WHERE fragment `_scope_sql` builds from the SCOPE_* fragments.

# Opening and checking: settings, ownership, version, soundness.
SET_BUSY_TIMEOUT = f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT.total_seconds() * 1000)}"
READ_APPLICATION_ID = "PRAGMA application_id"
READ_SCHEMA_VERSION = "PRAGMA user_version"
#: Tables and indexes in the file: none in a new one.
COUNT_SCHEMA_OBJECTS = "SELECT count(*) AS objects FROM sqlite_master"
READ_JOURNAL_MODE = "PRAGMA journal_mode"
SET_WAL = "PRAGMA journal_mode = WAL"
SET_SYNCHRONOUS = "PRAGMA synchronous = NORMAL"
MARK_AS_TASKCRON = f"PRAGMA application_id = {APPLICATION_ID}"
#: `{version}`: a PRAGMA takes no parameters.
SET_SCHEMA_VERSION = "PRAGMA user_version = {version}"
#: One problem a row (at most 100), or the single row "ok".
QUICK_CHECK = "PRAGMA quick_check"

# Transactions.
#: Every statement of a read transaction sees the same snapshot.
BEGIN_READ = "BEGIN"
#: A write transaction takes the write lock first, so that what it reads stays true.
BEGIN_WRITE = "BEGIN IMMEDIATE"
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"

# Columns: what `_task` and `_run` read.
TASK_COLUMNS = (
    "id, module, title, target, data, priority, state, due_at, attempts, max_attempts,"
    " timeout, created_at, updated_at, result, schedule, max_lateness, key, owner,"
    " progress, steps, step_state,"
    " (SELECT outcome FROM runs WHERE runs.task_id = tasks.id ORDER BY runs.id DESC LIMIT 1)"
    " AS last_outcome"
)
RUN_COLUMNS = (
    "id, task_id, attempt, started_at, ended_at, elapsed, outcome, exit_code, error,"
    " traceback, output_tail, truncated, host, pid, child_pid, child_start"
)

# Scopes: `_scope_sql` joins these into `{scope}`.
#: A module and every module under it, as index-friendly ranges: the parameters
#: are "m", "m." and "m/" ("/" is the character after ".").
SCOPE_MODULE = "(module = ? OR (module >= ? AND module < ?))"
SCOPE_NOT_MODULE = f"NOT {SCOPE_MODULE}"
#: What an empty scope matches: every task.
SCOPE_ALL = "1"

# Reading.
SELECT_TASK = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?"
SELECT_TASK_RUNS = f"SELECT {RUN_COLUMNS} FROM runs WHERE task_id = ? ORDER BY id"
SELECT_RUN = f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"
#: Tasks in scope and in some states, in line order; `{states}`: one `?` a state,
#: `{owner}`: OWNER_IS or ANY_OWNER.
LIST_TASKS = (
    f"SELECT {TASK_COLUMNS} FROM tasks WHERE state IN ({{states}}) AND {{scope}}"
    " AND {owner} ORDER BY due_at, id"
)
OWNER_IS = "owner = ?"
ANY_OWNER = "1"

# Writing.
#: The queued or running task of a module with a key, if any.
SELECT_KEYED_TASK = (
    "SELECT id FROM tasks INDEXED BY tasks_key WHERE module = ? AND key = ?"
    " AND key IS NOT NULL AND state IN ('queued', 'running') LIMIT 1"
)
INSERT_TASK = (
    "INSERT INTO tasks (module, title, target, data, priority, state, due_at,"
    " attempts, max_attempts, timeout, created_at, updated_at, schedule,"
    " max_lateness, key, owner)"
    " VALUES (?, ?, ?, ?, ?, 'queued', ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: What `transition` changes: state, attempts and due time.
SET_TASK_STATE = "UPDATE tasks SET state = ?, attempts = ?, due_at = ?, updated_at = ? WHERE id = ?"
DELETE_TASK_RUNS = "DELETE FROM runs WHERE task_id = ?"
DELETE_TASK = "DELETE FROM tasks WHERE id = ?"
#: The tasks `prune` deletes: finished, and last updated before a time.
FINISHED_BEFORE = "state IN ('done', 'failed', 'cancelled') AND updated_at < ?"
PRUNE_RUNS = f"DELETE FROM runs WHERE task_id IN (SELECT id FROM tasks WHERE {FINISHED_BEFORE})"
PRUNE_TASKS = f"DELETE FROM tasks WHERE {FINISHED_BEFORE}"
#: What `cancel_owned` cancels: an owner's queued and paused tasks.
OWNED_WAITING = "owner = ? AND state IN ('queued', 'paused')"
SELECT_OWNED_WAITING = f"SELECT id FROM tasks INDEXED BY tasks_owner WHERE {OWNED_WAITING}"
CANCEL_OWNED = (
    f"UPDATE tasks INDEXED BY tasks_owner SET state = 'cancelled', updated_at = ?"
    f" WHERE {OWNED_WAITING}"
)

# Claiming.
#: A task running in scope, if any: a scope runs one task at a time.
SELECT_RUNNING = "SELECT id FROM tasks WHERE state = 'running' AND {scope} LIMIT 1"
#: The leases of the tasks running in scope, to find the dead ones.
SELECT_RUNNING_LEASES = (
    "SELECT id, run_id, lease_host, lease_pid, lease_expires_at FROM tasks"
    " WHERE state = 'running' AND {scope}"
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
#: The highest priority among a module's queued tasks.
MODULE_TOP_PRIORITY = (
    "SELECT priority FROM tasks INDEXED BY tasks_priority"
    " WHERE state = 'queued' AND module = ?"
    " ORDER BY priority DESC LIMIT 1"
)
#: The highest priority below a given one among a module's queued tasks.
MODULE_PRIORITY_BELOW = (
    "SELECT priority FROM tasks INDEXED BY tasks_priority"
    " WHERE state = 'queued' AND module = ? AND priority < ?"
    " ORDER BY priority DESC LIMIT 1"
)
#: A module's oldest queued task of one priority.
OLDEST_AT_PRIORITY = (
    "SELECT due_at, id FROM tasks INDEXED BY tasks_priority"
    " WHERE state = 'queued' AND module = ? AND priority = ?"
    " ORDER BY due_at, id LIMIT 1"
)
#: How many tasks of one module run, across the store: a lane's occupancy.
COUNT_RUNNING_IN_MODULE = (
    "SELECT count(*) AS running FROM tasks INDEXED BY tasks_running"
    " WHERE state = 'running' AND module = ?"
)
INSERT_RUN = "INSERT INTO runs (task_id, attempt, started_at, host, pid) VALUES (?, ?, ?, ?, ?)"
#: Mark a task running under a lease, with the run just opened.
CLAIM_TASK = (
    "UPDATE tasks SET state = 'running', attempts = ?, updated_at = ?, run_id = ?,"
    " lease_host = ?, lease_pid = ?, lease_expires_at = ? WHERE id = ?"
)

# Running and finishing.
#: Only while the run is the task's current one and the lease is the caller's.
RENEW_LEASE = (
    "UPDATE tasks SET lease_expires_at = ? WHERE state = 'running' AND run_id = ?"
    " AND lease_host = ? AND lease_pid = ?"
)
SET_CHILD_PID = "UPDATE runs SET child_pid = ?, child_start = ? WHERE id = ?"
#: The task a run belongs to, while that run is its current one.
SELECT_TASK_OF_RUN = "SELECT id FROM tasks WHERE state = 'running' AND run_id = ?"
END_RUN = (
    "UPDATE runs SET ended_at = ?, elapsed = ?, outcome = ?, exit_code = ?, error = ?,"
    " traceback = ?, output_tail = ?, truncated = ? WHERE id = ?"
)
SET_RESULT = "UPDATE tasks SET result = ? WHERE id = ?"
#: A step that asked to continue: its state saved, one more step, its attempt not counted.
SAVE_STEP = (
    "UPDATE tasks SET step_state = ?, steps = steps + 1, attempts = max(attempts - 1, 0)"
    " WHERE id = ?"
)
#: A job that finished, or failed for good: the next one starts afresh.
CLEAR_STEPS = "UPDATE tasks SET step_state = NULL, steps = 0 WHERE id = ?"
SET_PROGRESS = "UPDATE tasks SET progress = ? WHERE id = ?"
#: Progress a running task reports, while the run is still its current one.
SAVE_PROGRESS = "UPDATE tasks SET progress = ? WHERE state = 'running' AND run_id = ?"
#: Put a task where a policy said, resetting its attempts if told to; drop its lease.
MOVE_TASK = (
    "UPDATE tasks SET state = ?, due_at = ?, updated_at = ?, run_id = NULL,"
    " lease_host = NULL, lease_pid = NULL, lease_expires_at = NULL,"
    " attempts = CASE WHEN ? THEN 0 ELSE attempts END WHERE id = ?"
)

# Status.
#: Tasks by module and state in one range of module ids; `{range}`: MODULE_RANGE or MODULE_FROM.
COUNT_TASKS = (
    "SELECT module, state, count(*) AS tasks FROM tasks INDEXED BY tasks_module_state"
    " WHERE {range} GROUP BY module, state"
)
MODULE_RANGE = "module >= ? AND module < ?"
MODULE_FROM = "module >= ?"
#: The running tasks in scope, with the id of their current run.
SELECT_RUNNING_TASKS = (
    f"SELECT {TASK_COLUMNS}, run_id FROM tasks WHERE state = 'running' AND {{scope}}"
)
#: A module's first queued tasks by due time, then id.
MODULE_FIRST_QUEUED = (
    "SELECT due_at, id FROM tasks INDEXED BY tasks_line WHERE state = 'queued' AND module = ?"
    " ORDER BY due_at, id LIMIT ?"
)
#: The failed tasks in scope, the most recently updated first.
LATEST_FAILED = (
    "SELECT updated_at, id FROM tasks INDEXED BY tasks_failed WHERE state = 'failed'"
    " AND {scope} ORDER BY updated_at DESC, id DESC LIMIT ?"
)
#: Waiting tasks in scope that will run again, and whose last run failed or timed out.
WAITING_AFTER_FAILURE = (
    "SELECT updated_at, id FROM tasks INDEXED BY tasks_rerun"
    " WHERE state IN ('queued', 'paused') AND (attempts > 0 OR schedule IS NOT NULL)"
    " AND {scope} AND (SELECT outcome FROM runs WHERE runs.task_id = tasks.id"
    " ORDER BY runs.id DESC LIMIT 1) IN ('failed', 'timeout')"
)

# Pools.
#: Pools whose lease ran out: dropped before a pool registers.
DELETE_EXPIRED_POOLS = "DELETE FROM pools INDEXED BY pools_expires WHERE expires_at <= ?"
#: The pools on a host whose lease still runs, oldest first.
SELECT_LIVE_POOLS = (
    "SELECT id, host, pid, scope, expires_at FROM pools INDEXED BY pools_host"
    " WHERE host = ? AND expires_at > ? ORDER BY id"
)
DELETE_POOL = "DELETE FROM pools WHERE id = ?"
INSERT_POOL = "INSERT INTO pools (host, pid, scope, started_at, expires_at) VALUES (?, ?, ?, ?, ?)"
RENEW_POOL = "UPDATE pools SET expires_at = ? WHERE id = ?"


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch, exactly."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    """The inverse of `to_micros`."""
    return _EPOCH + timedelta(microseconds=value)


def _task(row: sqlite3.Row, runs: tuple[Run, ...] = ()) -> Task:
    """A task from a row of `TASK_COLUMNS`."""
    schedule, timeout, lateness = row["schedule"], row["timeout"], row["max_lateness"]
    progress = row["progress"]
    return Task(
        id=row["id"],
        module=row["module"],
        title=row["title"],
        target=Target.from_json(json.loads(row["target"])),
        data_json=row["data"],
        priority=row["priority"],
        state=State(row["state"]),
        due_at=from_micros(row["due_at"]),
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        timeout=None if timeout is None else timedelta(seconds=timeout),
        created_at=from_micros(row["created_at"]),
        updated_at=from_micros(row["updated_at"]),
        result_json=row["result"],
        recurrence=None if schedule is None else Recurrence.from_json(json.loads(schedule)),
        max_lateness=None if lateness is None else timedelta(seconds=lateness),
        key=row["key"],
        owner=row["owner"],
        progress=None if progress is None else Progress.from_json(json.loads(progress)),
        steps=row["steps"],
        step_state_json=row["step_state"],
        last_outcome=None if row["last_outcome"] is None else Outcome(row["last_outcome"]),
        runs=runs,
    )


def _run(row: sqlite3.Row) -> Run:
    """A run from a row of `RUN_COLUMNS`."""
    ended_at, outcome = row["ended_at"], row["outcome"]
    return Run(
        id=row["id"],
        task_id=row["task_id"],
        attempt=row["attempt"],
        started_at=from_micros(row["started_at"]),
        ended_at=None if ended_at is None else from_micros(ended_at),
        elapsed=row["elapsed"],
        outcome=None if outcome is None else Outcome(outcome),
        exit_code=row["exit_code"],
        error=row["error"],
        traceback=row["traceback"],
        output_tail=row["output_tail"],
        truncated=bool(row["truncated"]),
        host=row["host"],
        pid=row["pid"],
        child_pid=row["child_pid"],
        child_start=row["child_start"],
    )


def _pool(row: sqlite3.Row) -> PoolLease:
    """A pool from a row of `SELECT_LIVE_POOLS`."""
    return PoolLease(
        id=row["id"],
        host=row["host"],
        pid=row["pid"],
        scope=Scope.from_json(json.loads(row["scope"])),
        expires_at=from_micros(row["expires_at"]),
    )


def _scope_sql(scope: Scope) -> tuple[str, list[Any]]:
    """The WHERE fragment on `module` for a scope, joined from SCOPE_*, and its parameters."""
    clauses: list[str] = []
    if scope.modules:
        clauses.append("(" + " OR ".join(SCOPE_MODULE for _ in scope.modules) + ")")
    clauses.extend(SCOPE_NOT_MODULE for _ in scope.excepts)
    params: list[Any] = [
        bound for m in (*scope.modules, *scope.excepts) for bound in (m, m + ".", m + "/")
    ]
    return (" AND ".join(clauses) or SCOPE_ALL), params


def _ranges(scope: Scope) -> list[tuple[str, str | None]]:
    """The key ranges of `module` a scope covers, merged so that no module is in two.

    "m" covers ["m", "m/"): "/" is the character after ".". Overlaps come from
    nesting ("a" and "a.x") and from look-alikes ("e" and "e-x": "e-x" < "e/").
    """
    if not scope.modules:
        return [("", None)]
    merged: list[tuple[str, str | None]] = []
    for low, high in sorted((m, m + "/") for m in scope.modules):
        if merged:
            last_low, last_high = merged[-1]
            assert last_high is not None
            if low < last_high:
                merged[-1] = (last_low, max(last_high, high))
                continue
        merged.append((low, high))
    return merged


def _job_over(outcome: Outcome, where: Next | tuple[State, datetime]) -> bool:
    """Whether a run ended its job: done, failed for good, or a recurring task's attempts
    spent (it starts afresh at its next time)."""
    return (
        outcome is Outcome.DONE
        or where[0] is not State.QUEUED
        or (len(where) > 2 and bool(where[2]))
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SqliteStore:
    """The task store in `<home>/tasks.db`. See `taskcron.store.Store` for the contract."""

    def __init__(
        self, path: str | os.PathLike[str], *, create: bool = True, host: str | None = None
    ) -> None:
        """Open the store at `path`, creating it unless `create` is false.

        With `create` false a missing file is `StoreMissingError` and nothing is
        created. A file that is not a taskcron store, or is a newer one, is
        refused untouched; an older one is migrated.
        """
        self.path = Path(path)
        #: Where the store is: "sqlite:///" and the file's absolute path.
        self.url = f"sqlite:///{self.path.absolute()}"
        self.host = host or os.uname().nodename
        self.migrated_from: int | None = None  #: The version found, when open() migrated.
        self._db = self._open(create)
        #: The file's schema version, current once it is open.
        self.schema_version = SCHEMA_VERSION

    @classmethod
    def from_url(cls, url: str, *, create: bool = True) -> SqliteStore:
        """Open the store a `sqlite:///` URL names (see `taskcron.store.open_store`).

        When creating, missing directories on its path are made (mode 0700).
        """
        path = Path(sqlite_path(url))
        if create and not path.parent.is_dir():
            try:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise errors.StoreError(
                    f"cannot create the store's directory {path.parent}: {exc.strerror}"
                ) from exc
        return cls(path, create=create)

    # --- opening -----------------------------------------------------------

    def _open(self, create: bool) -> sqlite3.Connection:
        try:
            fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and not create:
                raise errors.StoreMissingError(str(self.path)) from exc
            raise errors.StoreError(f"cannot open store {self.path}: {exc.strerror}") from exc
        os.close(fd)
        # Without "c" in its mode SQLite cannot create the file either, should it
        # vanish after the check above.
        mode = "rwc" if create else "rw"
        try:
            db = sqlite3.connect(
                f"{self.path.absolute().as_uri()}?mode={mode}",
                uri=True,
                timeout=BUSY_TIMEOUT.total_seconds(),
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise self._wrap(exc) from exc
        db.row_factory = sqlite3.Row
        try:
            db.execute(SET_BUSY_TIMEOUT)
            version = self._check(db)
            if version < SCHEMA_VERSION or self._journal_mode(db) != "wal":
                self._set_wal(db)
            if version < SCHEMA_VERSION:
                self._migrate(db)
            db.execute(SET_SYNCHRONOUS)
        except sqlite3.Error as exc:
            db.close()
            raise self._wrap(exc) from exc
        except BaseException:
            db.close()
            raise
        return db

    def _check(self, db: sqlite3.Connection) -> int:
        """Read the version and ownership in one read transaction; refuse what is not ours."""
        try:
            db.execute(BEGIN_READ)
            try:
                app_id = db.execute(READ_APPLICATION_ID).fetchone()["application_id"]
                version = db.execute(READ_SCHEMA_VERSION).fetchone()["user_version"]
                objects = db.execute(COUNT_SCHEMA_OBJECTS).fetchone()["objects"]
            finally:
                db.execute(COMMIT)
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise errors.ForeignStoreError(str(self.path)) from exc
            raise
        if app_id == 0 and version == 0 and objects == 0:
            return 0  # new, or created this instant by another process: ours to set up
        if app_id != APPLICATION_ID:
            raise errors.ForeignStoreError(str(self.path))
        if version > SCHEMA_VERSION:
            raise errors.StoreVersionError(str(self.path), version, SCHEMA_VERSION)
        return int(version)

    @staticmethod
    def _journal_mode(db: sqlite3.Connection) -> str:
        return str(db.execute(READ_JOURNAL_MODE).fetchone()["journal_mode"]).lower()

    @staticmethod
    def _set_wal(db: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs an exclusive lock, and SQLite answers
        # "database is locked" at once, without consulting busy_timeout, while
        # another process holds any lock: retry until the busy timeout.
        deadline = time.monotonic() + BUSY_TIMEOUT.total_seconds()
        delay = 0.001
        while True:
            try:
                mode = db.execute(SET_WAL).fetchone()["journal_mode"]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            else:
                if str(mode).lower() == "wal":
                    return
                if time.monotonic() > deadline:
                    raise errors.StoreError(f"cannot switch the store to WAL mode: {mode}")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute(BEGIN_WRITE)
        try:
            # Read again under the write lock: another process may have got here first.
            version = db.execute(READ_SCHEMA_VERSION).fetchone()["user_version"]
            if version > SCHEMA_VERSION:
                raise errors.StoreVersionError(str(self.path), version, SCHEMA_VERSION)
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        db.execute(statement)
            if version < SCHEMA_VERSION:
                db.execute(MARK_AS_TASKCRON)
                db.execute(SET_SCHEMA_VERSION.format(version=SCHEMA_VERSION))
                if version > 0:
                    self.migrated_from = version
            db.execute(COMMIT)
        except BaseException:
            db.execute(ROLLBACK)
            raise

    # --- transactions -----------------------------------------------------

    def _wrap(self, exc: sqlite3.Error) -> errors.TaskcronError:
        text = str(exc)
        if isinstance(exc, sqlite3.DataError) or "too big" in text:
            return errors.DataError(f"too large for the store: {text}")
        if "readonly" in text or "read-only" in text:
            return errors.StoreError(f"store {self.path} is read-only: {text}")
        if "locked" in text or "busy" in text:
            return errors.StoreError(f"store {self.path} is busy: {text}")
        # sqlite_errorcode may be an extended code: its low byte is the primary one.
        code = getattr(exc, "sqlite_errorcode", None)
        if (code is not None and code & 0xFF == SQLITE_FULL) or "full" in text:
            return errors.StoreError(f"store {self.path}: disk full: {text}")
        return errors.StoreError(f"store {self.path}: {text}")

    @contextmanager
    def _transaction(self, begin: str = BEGIN_WRITE) -> Iterator[sqlite3.Connection]:
        db = self._db
        try:
            db.execute(begin)
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute(ROLLBACK)
                raise
            db.execute(COMMIT)
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute(ROLLBACK)
            raise self._wrap(exc) from exc

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        """A read transaction: every statement in it sees the same snapshot."""
        return self._transaction(BEGIN_READ)

    # --- reading ----------------------------------------------------------

    def _load(self, db: sqlite3.Connection, task_id: int, *, runs: bool = True) -> Task:
        row = db.execute(SELECT_TASK, (task_id,)).fetchone()
        if row is None:
            raise errors.TaskNotFoundError(task_id)
        loaded: tuple[Run, ...] = ()
        if runs:
            loaded = tuple(_run(r) for r in db.execute(SELECT_TASK_RUNS, (task_id,)))
        return _task(row, loaded)

    def get(self, task_id: int) -> Task:
        """The task with its runs, or `TaskNotFoundError`."""
        with self._read() as db:
            return self._load(db, task_id)

    def get_run(self, run_id: int) -> Run:
        """One run by id (for the runner's bookkeeping and tests)."""
        with self._read() as db:
            row = db.execute(SELECT_RUN, (run_id,)).fetchone()
        if row is None:
            raise errors.StoreError(f"no run with id {run_id}")
        return _run(row)

    def integrity(self) -> list[str]:
        """The problems SQLite's quick check finds in the file; none when it is sound."""
        with self._read() as db:
            found = [row["quick_check"] for row in db.execute(QUICK_CHECK)]
        return [] if found == ["ok"] else found

    def list(
        self, *, scope: Scope, states: Iterable[State], owner: str | None = None
    ) -> list[Task]:
        """Tasks in scope, in one of `states` (and of `owner`, if given), in line order."""
        wanted = [State(s).value for s in states]
        if not wanted:
            return []
        where, params = _scope_sql(scope)
        marks = ", ".join("?" for _ in wanted)
        whose, owners = (ANY_OWNER, []) if owner is None else (OWNER_IS, [owner])
        sql = LIST_TASKS.format(states=marks, scope=where, owner=whose)
        with self._read() as db:
            return [_task(row) for row in db.execute(sql, [*wanted, *params, *owners])]

    # --- writing ----------------------------------------------------------

    def schedule(self, new: NewTask, *, now: datetime) -> Task:
        """Add a queued task and return it; with a key, the one already waiting if any."""
        with self._transaction() as db:
            if new.key is not None:
                row = db.execute(SELECT_KEYED_TASK, (new.module, new.key)).fetchone()
                if row is not None:
                    return self._load(db, row["id"])
            cursor = db.execute(
                INSERT_TASK,
                (
                    new.module,
                    new.title,
                    json.dumps(new.target.to_json()),
                    new.data_json,
                    new.priority,
                    to_micros(new.due_at),
                    new.max_attempts,
                    None if new.timeout is None else new.timeout.total_seconds(),
                    to_micros(now),
                    to_micros(now),
                    None if new.recurrence is None else json.dumps(new.recurrence.to_json()),
                    None if new.max_lateness is None else new.max_lateness.total_seconds(),
                    new.key,
                    new.owner,
                ),
            )
            assert cursor.lastrowid is not None
            return self._load(db, cursor.lastrowid)

    def transition(
        self,
        task_id: int,
        *,
        action: str,
        allowed: Iterable[State],
        to: State,
        now: datetime,
        reset_attempts: bool = False,
        due_at: datetime | None = None,
    ) -> Task:
        """Move a task from one of `allowed` to `to`, or raise `StateError` naming `action`."""
        with self._transaction() as db:
            task = self._load(db, task_id, runs=False)
            if task.state not in set(allowed):
                raise errors.StateError(task_id, task.state.value, action)
            attempts = 0 if reset_attempts else task.attempts
            due = task.due_at if due_at is None else due_at
            db.execute(
                SET_TASK_STATE,
                (to.value, attempts, to_micros(due), to_micros(now), task_id),
            )
            return self._load(db, task_id)

    def cancel_owned(self, owner: str, *, now: datetime) -> Tasks:
        """Cancel every queued or paused task of `owner` in one transaction.

        Return them as they were left, in line order (without their runs, as
        `list` gives them). Running and finished tasks are left alone.
        """
        with self._transaction() as db:
            ids = [row["id"] for row in db.execute(SELECT_OWNED_WAITING, (owner,))]
            db.execute(CANCEL_OWNED, (to_micros(now), owner))
            cancelled = [self._load(db, task_id, runs=False) for task_id in ids]
        return sorted(cancelled, key=lambda task: (task.due_at, task.id))

    def remove(self, task_id: int) -> Task:
        """Delete a task that is not running, with its runs; return it as it was."""
        with self._transaction() as db:
            task = self._load(db, task_id)
            if task.state is State.RUNNING:
                raise errors.StateError(task_id, task.state.value, "remove")
            db.execute(DELETE_TASK_RUNS, (task_id,))
            db.execute(DELETE_TASK, (task_id,))
            return task

    # --- claiming ---------------------------------------------------------

    def claim_next(
        self,
        *,
        scope: Scope,
        now: datetime,
        lease: Lease,
        decide: Decide,
        skip: Skip | None = None,
        lanes: Lanes | None = None,
    ) -> Claim:
        """Recover dead runs in scope, then claim the next due task unless scope is busy.

        A due task later than its `max_lateness` is not run: `skip` says where
        it goes, and the claim goes on to the next due task. With `lanes` a
        running task does not make the scope busy: only modules whose lane has
        room (fewer running tasks, across the store, than its width) are served.
        """
        with self._transaction() as db:
            recovered = tuple(self._expire(db, scope, now, decide))
            if lanes is None:
                where, params = _scope_sql(scope)
                running = db.execute(SELECT_RUNNING.format(scope=where), params).fetchone()
                if running is not None:
                    return Claim(
                        outcome=ClaimOutcome.BUSY,
                        task=self._load(db, running["id"], runs=False),
                        recovered=recovered,
                    )
            room = None if lanes is None else self._lane_room(db, lanes)
            skipped: list[Task] = []
            while True:
                chosen = self._pick(db, scope, to_micros(now), room)
                if chosen is None:
                    return Claim(
                        outcome=ClaimOutcome.IDLE, recovered=recovered, skipped=tuple(skipped)
                    )
                task = self._load(db, chosen, runs=False)
                late = task.max_lateness is not None and now - task.due_at > task.max_lateness
                if skip is None or not late:
                    break
                skipped.append(self._move(db, task, skip(task, now), now))
            task = self._take(db, task, lease, now)
            return Claim(
                outcome=ClaimOutcome.CLAIMED,
                task=task,
                run=task.runs[-1],
                recovered=recovered,
                skipped=tuple(skipped),
            )

    def _take(self, db: sqlite3.Connection, task: Task, lease: Lease, now: datetime) -> Task:
        """Open a run of `task` and mark it running under `lease`; the task as left."""
        attempt = task.attempts + 1
        cursor = db.execute(INSERT_RUN, (task.id, attempt, to_micros(now), lease.host, lease.pid))
        db.execute(
            CLAIM_TASK,
            (
                attempt,
                to_micros(now),
                cursor.lastrowid,
                lease.host,
                lease.pid,
                to_micros(lease.expires_at),
                task.id,
            ),
        )
        return self._load(db, task.id)

    @staticmethod
    def _lane_room(db: sqlite3.Connection, lanes: Lanes) -> Callable[[str], bool]:
        """Whether a module's lane has room: fewer of its tasks run, store-wide, than its width.

        Each module is counted once a claim: skipping late tasks frees no lane.
        """
        found: dict[str, bool] = {}

        def room(module: str) -> bool:
            if module not in found:
                running = db.execute(COUNT_RUNNING_IN_MODULE, (module,)).fetchone()["running"]
                found[module] = running < lanes.width(module)
            return found[module]

        return room

    def _heads(self, db: sqlite3.Connection, scope: Scope) -> Iterator[tuple[str, int, int]]:
        """Each in-scope module's oldest queued task: (module, due_at, id), by skip-scan."""
        for low, high in _ranges(scope):
            bound, inclusive = low, True
            while True:
                head = FIRST_MODULE_HEAD if inclusive else NEXT_MODULE_HEAD
                row = db.execute(head, (bound,)).fetchone()
                if row is None or (high is not None and row["module"] >= high):
                    break
                module = row["module"]
                excluded = next((e for e in scope.excepts if covers(e, module)), None)
                if excluded is not None:
                    # Skip the excluded subtree in one step ("/" follows "." in ASCII);
                    # "e-x" sorts between "e" and "e.a" and is not excluded.
                    if module == excluded:
                        bound, inclusive = module, False
                    else:
                        bound, inclusive = excluded + "/", True
                    continue
                if module in scope:
                    yield module, row["due_at"], row["id"]
                bound, inclusive = module, False

    def _pick(
        self,
        db: sqlite3.Connection,
        scope: Scope,
        now: int,
        room: Callable[[str], bool] | None = None,
    ) -> int | None:
        """The id of the task the order rule runs next, or None (see taskcron.order).

        With `room`, only modules it admits stand in the line.
        """
        heads = sorted(
            (due, tid, module)
            for module, due, tid in self._heads(db, scope)
            if due <= now and (room is None or room(module))
        )
        if not heads:
            return None
        module = heads[0][2]
        # Candidates must stand before every other module's oldest due task.
        bound: tuple[int, int] = (heads[1][0], heads[1][1]) if len(heads) > 1 else (now + 1, -1)
        priority: int | None = None
        while True:
            if priority is None:
                row = db.execute(MODULE_TOP_PRIORITY, (module,)).fetchone()
            else:
                row = db.execute(MODULE_PRIORITY_BELOW, (module, priority)).fetchone()
            if row is None:
                return None  # unreachable: the module's head qualifies at its own priority
            priority = row["priority"]
            oldest = db.execute(OLDEST_AT_PRIORITY, (module, priority)).fetchone()
            if (oldest["due_at"], oldest["id"]) < bound:
                return int(oldest["id"])

    def _expire(
        self, db: sqlite3.Connection, scope: Scope, now: datetime, decide: Decide
    ) -> Iterator[Recovered]:
        where, params = _scope_sql(scope)
        rows = db.execute(SELECT_RUNNING_LEASES.format(scope=where), params).fetchall()
        now_us = to_micros(now)
        for row in rows:
            task_id, run_id = row["id"], row["run_id"]
            host, pid, expires_at = row["lease_host"], row["lease_pid"], row["lease_expires_at"]
            expired = expires_at is None or expires_at <= now_us
            dead = host == self.host and pid is not None and not _pid_alive(pid)
            if not (expired or dead):
                continue
            why = "its lease expired" if expired else f"its process {pid} is gone"
            run = self._load_run(db, run_id) if run_id is not None else None
            started = run.started_at if run is not None else now
            end = RunEnd(
                outcome=Outcome.INTERRUPTED,
                ended_at=now,
                elapsed=max((now - started).total_seconds(), 0.0),
                error=f"{why} (host {host}, pid {pid})",
            )
            task = self._end(db, task_id, run_id, end, decide)
            yield Recovered(task=task, run=self._load_run(db, run_id) if run_id else task.runs[-1])

    def _load_run(self, db: sqlite3.Connection, run_id: int) -> Run:
        row = db.execute(SELECT_RUN, (run_id,)).fetchone()
        return _run(row)

    def _end(
        self, db: sqlite3.Connection, task_id: int, run_id: int | None, end: RunEnd, decide: Decide
    ) -> Task:
        if run_id is not None:
            db.execute(
                END_RUN,
                (
                    to_micros(end.ended_at),
                    end.elapsed,
                    end.outcome.value,
                    end.exit_code,
                    end.error,
                    end.traceback,
                    end.output_tail,
                    int(end.truncated),
                    run_id,
                ),
            )
        task = self._load(db, task_id)
        if end.outcome is Outcome.DONE:
            db.execute(SET_RESULT, (end.result_json, task_id))
        if end.progress is not None:
            db.execute(SET_PROGRESS, (json.dumps(end.progress.to_json()), task_id))
        where = decide(task, end.outcome, end.ended_at)
        if end.outcome is Outcome.CONTINUED:
            db.execute(SAVE_STEP, (end.state_json, task_id))
            resume = end.ended_at if end.resume_at is None else max(end.resume_at, end.ended_at)
            where = Next(State.QUEUED, resume)
        elif (
            end.outcome is Outcome.DONE
            or where[0] is not State.QUEUED
            or (len(where) > 2 and where[2])
        ):
            db.execute(CLEAR_STEPS, (task_id,))
        return self._move(db, task, where, end.ended_at)

    def _move(
        self,
        db: sqlite3.Connection,
        task: Task,
        where: Next | tuple[State, datetime],
        now: datetime,
    ) -> Task:
        """Put a task where a policy said (state, due time, attempts reset?); drop its lease."""
        state, due_at = where[0], where[1]
        reset = len(where) > 2 and bool(where[2])
        db.execute(
            MOVE_TASK,
            (state.value, to_micros(due_at), to_micros(now), int(reset), task.id),
        )
        return self._load(db, task.id)

    def renew_lease(self, run_id: int, *, lease: Lease) -> bool:
        """Extend the lease of a running run; False if the run is no longer ours."""
        with self._transaction() as db:
            cursor = db.execute(
                RENEW_LEASE,
                (to_micros(lease.expires_at), run_id, lease.host, lease.pid),
            )
            return cursor.rowcount == 1

    def set_child(self, run_id: int, pid: int, *, start: str | None = None) -> None:
        """Record the pid of the process a run started (its process group too).

        `start` tells that process apart from a later one with the same pid.
        """
        with self._transaction() as db:
            db.execute(SET_CHILD_PID, (pid, start, run_id))

    # --- status -----------------------------------------------------------

    def counts(self, scope: Scope) -> dict[str, dict[str, int]]:
        """How many tasks each module id in scope has in each state.

        Read from an index of (module, state): no task is loaded. A module id
        without tasks, and a state without tasks, are left out.
        """
        found: dict[str, dict[str, int]] = {}
        with self._read() as db:
            for low, high in _ranges(scope):
                where, params = (
                    (MODULE_FROM, [low]) if high is None else (MODULE_RANGE, [low, high])
                )
                for row in db.execute(COUNT_TASKS.format(range=where), params):
                    if row["module"] in scope:
                        found.setdefault(row["module"], {})[row["state"]] = row["tasks"]
        return found

    def running(self, scope: Scope) -> Tasks:
        """The running tasks in scope, each with its current run as its only run, oldest first."""
        where, params = _scope_sql(scope)
        with self._read() as db:
            rows = db.execute(SELECT_RUNNING_TASKS.format(scope=where), params).fetchall()
            tasks = [_task(row, (self._load_run(db, row["run_id"]),)) for row in rows]
        return sorted(tasks, key=lambda task: (task.runs[0].started_at, task.id))

    def next_due(self, scope: Scope, *, count: int) -> Tasks:
        """The first `count` queued tasks in scope by due time, then id (due or not).

        Only the modules whose oldest queued task is among the first `count`
        such heads are read further.
        """
        with self._read() as db:
            heads = sorted((due, tid, module) for module, due, tid in self._heads(db, scope))
            found = sorted(
                (row["due_at"], row["id"])
                for _, _, module in heads[:count]
                for row in db.execute(MODULE_FIRST_QUEUED, (module, count))
            )
            return [self._load(db, task_id, runs=False) for _, task_id in found[:count]]

    def failures(self, scope: Scope, *, count: int) -> Tasks:
        """The `count` most recently updated tasks in scope that failed.

        They are the tasks in state `failed`, and the queued or paused tasks
        that will run again (a one-off task with attempts left, a recurring
        task) whose last run failed or timed out.
        """
        where, params = _scope_sql(scope)
        with self._read() as db:
            failed = db.execute(LATEST_FAILED.format(scope=where), [*params, count]).fetchall()
            waiting = db.execute(WAITING_AFTER_FAILURE.format(scope=where), params).fetchall()
            newest = sorted(((r["updated_at"], r["id"]) for r in (*failed, *waiting)), reverse=True)
            return [self._load(db, task_id, runs=False) for _, task_id in newest[:count]]

    # --- pools ------------------------------------------------------------

    def register_pool(self, pool: PoolLease, *, now: datetime) -> int | None:
        """Make `pool` the pool of its scope on its host; its id, or None when taken.

        In one write transaction: pools whose lease expired, and pools on this
        host whose pid is gone, are dropped; then a live pool on `pool`'s host
        whose scope overlaps refuses it. Pools on other hosts never do.
        """
        with self._transaction() as db:
            db.execute(DELETE_EXPIRED_POOLS, (to_micros(now),))
            for row in db.execute(SELECT_LIVE_POOLS, (self.host, to_micros(now))).fetchall():
                if not _pid_alive(row["pid"]):
                    db.execute(DELETE_POOL, (row["id"],))
            if self._overlapping_pool(db, pool, now) is not None:
                return None
            cursor = db.execute(
                INSERT_POOL,
                (
                    pool.host,
                    pool.pid,
                    json.dumps(pool.scope.to_json()),
                    to_micros(now),
                    to_micros(pool.expires_at),
                ),
            )
            return cursor.lastrowid

    def serving_pool(self, pool: PoolLease, *, now: datetime) -> PoolLease | None:
        """The live pool on `pool`'s host whose scope overlaps `pool`'s (not `pool` itself)."""
        with self._read() as db:
            return self._overlapping_pool(db, pool, now)

    def _overlapping_pool(
        self, db: sqlite3.Connection, pool: PoolLease, now: datetime
    ) -> PoolLease | None:
        for row in db.execute(SELECT_LIVE_POOLS, (pool.host, to_micros(now))).fetchall():
            if row["id"] == pool.id or (row["host"] == self.host and not _pid_alive(row["pid"])):
                continue
            found = _pool(row)
            if found.scope.overlaps(pool.scope):
                return found
        return None

    def renew_pool(self, pool_id: int, *, expires_at: datetime) -> bool:
        """Extend a pool's lease; False when it is no longer registered."""
        with self._transaction() as db:
            return db.execute(RENEW_POOL, (to_micros(expires_at), pool_id)).rowcount == 1

    def release_pool(self, pool_id: int) -> None:
        """Remove a pool: its scope is free for another one."""
        with self._transaction() as db:
            db.execute(DELETE_POOL, (pool_id,))

    def save_progress(self, run_id: int, progress: Progress) -> bool:
        """Store a running task's progress; False once the run is no longer its current one."""
        with self._transaction() as db:
            cursor = db.execute(SAVE_PROGRESS, (json.dumps(progress.to_json()), run_id))
            return cursor.rowcount == 1

    def finish_run(self, run_id: int, end: RunEnd, *, decide: Decide) -> Task | None:
        """Record how a run ended and move its task; None if the run was recovered meanwhile."""
        with self._transaction() as db:
            row = db.execute(SELECT_TASK_OF_RUN, (run_id,)).fetchone()
            if row is None:
                return None
            return self._end(db, row["id"], run_id, end, decide)

    def prune(self, *, before: datetime) -> int:
        """Delete finished (done, failed, cancelled) tasks last updated before `before`."""
        with self._transaction() as db:
            cutoff = (to_micros(before),)
            db.execute(PRUNE_RUNS, cutoff)
            return db.execute(PRUNE_TASKS, cutoff).rowcount

    def close(self) -> None:
        """Release the connection."""
        self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if TYPE_CHECKING:
    #: mypy checks here that SqliteStore keeps every promise of `Store`.
    _CONFORMS: type[Store] = SqliteStore
