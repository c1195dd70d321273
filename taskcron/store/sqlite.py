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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskcron import errors
from taskcron.model import Lanes, Scope
from taskcron.store import sqlite_line
from taskcron.store.protocol import Store, machine_id
from taskcron.store.queries import SQLITE, Statements
from taskcron.store.sql import SqlStore
from taskcron.store.sqlite_line import BUSY_TIMEOUT, file_url, sqlite_path
from taskcron.store.sqlite_schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

#: SQLite's result code for a full disk (`sqlite3.SQLITE_FULL` from Python 3.11 on).
SQLITE_FULL = 13
#: SQLite's result code for an I/O error (`sqlite3.SQLITE_IOERR`).
SQLITE_IOERR = 10
#: Less free space than this and an I/O error is a full disk: SQLite needs 32 KiB at
#: once for the shared memory beside a WAL store.
FULL_BELOW = 64 * 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# --- SQL ----------------------------------------------------------------------
#
# The statements that open and check the file, and SQLite's own; the rules' statements
# are `taskcron.store.queries`', the line's `taskcron.store.sqlite_line`'s.

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
BEGIN_WRITE = sqlite_line.BEGIN_WRITE
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"
#: How many tasks of one module run, across the store: a lane's occupancy.
COUNT_RUNNING_IN_MODULE = (
    "SELECT count(*) AS running FROM tasks INDEXED BY tasks_running"
    " WHERE state = 'running' AND module = :module"
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

    sql = Statements(SQLITE)

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
        self.url = file_url(self.path)
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
            sqlite_line.open_file(self.path, create=create)
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
                row = db.execute(COUNT_RUNNING_IN_MODULE, {"module": module}).fetchone()
                found[module] = row["running"] < lanes.width(module)
            return found[module]

        return room

    def _heads(self, db: Any, scope: Scope) -> Iterator[tuple[str, Any, int]]:
        """Each in-scope module's oldest queued task: (module, due_at, id), by skip-scan."""
        return sqlite_line.heads(db, scope.modules, scope.excepts)

    def _insert(self, db: Any, sql: str, params: Mapping[str, Any]) -> int:
        rowid = db.execute(sql, params).lastrowid
        assert rowid is not None
        return int(rowid)

    def _insert_many(self, db: Any, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
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

    def wake_source(self) -> None:
        """None: SQLite tells no one of a write; its waiters poll."""
        return None

    def close(self) -> None:
        """Release the connection."""
        self._db.close()


if TYPE_CHECKING:
    #: mypy checks here that SqliteStore keeps every promise of `Store`.
    _CONFORMS: type[Store] = SqliteStore
