"""PostgresStore: the task store in a PostgreSQL database, shared by several hosts.

Imported only for a `postgresql://` URL (psycopg 3, the `postgres` extra). The
rules are `SqlStore`'s; this module adds the line's advisory lock, the mapping of
the caller's clock onto the server's, the schema's migrations, and a claim and a
finish in few round trips (a server-side function; a pipeline). Why each is so:
"The PostgreSQL store inside" in docs/pages/development.md.
"""

from __future__ import annotations

import logging
import os
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from taskcron import errors
from taskcron.model import Lanes, Scope, Task
from taskcron.store import redact
from taskcron.store.postgres_claim import BELOW, HEADS, NO_BOUND
from taskcron.store.postgres_faults import first_line, lost, refused
from taskcron.store.postgres_finish import FinishCall
from taskcron.store.postgres_schema import (
    LOCK_CLASS,
    MIGRATIONS,
    SCHEMA_VERSION,
    statements,
)
from taskcron.store.protocol import (
    LogRow,
    Store,
    WakeSource,
    machine_id,
)
from taskcron.store.queries import POSTGRES, Statements
from taskcron.store.scopes import module_ranges
from taskcron.store.sql_base import batched

if TYPE_CHECKING:
    import psycopg

#: Marks a schema as taskcron's, in `store_meta`.
APPLICATION = "taskcron"
DEFAULT_SCHEMA = "taskcron"
CONNECT_TIMEOUT = 10  #: Seconds to wait for the server before giving up.
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


# --- SQL ----------------------------------------------------------------------
#
# Opening, checking and locking here; the rules' statements are
# `taskcron.store.queries`'. Values go in as `%s` parameters.

#: Whether the schema exists, and how many tables it holds.
SCHEMA_TABLES = (
    "SELECT count(c.oid) AS tables, bool_or(c.relname = 'store_meta') AS ours"
    " FROM pg_namespace n LEFT JOIN pg_class c"
    " ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
    " WHERE n.nspname = %s GROUP BY n.oid"
)
READ_META = "SELECT application, version FROM store_meta"
#: `{schema}`: a checked identifier (a schema name takes no parameter).
CREATE_SCHEMA = 'CREATE SCHEMA IF NOT EXISTS "{schema}"'
SET_VERSION = "UPDATE store_meta SET version = %s"
#: Serializes migrations: the second key is the schema's.
LOCK_MIGRATION = "SELECT pg_advisory_xact_lock(%s, %s)"
#: The line's lock, and the server's clock read under it.
LOCK_LINE = "SELECT pg_advisory_xact_lock(%s, %s) AS locked, clock_timestamp() AS now"
READ_CLOCK = "SELECT clock_timestamp() AS now"
READ_ONLY_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
SERVER_VERSION = "SHOW server_version"
#: What `integrity` looks for: each row a problem found.
INTEGRITY_CHECKS = (
    "SELECT 'running task ' || id || ' has no current run' AS problem FROM tasks"
    " WHERE state = 'running' AND (run_id IS NULL"
    " OR NOT EXISTS (SELECT 1 FROM runs WHERE runs.id = tasks.run_id"
    " AND runs.task_id = tasks.id AND runs.ended_at IS NULL))"
    " UNION ALL SELECT 'run ' || id || ' belongs to no task' FROM runs"
    " WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.id = runs.task_id)"
    " UNION ALL SELECT 'task ' || id || ' is in unknown state ' || state FROM tasks"
    " WHERE state NOT IN ('queued', 'running', 'paused', 'done', 'failed', 'cancelled')"
)


# PostgreSQL's own statements: one round trip where SQLite takes many (each of its
# statements costs no trip), and moving identity sequences.
BEGIN, COMMIT, ROLLBACK = "BEGIN", "COMMIT", "ROLLBACK"
#: psycopg's `TransactionStatus.IDLE`: no transaction open.
IDLE = 0
POSTGRES_SQL = Statements(POSTGRES)
#: The module id of every running task, across the store: the lanes' occupancy.
RUNNING_MODULES = "SELECT module FROM tasks WHERE state = 'running'"
#: Explicit ids leave an identity's sequence behind: move it to the highest task id,
#: never back (an id is never handed out twice).
ADVANCE_TASK_IDS = (
    "SELECT setval(seq, top) FROM (SELECT pg_get_serial_sequence('tasks', 'id')::regclass"
    " AS seq, (SELECT max(id) FROM tasks) AS top) AS found"
    " WHERE top > coalesce(pg_sequence_last_value(seq), 0)"
)
#: The same for the runs' ids.
ADVANCE_RUN_IDS = (
    "SELECT setval(seq, top) FROM (SELECT pg_get_serial_sequence('runs', 'id')::regclass"
    " AS seq, (SELECT max(id) FROM runs) AS top) AS found"
    " WHERE top > coalesce(pg_sequence_last_value(seq), 0)"
)

#: Rows of the shared log copied by `restore`, as arrays of columns, in their order:
#: new ids in the same order, and no notification (they are history, not news).
RESTORE_LOG = (
    "INSERT INTO log (at, host, level, event, task_id, module, record)"
    " SELECT at, host, level, event, task_id, module, record"
    " FROM unnest(%(at)s::timestamptz[], %(host)s::text[], %(level)s::text[],"
    " %(event)s::text[], %(task_id)s::bigint[], %(module)s::text[], %(record)s::text[])"
    " WITH ORDINALITY AS r (at, host, level, event, task_id, module, record, n) ORDER BY n"
)
#: The columns of RESTORE_LOG, as `LogRow` names them.
LOG_COLUMNS = ("at", "host", "level", "event", "task_id", "module", "record")


def split_url(url: str) -> tuple[str, str]:
    """The libpq connection URI and the schema a store URL names (`?schema=`).

    `postgres://` is libpq's too. A schema name must be a lower-case identifier.
    """
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks it
    except ValueError as exc:
        raise errors.StoreURLError(f"invalid store URL {redact(url)!r}: {exc}") from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    schema = schemas[-1] if schemas else DEFAULT_SCHEMA
    if not _SCHEMA_NAME.fullmatch(schema):
        raise errors.StoreURLError(
            f"invalid store URL {redact(url)!r}: schema {schema!r} must be a lower-case"
            " identifier (letters, digits, _)"
        )
    # Drop `schema=` from the query as written: rebuilding the URL would lose the
    # empty authority of `postgresql:///db?host=/socket`, which libpq needs.
    base, _, written = url.partition("?")
    kept = [p for p in written.split("&") if p and p.partition("=")[0] != "schema"]
    return base + ("?" + "&".join(kept) if kept else ""), schema


def connect(
    conninfo: str, *, url: str, schema: str, dict_rows: bool = False
) -> psycopg.Connection[Any]:
    """A connection in autocommit mode, in UTC, with `schema` on its search path;
    with `dict_rows`, rows are dicts (read by column name).

    `url` is the store's URL as shown (without its password). Without psycopg it
    is a `StoreError` naming the extra; a URL libpq cannot read is a
    `StoreURLError`, and a server it cannot reach a `StoreError`, in one line.
    """
    try:
        import psycopg
        from psycopg.rows import dict_row, tuple_row
    except ImportError as exc:
        raise errors.StoreError(
            f"store {url} is a PostgreSQL database, which needs psycopg:"
            " pip install 'taskcron[postgres]'"
        ) from exc
    try:
        return psycopg.connect(
            conninfo,
            autocommit=True,
            application_name="taskcron",
            options=f"-c TimeZone=UTC -c search_path={schema}",
            row_factory=dict_row if dict_rows else tuple_row,
            **_unset(conninfo, TIMEOUTS),
        )
    except psycopg.ProgrammingError as exc:
        # libpq could not read the URL. Its message may quote the whole URL, password
        # and all: show it redacted, and leave the original off the chain.
        why = first_line(exc).replace(conninfo, redact(conninfo))
        raise errors.StoreURLError(f"invalid store URL {url!r}: {why}") from None
    except psycopg.OperationalError as exc:
        raise errors.StoreUnreachable(f"cannot connect to store {url}: {first_line(exc)}") from exc
    except psycopg.Error as exc:
        raise errors.StoreError(f"cannot connect to store {url}: {first_line(exc)}") from exc


#: How long a call may wait on a server that went silent over TCP (a host powered
#: off, a link cut) before it fails: connecting, and sent data unacknowledged, 10 s;
#: an idle connection is probed after 5 s and dropped after 3 unanswered probes 2 s
#: apart. A URL's own values win. Over a Unix socket a stopped server fails a call at once.
TIMEOUTS: dict[str, int] = {
    "connect_timeout": CONNECT_TIMEOUT,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": CONNECT_TIMEOUT * 1000,
}


def _unset(conninfo: str, defaults: Mapping[str, int]) -> dict[str, Any]:
    """The `defaults` that the connection string does not set itself."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = conninfo_to_dict(conninfo)
    except Exception:  # psycopg.connect says what is wrong with it
        return dict(defaults)
    return {key: number for key, number in defaults.items() if key not in given}


class _PipelineLost(logging.Filter):
    """psycopg warns, on its logger, when a pipeline whose connection was lost ends; the
    store says that once already, as `StoreUnreachable`: a tick under cron stays quiet."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error ignored terminating")


logging.getLogger("psycopg").addFilter(_PipelineLost())


class PostgresStore(FinishCall):
    """The task store in a PostgreSQL schema. See the module docstring and `Store`."""

    sql = POSTGRES_SQL

    def __init__(
        self,
        url: str,
        *,
        create: bool = True,
        host: str | None = None,
        machine: str | None = None,
        clock: Literal["server", "caller"] = "server",
    ) -> None:
        """Connect to the store at `url`, creating its schema unless `create` is false.

        With `create` false a schema without taskcron's tables is
        `StoreMissingError` and nothing is created. `clock` says whose clock
        times are compared with (see the module docstring).
        """
        self.url = redact(url)
        self.host = host or os.uname().nodename
        self.machine = machine_id() if machine is None else machine
        self.migrated_from: int | None = None
        self.schema_version = SCHEMA_VERSION
        self.clock = clock
        #: The server's clock less the caller's, measured in the last transaction given `now`.
        self.skew = timedelta(0)
        self._conninfo, self.schema = split_url(url)
        key = zlib.crc32(self.schema.encode()) - 2**31
        self._lock_key = (LOCK_CLASS, key)
        #: This machine's pids found alive by the last claim (see `claim_next`).
        self._alive: set[int] = set()
        #: The tasks this store claimed, for their finish (see `FinishCall`).
        self._claimed: dict[int, tuple[Task, str]] = {}
        self._db = self._connect(self._conninfo)
        try:
            self._open(create)
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def from_url(cls, url: str, *, create: bool = True, host: str | None = None) -> PostgresStore:
        """Open the store a `postgresql://` URL names (see `taskcron.store.open_store`)."""
        return cls(url, create=create, host=host)

    # --- opening -------------------------------------------------------------

    def _connect(self, conninfo: str) -> psycopg.Connection[Any]:
        return connect(conninfo, url=self.url, schema=self.schema, dict_rows=True)

    def _open(self, create: bool) -> None:
        version = self._version()
        if version is None:
            if not create:
                raise errors.StoreMissingError(self.url)
            version = 0
        if version > SCHEMA_VERSION:
            raise errors.StoreVersionError(self.url, version, SCHEMA_VERSION)
        if version < SCHEMA_VERSION:
            self._migrate()

    def _version(self) -> int | None:
        """The schema's version; None when there is no schema or it holds no table yet.

        One statement when the schema is there (the tick's path); a schema with
        tables but no `store_meta`, or another application's, is foreign.
        """
        import psycopg

        try:
            meta = self._db.execute(READ_META).fetchall()
        except psycopg.errors.UndefinedTable:
            with self._begin() as db:
                found = db.execute(SCHEMA_TABLES, (self.schema,)).fetchone()
                if found is None or found["tables"] == 0:
                    return None
                if not found["ours"]:
                    raise errors.ForeignStoreError(f"{self.url} (schema {self.schema})") from None
                # Another host created it between the two reads.
                meta = db.execute(READ_META).fetchall()
        except psycopg.Error as exc:
            raise self._wrap(exc) from exc
        if len(meta) != 1 or meta[0]["application"] != APPLICATION:
            raise errors.ForeignStoreError(f"{self.url} (schema {self.schema})")
        return int(meta[0]["version"])

    def _migrate(self) -> None:
        """Bring the schema to SCHEMA_VERSION under an advisory lock: hosts migrate once."""
        with self._begin() as db:
            db.execute(LOCK_MIGRATION, (LOCK_CLASS - 1, self._lock_key[1]))
            db.execute(CREATE_SCHEMA.format(schema=self.schema))
            found = db.execute(SCHEMA_TABLES, (self.schema,)).fetchone()
            version = 0
            if found is not None and found["tables"]:
                if not found["ours"]:
                    raise errors.ForeignStoreError(f"{self.url} (schema {self.schema})")
                version = int(db.execute(READ_META).fetchone()["version"])
            if version > SCHEMA_VERSION:
                raise errors.StoreVersionError(self.url, version, SCHEMA_VERSION)
            for step in range(version, SCHEMA_VERSION):
                for statement in statements(MIGRATIONS[step]):
                    db.execute(statement)
            db.execute(SET_VERSION, (SCHEMA_VERSION,))
            if 0 < version < SCHEMA_VERSION:
                self.migrated_from = version

    # --- transactions -----------------------------------------------------------

    def _wrap(self, exc: Exception) -> errors.TaskcronError:
        import psycopg

        if lost(self._db, exc):
            return errors.StoreUnreachable(
                f"store {self.url} is unreachable: the connection is lost: {first_line(exc)}"
            )
        if isinstance(exc, psycopg.errors.DataError | psycopg.errors.ProgramLimitExceeded):
            return errors.DataError(f"too large or malformed for the store: {first_line(exc)}")
        if isinstance(exc, psycopg.errors.DiskFull):
            return errors.StoreError(f"store {self.url}: disk full: {first_line(exc)}")
        if isinstance(exc, psycopg.OperationalError):
            return errors.StoreError(f"store {self.url} is unreachable: {first_line(exc)}")
        return errors.StoreError(f"store {self.url}: {first_line(exc)}")

    @contextmanager
    def _begin(
        self, *, lock: bool = False, now: datetime | None = None, read: bool = False
    ) -> Iterator[Any]:
        """A transaction; `read`: read-only on one snapshot; `lock`: under the line's lock.

        Given the caller's `now`, it measures the skew against the server's clock.
        A connection found lost when the transaction begins (the server restarted
        since the last one) is replaced at once, as nothing has run on it yet.
        """
        import psycopg

        db: Any = self._db
        if db.closed or db.broken:
            db = self._reconnect()
        try:
            with ExitStack() as stack:
                try:
                    stack.enter_context(db.transaction())
                except psycopg.OperationalError as exc:
                    if not lost(db, exc):
                        raise
                    db = self._reconnect()
                    stack.enter_context(db.transaction())
                if read:
                    db.execute(READ_ONLY_SNAPSHOT)
                if lock:
                    server = db.execute(LOCK_LINE, self._lock_key).fetchone()["now"]
                elif now is not None and self.clock == "server":
                    server = db.execute(READ_CLOCK).fetchone()["now"]
                if now is not None:
                    self.skew = server - now if self.clock == "server" else timedelta(0)
                yield db
        except psycopg.Error as exc:
            raise self._wrap(exc) from exc

    @contextmanager
    def _pipelined(self) -> Iterator[Any]:
        """A write transaction in psycopg's pipeline mode: statements go out together until
        a result is read, BEGIN with the first of them and COMMIT with the last, so that
        neither costs a trip of its own (psycopg's `transaction()` waits for each).

        A connection found lost before it begins is replaced; an error rolls it back.
        """
        import psycopg

        db: Any = self._db
        if db.closed or db.broken:
            db = self._reconnect()
        try:
            try:
                with db.pipeline():
                    db.execute(BEGIN)
                    yield db
                    db.execute(COMMIT)
            except BaseException:
                if not (db.closed or db.broken) and db.info.transaction_status != IDLE:
                    db.execute(ROLLBACK)
                raise
        except psycopg.Error as exc:
            raise self._wrap(exc) from exc

    def _reconnect(self) -> Any:
        """A new connection in place of a lost one (`StoreUnreachable` while the server
        is away): the next transaction after a restart or a failover just works."""
        self._db.close()
        self._db = self._connect(self._conninfo)
        return self._db

    def _transaction(
        self, *, now: datetime | None = None, lock: bool = False
    ) -> AbstractContextManager[Any]:
        """A write transaction; with `lock`, under the line's lock (see the module docstring)."""
        return self._begin(lock=lock, now=now)

    def _read(self, *, now: datetime | None = None) -> AbstractContextManager[Any]:
        """A read-only transaction on one snapshot."""
        return self._begin(now=now, read=True)

    def _insert(self, db: Any, sql: str, params: Mapping[str, Any]) -> int:
        return int(db.execute(sql, params).fetchone()["id"])

    def _insert_many(self, db: Any, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        with db.cursor() as cursor:
            cursor.executemany(sql, rows)  # pipelined: one round trip a batch, not a row

    def _advance_ids(self, db: Any) -> None:
        """Move the identity sequences past the highest ids written (see ADVANCE_TASK_IDS)."""
        db.execute(ADVANCE_TASK_IDS)
        db.execute(ADVANCE_RUN_IDS)

    def _restore_log(self, db: Any, rows: Iterable[LogRow], batch: int) -> None:
        """Write `rows` into the `log` table in order, one statement `batch` rows at a time."""
        for chunk in batched(rows, batch):
            values = [tuple(getattr(row, name) for name in LOG_COLUMNS) for row in chunk]
            columns = zip(*values, strict=True)
            db.execute(RESTORE_LOG, dict(zip(LOG_COLUMNS, map(list, columns), strict=True)))

    def _encode_time(self, moment: datetime) -> datetime:
        return moment + self.skew

    def _decode_time(self, value: datetime) -> datetime:
        return value.astimezone(timezone.utc) - self.skew

    def _call(self, statement: str, params: Mapping[str, Any]) -> Any:
        """The one row of one statement run in autocommit (its own transaction).

        A connection found lost before the call is replaced. One lost during the call
        is an error, as a commit lost in flight is: whether the server ran it is unknown,
        unless it said it was going away (then it ran nothing) and the call is made once
        more on a new connection.
        """
        import psycopg

        db: Any = self._db
        if db.closed or db.broken:
            db = self._reconnect()
        try:
            try:
                return db.execute(statement, params).fetchone()
            except psycopg.OperationalError as exc:
                if not (lost(db, exc) and refused(exc)):
                    raise
            return self._reconnect().execute(statement, params).fetchone()
        except psycopg.Error as exc:
            raise self._wrap(exc) from exc

    def _heads(self, db: Any, scope: Scope) -> Iterator[tuple[str, Any, int]]:
        """Each in-scope module's oldest queued task, one query a range of module ids.

        Excluded subtrees are walked and dropped here: the walk costs a probe a
        module id with queued tasks, as the Store contract allows.
        """
        for low, high in module_ranges(scope.modules):
            below = NO_BOUND if high is None else BELOW
            rows = db.execute(HEADS.format(below=below), {"low": low, "high": high})
            for row in rows:
                if row["module"] in scope:
                    yield row["module"], row["due_at"], row["id"]

    def _lane_room(self, db: Any, lanes: Lanes) -> Callable[[str], bool]:
        """Whether a module's lane has room, from one read of the running tasks' module ids."""
        running = Counter(row["module"] for row in db.execute(RUNNING_MODULES))
        return lambda module: running[module] < lanes.width(module)

    # --- checking ----------------------------------------------------------------

    def integrity(self) -> list[str]:
        """Problems a consistency check of the tables finds; none when they are sound."""
        with self._read() as db:
            return [row["problem"] for row in db.execute(INTEGRITY_CHECKS)]

    def about(self) -> str:
        """The server's version and the round trip of a trivial query."""
        with self._read() as db:
            version = db.execute(SERVER_VERSION).fetchone()["server_version"]
            started = time.perf_counter()
            db.execute(READ_CLOCK).fetchone()
            latency = time.perf_counter() - started
        return f"PostgreSQL {version.split()[0]}, round trip {latency * 1000:.2f} ms"

    def wake_source(self) -> WakeSource:
        """A connection of its own listening on the tasks' channel (see `_WAKE`)."""
        from taskcron.store.postgres_wake import PostgresWake

        return PostgresWake(self._conninfo, url=self.url, schema=self.schema)

    def close(self) -> None:
        """Release the connection."""
        self._db.close()


if TYPE_CHECKING:
    #: mypy checks here that PostgresStore keeps every promise of `Store`.
    _CONFORMS: type[Store] = PostgresStore


def resolve_url(url: str, base: object) -> str:
    """A PostgreSQL store URL as written, once `split_url` reads it (see
    `taskcron.store.resolve_url`); `base` is for relative paths, which it has none of."""
    split_url(url)
    return url
