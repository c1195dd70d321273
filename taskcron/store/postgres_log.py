"""PostgresLog: the log records of every host sharing a PostgreSQL store, in its `log` table.

Imported only for a PostgreSQL store (see `taskcron.store.open_shared_log`).
Every host still appends each record to its own JSON Lines file
(`taskcron.logstore`, for `tail -F`); a copy goes to the `log` table in the
store's schema (made by the store's migrations, `taskcron.store.postgres`),
so that `taskcron log` on any host shows the runs of every host.

**Rows.** A row is one record: its time (`at`, the record's `ts`), `host`,
`level`, `event`, `task_id`, `module`, and the record as JSON text (`record`).
Records written at once that differ only in their `message` (the lines a run
printed in one read of its output) share one row: its record is the first of
them with `lines`, the list of all their messages, added. Reading gives them
back one record a line. No record of taskcron's has a `lines` field of its own.

**Notifications.** An insert notifies the channel named after the schema in
the same statement, with the ids of its rows (comma-separated) as the payload;
PostgreSQL delivers it when the insert commits, to every connection that
listens on the channel.

**Failures.** This is a copy: a write that fails raises `StoreError`, and the
caller (`lifecycle.Recorder`) keeps the record in the local file and says so
once. After a failure the table is left alone for `RETRY_AFTER` seconds, so
that a server that is gone costs a run one connection timeout, not one for
every line of its output.

The log has a connection of its own, opened on the first write: a failed
write never touches the store's transactions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from taskcron import errors
from taskcron.store import SharedLog, redact
from taskcron.store.postgres import CONNECT_TIMEOUT, _first_line, split_url

if TYPE_CHECKING:
    import psycopg

Record = dict[str, Any]

#: Seconds after a failed write during which no other write is tried.
RETRY_AFTER = 30.0
#: Rows an insert takes at most, so that their ids fit in a notification's payload.
BATCH = 200
_MISSING = object()

#: The rows, as arrays of columns (`at` as text: the record's `ts`); their notification.
INSERT = (
    "WITH added AS (INSERT INTO log (at, host, level, event, task_id, module, record)"
    " SELECT at::timestamptz, host, level, event, task_id, module, record"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::text[],"
    " %s::text[]) AS r (at, host, level, event, task_id, module, record)"
    " RETURNING id)"
    " SELECT pg_notify(%s, string_agg(id::text, ',' ORDER BY id)) FROM added"
)


class PostgresLog:
    """The `log` table of a PostgreSQL store. See the module docstring and `SharedLog`."""

    def __init__(self, url: str, *, host: str) -> None:
        """The log of the store at `url`; records without a host are `host`'s. Connects later."""
        self.url = redact(url)
        self.host = host
        self._conninfo, self.schema = split_url(url)
        self._db: psycopg.Connection[Any] | None = None
        self._resume_at = 0.0  # monotonic seconds: no write before, after a failure

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Add records in order (output lines written at once as one row), and notify."""
        if not records:
            return
        if time.monotonic() < self._resume_at:
            raise errors.StoreError(
                f"store {self.url}: the log table failed less than {RETRY_AFTER:g}s ago"
            )
        import psycopg

        rows = batched(records)
        try:
            db = self._connection()
            for start in range(0, len(rows), BATCH):
                db.execute(INSERT, self._columns(rows[start : start + BATCH]))
        except errors.StoreError:
            self._failed()
            raise
        except psycopg.Error as exc:
            self._failed()
            raise self._wrap(exc) from exc

    def _columns(self, rows: list[Record]) -> list[Any]:
        """The insert's parameters: an array for each column, then the channel."""
        values = [self._values(rec) for rec in rows]
        return [list(column) for column in zip(*values, strict=True)] + [self.schema]

    def _values(self, rec: Record) -> tuple[Any, ...]:
        task, module = rec.get("task"), rec.get("module")
        return (
            str(rec.get("ts")),
            str(rec.get("host") or self.host),
            str(rec.get("level", "info")),
            str(rec.get("event", "")),
            task if isinstance(task, int) and not isinstance(task, bool) else None,
            module if isinstance(module, str) else None,
            json.dumps(rec, default=str),
        )

    def _failed(self) -> None:
        self._resume_at = time.monotonic() + RETRY_AFTER
        self.close()  # the connection may be broken: the next write opens another

    # --- connecting ---------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._db is None:
            self._db = self._connect()
        return self._db

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            import psycopg
        except ImportError as exc:
            raise errors.StoreError(
                f"store {self.url} is a PostgreSQL database, which needs psycopg:"
                " pip install 'taskcron[postgres]'"
            ) from exc
        try:
            return psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT,
                application_name="taskcron",
                options=f"-c TimeZone=UTC -c search_path={self.schema}",
            )
        except psycopg.Error as exc:
            raise errors.StoreError(
                f"cannot connect to store {self.url}: {_first_line(exc)}"
            ) from exc

    def _wrap(self, exc: Exception) -> errors.StoreError:
        import psycopg

        if isinstance(exc, psycopg.OperationalError):
            return errors.StoreError(f"store {self.url} is unreachable: {_first_line(exc)}")
        return errors.StoreError(f"store {self.url}: {_first_line(exc)}")

    def close(self) -> None:
        """Release the connection, if one is open."""
        if self._db is not None:
            db, self._db = self._db, None
            db.close()


def batched(records: Sequence[Mapping[str, Any]]) -> list[Record]:
    """The rows `records` take, as records: consecutive records that differ only in their
    `message` share one, the first of them with `lines` (every message) added."""
    rows: list[Record] = []
    for rec in records:
        last = rows[-1] if rows else None
        if last is not None and _same_but_message(last, rec):
            last.setdefault("lines", [last["message"]]).append(rec["message"])
        else:
            rows.append(dict(rec))
    return rows


def _same_but_message(row: Record, rec: Mapping[str, Any]) -> bool:
    if not isinstance(rec.get("message"), str) or not isinstance(row.get("message"), str):
        return False
    if len(row) - ("lines" in row) != len(rec):
        return False
    return all(k in ("message", "lines") or rec.get(k, _MISSING) == v for k, v in row.items())


def unbatched(rec: Record) -> list[Record]:
    """The records one row's record holds: itself, or one a line of its `lines`."""
    lines = rec.get("lines")
    if not isinstance(lines, list):
        return [rec]
    return [
        {key: (line if key == "message" else value) for key, value in rec.items() if key != "lines"}
        for line in lines
    ]


if TYPE_CHECKING:
    #: mypy checks here that PostgresLog keeps every promise of `SharedLog`.
    _CONFORMS: type[SharedLog] = PostgresLog
