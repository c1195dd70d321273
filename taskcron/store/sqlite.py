"""SqliteStore: the task store in one SQLite file (`<home>/tasks.db`, WAL mode).

Times are stored as integer microseconds since the epoch (UTC), so that they
sort exactly and index well. Ids come from AUTOINCREMENT: an id is never
reused, so "due time, then id" is a stable FIFO order even after deletes.

The schema version lives in `PRAGMA user_version` and the file is marked as
taskcron's with `PRAGMA application_id`; a file that is not ours, or that a
newer taskcron wrote, is refused before anything is written to it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskcron import errors, line
from taskcron.model import Lanes, Scope
from taskcron.store import Store, machine_id
from taskcron.store.sql import RUN_COLUMNS, TASK_COLUMNS, SqlStore
from taskcron.syntax import sqlite_path

log = logging.getLogger(__name__)

#: "tcrn": marks a SQLite file as a taskcron store.
APPLICATION_ID = line.APPLICATION_ID
BUSY_TIMEOUT = line.BUSY_TIMEOUT
#: SQLite's result code for a full disk (`sqlite3.SQLITE_FULL` from Python 3.11 on).
SQLITE_FULL = 13
#: SQLite's result code for an I/O error (`sqlite3.SQLITE_IOERR`).
SQLITE_IOERR = 10
#: Less free space than this and an I/O error is a full disk: SQLite needs 32 KiB at
#: once for the shared memory beside a WAL store.
FULL_BELOW = 64 * 1024
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

_V6 = """
-- The machine a lease, run or pool was taken on (`/etc/machine-id`, else the boot id).
ALTER TABLE tasks ADD COLUMN lease_machine TEXT;
ALTER TABLE runs ADD COLUMN machine TEXT;
ALTER TABLE pools ADD COLUMN machine TEXT;
"""

_TASK_COUNTS = """
-- `status`: how many tasks each module id has in each state, kept by the triggers below as
-- tasks come, move and go, so that counting reads one row a pair and never every task.
CREATE TABLE task_counts (
    module TEXT    NOT NULL,
    state  TEXT    NOT NULL,
    tasks  INTEGER NOT NULL,
    PRIMARY KEY (module, state)
) WITHOUT ROWID;
CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO task_counts (module, state, tasks) VALUES (NEW.module, NEW.state, 1)
        ON CONFLICT (module, state) DO UPDATE SET tasks = tasks + 1;
END;
CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks BEGIN
    UPDATE task_counts SET tasks = tasks - 1 WHERE module = OLD.module AND state = OLD.state;
    DELETE FROM task_counts WHERE module = OLD.module AND state = OLD.state AND tasks = 0;
END;
CREATE TRIGGER task_counts_update AFTER UPDATE OF module, state ON tasks
    WHEN OLD.module IS NOT NEW.module OR OLD.state IS NOT NEW.state BEGIN
    UPDATE task_counts SET tasks = tasks - 1 WHERE module = OLD.module AND state = OLD.state;
    DELETE FROM task_counts WHERE module = OLD.module AND state = OLD.state AND tasks = 0;
    INSERT INTO task_counts (module, state, tasks) VALUES (NEW.module, NEW.state, 1)
        ON CONFLICT (module, state) DO UPDATE SET tasks = tasks + 1;
END;
INSERT INTO task_counts (module, state, tasks)
    SELECT module, state, count(*) FROM tasks GROUP BY module, state;
"""

#: MIGRATIONS[n] takes a store from version n to n + 1.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _STATUS_INDEXES, _V6, _TASK_COUNTS)
SCHEMA_VERSION = len(MIGRATIONS)

# --- SQL ----------------------------------------------------------------------
#
# Every statement SqliteStore runs, by name: those that open and check the file
# here, the algorithm's in `SQL`. Values go in as `?` parameters; a `{field}`
# is filled with str.format before the statement runs: `{scope}` with the WHERE
# fragment `SqlStore._scope_sql` builds from the SCOPE_* fragments.

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
BEGIN_WRITE = line.BEGIN_WRITE
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"


class SQL:
    """Every statement the store's algorithm runs (see `taskcron.store.sql.Statements`)."""

    #: One parameter.
    MARK = "?"

    # Scopes: `_scope_sql` joins these into `{scope}`.
    #: A module and every module under it, as index-friendly ranges: the parameters
    #: are "m", "m." and "m/" ("/" is the character after ".").
    SCOPE_MODULE = line.SCOPE_MODULE
    SCOPE_NOT_MODULE = line.SCOPE_NOT_MODULE
    #: What an empty scope matches: every task.
    SCOPE_ALL = line.SCOPE_ALL

    # Reading.
    SELECT_TASK = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?"
    #: The write lock is already held: no row lock to take.
    SELECT_TASK_FOR_UPDATE = SELECT_TASK
    SELECT_TASK_RUNS = f"SELECT {RUN_COLUMNS} FROM runs WHERE task_id = ? ORDER BY id"
    SELECT_RUN = f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"
    #: A running job's first step: the (OFFSET + 1)-th `continued` run before its current run.
    SELECT_JOB_START = (
        "SELECT started_at FROM runs WHERE task_id = ? AND id < ? AND outcome = 'continued'"
        " ORDER BY id DESC LIMIT 1 OFFSET ?"
    )
    #: Tasks in scope and in some states, in line order; `{states}`: one `?` a state,
    #: `{owner}`: OWNER_IS or ANY_OWNER.
    LIST_TASKS = (
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE state IN ({{states}}) AND {{scope}}"
        " AND {owner} ORDER BY due_at, id"
    )
    OWNER_IS = "owner = ?"
    ANY_OWNER = "1"
    #: Where a page's tasks of one state in scope stand in line order, read along
    #: (state, due_at, id): the first `?` of them (a page's offset plus its length).
    PAGE_KEYS = (
        "SELECT due_at, id FROM tasks INDEXED BY tasks_state WHERE state = ? AND {scope}"
        " ORDER BY due_at, id LIMIT ?"
    )
    #: The same for one owner: found by (owner, state), then only that owner's tasks sorted.
    PAGE_OWNED_KEYS = (
        "SELECT due_at, id FROM tasks INDEXED BY tasks_owner"
        " WHERE owner = ? AND state = ? AND {scope} ORDER BY due_at, id LIMIT ?"
    )
    #: Tasks by id, in no order; `{ids}`: one `?` an id.
    SELECT_TASKS = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id IN ({{ids}})"

    # Writing.
    #: The queued, running or paused task of a module with a key, if any; parameters:
    #: module, key, module, key. tasks_key holds queued and running tasks only; a
    #: module's paused tasks are few, and read by their own index.
    SELECT_KEYED_TASK = (
        "SELECT id FROM tasks INDEXED BY tasks_key WHERE module = ? AND key = ?"
        " AND key IS NOT NULL AND state IN ('queued', 'running')"
        " UNION ALL SELECT id FROM tasks INDEXED BY tasks_module_state"
        " WHERE module = ? AND state = 'paused' AND key = ? LIMIT 1"
    )
    INSERT_TASK = (
        "INSERT INTO tasks (module, title, target, data, priority, state, due_at,"
        " attempts, max_attempts, timeout, created_at, updated_at, schedule,"
        " max_lateness, key, owner)"
        " VALUES (?, ?, ?, ?, ?, 'queued', ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    #: What `transition` changes: state, attempts and due time.
    SET_TASK_STATE = (
        "UPDATE tasks SET state = ?, attempts = ?, due_at = ?, updated_at = ? WHERE id = ?"
    )
    DELETE_TASK_RUNS = "DELETE FROM runs WHERE task_id = ?"
    DELETE_TASK = "DELETE FROM tasks WHERE id = ?"
    #: The tasks `prune` deletes: finished, and last updated before a time.
    FINISHED_BEFORE = "state IN ('done', 'failed', 'cancelled') AND updated_at < ?"
    PRUNE_RUNS = f"DELETE FROM runs WHERE task_id IN (SELECT id FROM tasks WHERE {FINISHED_BEFORE})"
    PRUNE_TASKS = f"DELETE FROM tasks WHERE {FINISHED_BEFORE}"
    #: What `prune --dry-run` counts: the same tasks and runs.
    COUNT_PRUNE_RUNS = (
        f"SELECT count(*) AS n FROM runs WHERE task_id IN (SELECT id FROM tasks WHERE"
        f" {FINISHED_BEFORE})"
    )
    COUNT_PRUNE_TASKS = f"SELECT count(*) AS n FROM tasks WHERE {FINISHED_BEFORE}"
    #: What `cancel_owned` cancels: an owner's queued and paused tasks.
    OWNED_WAITING = "owner = ? AND state IN ('queued', 'paused')"
    SELECT_OWNED_WAITING = f"SELECT id FROM tasks INDEXED BY tasks_owner WHERE {OWNED_WAITING}"
    CANCEL_OWNED = (
        f"UPDATE tasks INDEXED BY tasks_owner SET state = 'cancelled', updated_at = ?"
        f" WHERE {OWNED_WAITING}"
    )

    # Claiming.
    #: A task running in scope, if any: a scope runs one task at a time.
    SELECT_RUNNING = line.SELECT_RUNNING
    #: The leases of the tasks running in scope, to find the dead ones.
    SELECT_RUNNING_LEASES = (
        "SELECT id, run_id, lease_host, lease_machine, lease_pid, lease_expires_at FROM tasks"
        " WHERE state = 'running' AND {scope}"
    )
    #: One of those leases read again, while its run is still the task's current one.
    LOCK_RUNNING_LEASE = (
        "SELECT id, run_id, lease_host, lease_machine, lease_pid, lease_expires_at FROM tasks"
        " WHERE id = ? AND state = 'running' AND run_id = ?"
    )
    #: The oldest queued task of the first module at or after a module id (its head).
    FIRST_MODULE_HEAD = line.FIRST_MODULE_HEAD
    #: The head of the first module after a module id: the skip-scan's step.
    NEXT_MODULE_HEAD = line.NEXT_MODULE_HEAD
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
    INSERT_RUN = (
        "INSERT INTO runs (task_id, attempt, started_at, host, machine, pid)"
        " VALUES (?, ?, ?, ?, ?, ?)"
    )
    #: Mark a task running under a lease, with the run just opened.
    CLAIM_TASK = (
        "UPDATE tasks SET state = 'running', attempts = ?, updated_at = ?, run_id = ?,"
        " lease_host = ?, lease_machine = ?, lease_pid = ?, lease_expires_at = ? WHERE id = ?"
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
        " lease_host = NULL, lease_machine = NULL, lease_pid = NULL, lease_expires_at = NULL,"
        " attempts = CASE WHEN ? THEN 0 ELSE attempts END WHERE id = ?"
    )

    # Status.
    #: Tasks by module and state in one range of module ids, as the triggers keep them
    #: counted; `{range}`: MODULE_RANGE or MODULE_FROM.
    COUNT_TASKS = "SELECT module, state, tasks FROM task_counts WHERE {range}"
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
        "SELECT id, host, machine, pid, scope, expires_at FROM pools INDEXED BY pools_host"
        " WHERE host = ? AND expires_at > ? ORDER BY id"
    )
    DELETE_POOL = "DELETE FROM pools WHERE id = ?"
    INSERT_POOL = (
        "INSERT INTO pools (host, machine, pid, scope, started_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?)"
    )
    RENEW_POOL = "UPDATE pools SET expires_at = ? WHERE id = ?"

    # Moving stores: `dump` reads every task in id order, `restore` writes them with their ids.
    #: The next batch of tasks in id order: those after an id, at most a count.
    DUMP_TASKS = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id > ? ORDER BY id LIMIT ?"
    #: The runs of the tasks whose ids lie in a range (inclusive), by task then run.
    DUMP_RUNS = (
        f"SELECT {RUN_COLUMNS} FROM runs INDEXED BY runs_task WHERE task_id >= ? AND task_id <= ?"
        " ORDER BY task_id, id"
    )
    #: How many tasks and runs the store holds: `restore` writes into an empty one only.
    COUNT_STORED = (
        "SELECT (SELECT count(*) FROM tasks) AS tasks, (SELECT count(*) FROM runs) AS runs"
    )
    #: A task with its id and every field but a lease (a running task is not restored).
    #: An explicit id moves AUTOINCREMENT's sqlite_sequence past it.
    RESTORE_TASK = (
        "INSERT INTO tasks (id, module, title, target, data, priority, state, due_at,"
        " attempts, max_attempts, timeout, created_at, updated_at, result, schedule,"
        " max_lateness, key, owner, progress, steps, step_state)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    #: A run with its id and every field.
    RESTORE_RUN = (
        f"INSERT INTO runs ({RUN_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )


def _statements(script: str) -> Iterator[str]:
    """The statements of `script` one by one (a trigger's body holds semicolons too)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""


def _rollback(db: sqlite3.Connection) -> None:
    """End the open transaction, if any, keeping the error that ended it.

    SQLite rolls back by itself after some errors (a full disk, an I/O error),
    and a second failure here would hide the first one.
    """
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute(ROLLBACK)


def _full_filesystem(path: Path) -> Path | None:
    """The mount point of the filesystem holding `path` when it has no room left for the
    store to grow (less than `FULL_BELOW` bytes free), else None."""
    directory = path.absolute().parent
    try:
        found = os.statvfs(directory)
        device = directory.stat().st_dev
    except OSError:
        return None
    if found.f_bavail * found.f_frsize >= FULL_BELOW:
        return None
    while directory.parent != directory:
        try:
            if directory.parent.stat().st_dev != device:
                break
        except OSError:
            break
        directory = directory.parent
    return directory


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch, exactly."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    """The inverse of `to_micros`."""
    return _EPOCH + timedelta(microseconds=value)


class SqliteStore(SqlStore):
    """The task store in `<home>/tasks.db`. See `taskcron.store.Store` for the contract.

    The rules are `SqlStore`'s; this class opens, checks and migrates the file,
    and runs every write transaction under SQLite's write lock (`BEGIN
    IMMEDIATE`), so each is serialized with every other.
    """

    sql = SQL

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        host: str | None = None,
        machine: str | None = None,
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
        self.machine = machine_id() if machine is None else machine
        self.migrated_from: int | None = None  #: The version found, when open() migrated.
        self._db = self._open(create)
        #: The file's schema version, current once it is open.
        self.schema_version = SCHEMA_VERSION

    @classmethod
    def from_url(cls, url: str, *, create: bool = True, host: str | None = None) -> SqliteStore:
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
        return cls(path, create=create, host=host)

    # --- opening -----------------------------------------------------------

    def _open(self, create: bool) -> sqlite3.Connection:
        try:
            line.open_file(self.path, create=create)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and not create:
                raise errors.StoreMissingError(str(self.path)) from exc
            raise errors.StoreError(f"cannot open store {self.path}: {exc.strerror}") from exc
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
            except BaseException:
                _rollback(db)
                raise
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
                for statement in _statements(MIGRATIONS[step]):
                    db.execute(statement)
            if version < SCHEMA_VERSION:
                db.execute(MARK_AS_TASKCRON)
                db.execute(SET_SCHEMA_VERSION.format(version=SCHEMA_VERSION))
                if version > 0:
                    self.migrated_from = version
            db.execute(COMMIT)
        except BaseException:
            _rollback(db)
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
        primary = None if code is None else code & 0xFF
        full = primary == SQLITE_FULL or "full" in text
        if full or primary == SQLITE_IOERR:
            # SQLite reports a full disk met while growing its shared memory as an
            # I/O error: the free space on the store's filesystem tells them apart.
            mount = _full_filesystem(self.path)
            if mount is not None:
                return errors.StoreError(
                    f"store {self.path}: disk full: no space left on {mount} ({text})"
                )
            if full:
                return errors.StoreError(f"store {self.path}: disk full: {text}")
        return errors.StoreError(f"store {self.path}: {text}")

    def _transaction(
        self, *, now: datetime | None = None, lock: bool = False
    ) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction. It holds SQLite's write lock from its first statement,
        so every one is `lock`ed: serialized with every other write."""
        return self._begin(BEGIN_WRITE)

    def _read(self, *, now: datetime | None = None) -> AbstractContextManager[sqlite3.Connection]:
        """A read transaction: every statement in it sees the same snapshot."""
        return self._begin(BEGIN_READ)

    @contextmanager
    def _begin(self, begin: str) -> Iterator[sqlite3.Connection]:
        db = self._db
        try:
            db.execute(begin)
            try:
                yield db
            except BaseException:
                _rollback(db)
                raise
            db.execute(COMMIT)
        except sqlite3.Error as exc:
            _rollback(db)
            raise self._wrap(exc) from exc

    # --- the line, step by step ------------------------------------------------

    def _lane_room(self, db: Any, lanes: Lanes) -> Callable[[str], bool]:
        """Whether a module's lane has room: fewer of its tasks run, store-wide, than its width.

        Each module is counted once a claim: skipping late tasks frees no lane.
        """
        found: dict[str, bool] = {}

        def room(module: str) -> bool:
            if module not in found:
                row = db.execute(SQL.COUNT_RUNNING_IN_MODULE, (module,)).fetchone()
                found[module] = row["running"] < lanes.width(module)
            return found[module]

        return room

    def _heads(self, db: Any, scope: Scope) -> Iterator[tuple[str, Any, int]]:
        """Each in-scope module's oldest queued task: (module, due_at, id), by skip-scan."""
        return line.heads(db, scope.modules, scope.excepts)

    def _insert(self, db: Any, sql: str, params: Sequence[Any]) -> int:
        rowid = db.execute(sql, params).lastrowid
        assert rowid is not None
        return int(rowid)

    def _insert_many(self, db: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        db.executemany(sql, rows)

    def _advance_ids(self, db: Any) -> None:
        """Nothing to do: AUTOINCREMENT moved sqlite_sequence past every id inserted."""

    def _encode_time(self, moment: datetime) -> int:
        return to_micros(moment)

    def _decode_time(self, value: int) -> datetime:
        return from_micros(value)

    def integrity(self) -> list[str]:
        """The problems SQLite's quick check finds in the file; none when it is sound."""
        with self._read() as db:
            found = [row["quick_check"] for row in db.execute(QUICK_CHECK)]
        return [] if found == ["ok"] else found

    def about(self) -> str:
        """The SQLite library's version."""
        return f"SQLite {sqlite3.sqlite_version}"

    def close(self) -> None:
        """Release the connection."""
        self._db.close()


if TYPE_CHECKING:
    #: mypy checks here that SqliteStore keeps every promise of `Store`.
    _CONFORMS: type[Store] = SqliteStore
