"""PostgresLog: the log records of every host sharing a PostgreSQL store, in its `log` table.

Imported only for a PostgreSQL store (see `taskcron.store.open_shared_log`). A copy
of every record each host writes to its own file, so that `taskcron log` on any host
shows the runs of every host; followed by LISTEN/NOTIFY. How rows, reading,
following and failures work: "The PostgreSQL store inside" in
docs/pages/development.md.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from taskcron import errors
from taskcron.inputs import LOG_LEVELS
from taskcron.outage import Outage, Say, delay
from taskcron.store import redact
from taskcron.store.postgres import connect, split_url
from taskcron.store.postgres_faults import first_line, lost
from taskcron.store.protocol import LogRow, RecordFilter, SharedLog
from taskcron.store.scopes import scope_where
from taskcron.store.sql_base import batched as in_lists

if TYPE_CHECKING:
    import psycopg

Record = dict[str, Any]

#: Records kept in memory while the server cannot be reached, at most: beyond, the
#: oldest go (counted, and said in the table once it answers).
BACKLOG = 10_000
#: Rows an insert takes at most, so that their ids fit in a notification's payload.
BATCH = 200
#: Rows read at a time when reading back from the end.
PAGE = 1000
#: Seconds a follower waits for a notification before it yields an empty batch.
WAIT = 1.0
#: How many ids of the rows it read a follower remembers (a late row is read once).
REMEMBER = 10_000
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
#: `{where}`: the filter's fields, as `_where` writes them.
SELECT_BEFORE = "SELECT id, record FROM log WHERE {where} ORDER BY id DESC LIMIT %s"
#: The rows after the last id a follower read, and those it was told of since.
SELECT_AFTER = (
    "SELECT id, record FROM log WHERE (id > %s OR id = ANY(%s::bigint[])) AND {where} ORDER BY id"
)
#: After a reconnection: the rows after the last id read, and those above `%s` (the
#: lowest id the follower knows all of) that it neither read nor was told of: rows
#: that committed while it was not listening.
SELECT_MISSED = (
    "SELECT id, record FROM log WHERE (id > %s OR (id > %s AND NOT id = ANY(%s::bigint[])))"
    " AND {where} ORDER BY id"
)
LAST_ID = "SELECT coalesce(max(id), 0) FROM log"
#: `{channel}`: the schema's name, a checked identifier.
LISTEN = 'LISTEN "{channel}"'
#: Counts records, not rows: a row of output lines holds several.
#: How many records a row holds: its record is one, or a batch under "lines".
ROW_RECORDS = (
    "CASE WHEN json_typeof(record::json -> 'lines') = 'array'"
    " THEN json_array_length(record::json -> 'lines') ELSE 1 END"
)
#: How many records the rows hold.
RECORDS = f"coalesce(sum({ROW_RECORDS}), 0)"
PRUNE = f"WITH gone AS (DELETE FROM log WHERE at < %s RETURNING record) SELECT {RECORDS} FROM gone"
#: What `prune --dry-run` counts: the same records.
COUNT_PRUNE = f"SELECT {RECORDS} FROM log WHERE at < %s"
#: What `count` reads: every record.
COUNT = f"SELECT {RECORDS} FROM log"
#: Every row in id order, as `LogRow` reads it (`migrate-store`).
DUMP = (
    f"SELECT at, host, level, event, task_id, module, record, {ROW_RECORDS} AS records"
    " FROM log ORDER BY id"
)


class PostgresLog:
    """The `log` table of a PostgreSQL store. See the module docstring and `SharedLog`."""

    def __init__(self, url: str, *, host: str) -> None:
        """The log of the store at `url`; records without a host are `host`'s. Connects later."""
        self.url = redact(url)
        self.host = host
        self._conninfo, self.schema = split_url(url)
        self._db: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()  # the backlog and the connection, one writer at a time
        #: Records not written yet, oldest first: kept while the server cannot be reached.
        self._backlog: deque[Record] = deque()
        self._dropped = 0  # records the full backlog let go, since the last write
        self._failures = 0  # writes failed in a row for want of the server
        self._retry_at = 0.0  # monotonic seconds: no write before, after a failure

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Add records in order (output lines written at once as one row), and notify.

        While the server cannot be reached they are kept (up to `BACKLOG`
        records, the oldest going first) and a `StoreUnreachable` says so; the
        writes are tried again with `taskcron.outage.delay` between them, and
        the kept records are written first, in order, once it answers. Any
        other failure (the table is gone) loses the records it could not
        write: they are in the host's own log.
        """
        if not records:
            return
        with self._lock:
            self._keep(records)
            if time.monotonic() < self._retry_at:
                raise errors.StoreUnreachable(f"store {self.url} is unreachable{self._kept()}")
            try:
                self._write()
            except errors.StoreUnreachable as exc:
                self._failed()
                raise errors.StoreUnreachable(f"{exc}{self._kept()}") from exc
            except errors.StoreError:
                self._backlog.clear()
                self.close()  # the connection may be broken: the next write opens another
                raise
            self._failures = 0

    def _keep(self, records: Sequence[Mapping[str, Any]]) -> None:
        self._backlog.extend(dict(rec) for rec in records)
        while len(self._backlog) > BACKLOG:
            self._backlog.popleft()
            self._dropped += 1

    def _kept(self) -> str:
        """What became of the records not written: `; 3 records kept to write ...`."""
        kept = len(self._backlog)
        said = f"; {kept} record{'s' * (kept != 1)} kept to write when it answers"
        if self._dropped:
            said += f", and the {self._dropped} before them dropped (at most {BACKLOG} are kept)"
        return said

    def _write(self) -> None:
        """Write the backlog in order, a batch of rows at a time, each batch leaving the
        backlog once written; first a record of the records dropped, if any were."""
        note = [self._dropped_record()] if self._dropped else []
        rows = batched(note + list(self._backlog))
        with self._errors():
            db = self._connection()
            for start in range(0, len(rows), BATCH):
                chunk = rows[start : start + BATCH]
                db.execute(INSERT, self._columns(chunk))
                written = sum(len(unbatched(row)) for row in chunk) - len(note)
                note, self._dropped = [], 0
                for _ in range(written):
                    self._backlog.popleft()

    def _dropped_record(self) -> Record:
        """The warning written in place of the records the full backlog let go."""
        first = self._backlog[0] if self._backlog else {}
        return {
            "ts": first.get("ts"),
            "host": self.host,
            "level": "warning",
            "event": "log.unshared",
            "task": None,
            "module": None,
            "message": f"{self._dropped} records of this host are missing here: the store"
            f" could not be reached and at most {BACKLOG} are kept to write later; they are"
            " in this host's own log",
        }

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
        self._failures += 1
        self._retry_at = time.monotonic() + delay(self._failures)
        self.close()  # the connection is broken: the next write opens another

    # --- reading ----------------------------------------------------------------

    def tail(self, count: int, *, keep: RecordFilter) -> list[Record]:
        """The last `count` records that `keep` accepts, oldest first."""
        if count <= 0:
            return []
        with self._errors():
            return self._tail(self._connection(), count, keep)[0]

    def _tail(
        self, db: psycopg.Connection[Any], count: int, keep: RecordFilter, *, upto: int = 0
    ) -> tuple[list[Record], list[int]]:
        """The last `count` records `keep` accepts (of the rows up to id `upto`, if given),
        oldest first, and the ids of the rows read."""
        where, params = _where(keep)
        if upto:
            where, params = f"{where} AND id <= %s", [*params, upto]
        found: list[Record] = []
        ids: list[int] = []
        page = max(1, min(count, PAGE))
        while len(found) < count:
            sql, args = SELECT_BEFORE.format(where=where), [*params, page]
            if ids:  # the next page: the rows before the last one read
                sql, args = (
                    SELECT_BEFORE.format(where=f"{where} AND id < %s"),
                    [*params, ids[-1], page],
                )
            rows = db.execute(sql, args).fetchall()
            for row_id, text in rows:
                ids.append(row_id)
                found += [rec for rec in reversed(_records(text)) if keep(rec)]
            if len(rows) < page:
                break
        found = found[:count]
        found.reverse()
        return found, ids

    def follow(
        self, count: int, *, keep: RecordFilter, say: Say | None = None
    ) -> Iterator[list[Record]]:
        """`tail`, then a batch of the records `keep` accepts each time rows are added (an
        empty batch after `WAIT` seconds without any). Ends only when the caller stops.

        A lost connection is opened again, with `taskcron.outage.delay` between
        tries, and the follower goes on after the last row it read: no record
        missed, none twice. `say` hears once that the store is lost and once
        that it is back. Reaching the server at first is not retried.
        """
        db = self._listening()
        try:
            with self._errors(db):
                last = int(_one(db.execute(LAST_ID).fetchone()))
                shown, read = self._tail(db, count, keep, upto=last)
            yield shown
            seen = _Seen(last, read)
            outage = Outage(say or _silent)
            while True:
                told: list[int] = []
                try:
                    if db.closed:
                        db = self._listening()
                        rows = self._missed(db, seen, keep)
                    else:
                        told, rows = self._told(db, seen, keep)
                except errors.StoreUnreachable as exc:
                    db.close()
                    time.sleep(outage.lost(exc))
                    continue
                outage.back()
                seen.add(told, [row_id for row_id, _ in rows])
                yield [rec for _, text in rows for rec in _records(text) if keep(rec)]
        finally:
            db.close()

    def _listening(self) -> psycopg.Connection[Any]:
        """A connection of its own that listens on the schema's channel."""
        db = self._connect()
        try:
            with self._errors(db):
                db.execute(LISTEN.format(channel=self.schema))
        except BaseException:
            db.close()
            raise
        return db

    def _told(
        self, db: psycopg.Connection[Any], seen: _Seen, keep: RecordFilter
    ) -> tuple[list[int], list[tuple[int, str]]]:
        """The ids the next notification names (none after `WAIT` seconds), and the rows
        `keep` may accept among them and after the last id read."""
        where, params = _where(keep)
        with self._errors(db):
            notes = db.notifies(timeout=WAIT, stop_after=1)
            told = [n for note in notes for n in _ids(note.payload)]
            if not told:
                return [], []
            args = [seen.last, seen.late(told), *params]
            return told, db.execute(SELECT_AFTER.format(where=where), args).fetchall()

    def _missed(
        self, db: psycopg.Connection[Any], seen: _Seen, keep: RecordFilter
    ) -> list[tuple[int, str]]:
        """After a reconnection, the rows `keep` may accept that came while not listening."""
        where, params = _where(keep)
        args = [seen.last, seen.known, sorted(seen.recent), *params]
        with self._errors(db):
            return db.execute(SELECT_MISSED.format(where=where), args).fetchall()

    def prune(self, *, before: datetime, dry_run: bool = False) -> int:
        """Delete the records older than `before` (by their time); how many (with
        `dry_run`, only count them)."""
        with self._errors():
            query = COUNT_PRUNE if dry_run else PRUNE
            return int(_one(self._connection().execute(query, (before,)).fetchone()))

    def count(self) -> int:
        """How many records the table holds (a row of output lines holds several)."""
        with self._errors():
            return int(_one(self._connection().execute(COUNT).fetchone()))

    # --- copying (`migrate-store`) -------------------------------------------------

    def dump(self, *, batch: int = PAGE) -> Generator[LogRow, None, None]:
        """Every row in id order, read by one statement (one snapshot) on a connection
        of its own, `batch` rows a round trip; close the iterator to end the read."""
        db = self._connect()
        try:
            with self._errors(), db.transaction(), db.cursor(name="taskcron_dump") as cursor:
                cursor.itersize = batch
                cursor.execute(DUMP)
                for row in cursor:
                    yield LogRow(*row)
        finally:
            db.close()

    def rows(self, records: Iterable[Mapping[str, Any]]) -> Generator[LogRow, None, None]:
        """`records` (oldest first) as `append` would add them (output lines written
        together share a row), `BATCH` records read at a time; a record whose `ts` is no
        ISO 8601 time is left out (a time without a zone is UTC)."""
        kept = (rec for rec in records if _time(rec.get("ts")) is not None)
        for chunk in in_lists(kept, BATCH):
            for row in batched(chunk):
                _, host, level, event, task, module, text = self._values(row)
                at = _time(row.get("ts"))
                assert at is not None, "only records with a time are kept"
                lines = row.get("lines")
                yield LogRow(
                    at=at,
                    host=host,
                    level=level,
                    event=event,
                    task_id=task,
                    module=module,
                    record=text,
                    records=len(lines) if isinstance(lines, list) else 1,
                )

    @contextmanager
    def _errors(self, db: psycopg.Connection[Any] | None = None) -> Iterator[None]:
        """psycopg's errors on `db` (else the log's connection) as `StoreError`."""
        import psycopg

        try:
            yield
        except psycopg.Error as exc:
            raise self._wrap(exc, db or self._db) from exc

    # --- connecting ---------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        """The log's connection: a new one in place of one that was lost (a restart)."""
        if self._db is not None and (self._db.closed or self._db.broken):
            self.close()
        if self._db is None:
            self._db = self._connect()
        return self._db

    def _connect(self) -> psycopg.Connection[Any]:
        return connect(self._conninfo, url=self.url, schema=self.schema)

    def _wrap(self, exc: Exception, db: psycopg.Connection[Any] | None) -> errors.StoreError:
        import psycopg

        if db is not None and lost(db, exc):
            return errors.StoreUnreachable(
                f"store {self.url} is unreachable: the connection is lost: {first_line(exc)}"
            )
        if isinstance(exc, psycopg.OperationalError):
            return errors.StoreError(f"store {self.url} is unreachable: {first_line(exc)}")
        return errors.StoreError(f"store {self.url}: {first_line(exc)}")

    def close(self) -> None:
        """Release the connection, if one is open."""
        if self._db is not None:
            db, self._db = self._db, None
            db.close()


class _Seen:
    """The rows a follower has read: every row up to `last`, but those not yet committed.

    A row whose id was told of has committed; a row below it that was not told
    of yet has not, and will be told of when it does: then it is `late`.
    """

    def __init__(self, last: int, read: Sequence[int]) -> None:
        self.last = last
        self.recent = set(read)  # the ids read or told of lately, up to REMEMBER of them
        self._first = last  # the last row when following began

    @property
    def known(self) -> int:
        """The id a reconnected follower looks back to: a row above it that is not in
        `recent` was neither read nor told of, so it committed while no one listened.
        (A row at or below it that commits during a reconnection is not seen.)"""
        return max(self._first, self.last - REMEMBER)

    def late(self, told: Sequence[int]) -> list[int]:
        """The ids told of that are not after `last` and were not read yet."""
        return [n for n in told if n <= self.last and n not in self.recent]

    def add(self, told: Sequence[int], read: Sequence[int]) -> None:
        """The ids told of, and those of the rows then read."""
        self.recent.update(told, read)
        self.last = max([self.last, *told, *read])  # both may be empty: a quiet wait
        if len(self.recent) > REMEMBER:
            self.recent = {n for n in self.recent if n > self.last - REMEMBER}


def _silent(lost: bool, message: str) -> None:
    """A `Say` that says nothing."""


def _where(keep: RecordFilter) -> tuple[str, list[Any]]:
    """A condition on the columns that every row whose records `keep` may accept meets."""
    clauses: list[str] = []
    params: list[Any] = []
    if keep.task is not None:
        clauses.append("task_id = %s")
        params.append(keep.task)
    scope = keep.scope
    if scope is not None and (scope.modules or scope.excepts):
        # Positional marks: the fragment's parameters appear in the order they are named.
        where, named = scope_where(scope.modules, scope.excepts, lambda _: "%s")
        clauses.append(where)
        params += named.values()
    if keep.level in LOG_LEVELS:
        clauses.append(_levels(LOG_LEVELS.index(keep.level)))
    if keep.since is not None:
        clauses.append("at >= %s")
        params.append(keep.since)
    return " AND ".join(clauses) or "TRUE", params


def _levels(rank: int) -> str:
    """Levels at or above `rank`: a level name taskcron does not know ranks as info.

    The names are written in the SQL (they are constants), so that the index
    of warnings and errors serves `--level warning`.
    """
    if rank == 0:
        return "TRUE"
    if rank <= LOG_LEVELS.index("info"):
        return f"level NOT IN ({_quoted(LOG_LEVELS[:rank])})"
    return f"level IN ({_quoted(LOG_LEVELS[rank:])})"


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _records(text: str) -> list[Record]:
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return unbatched(value) if isinstance(value, dict) else []


def _time(ts: Any) -> datetime | None:
    """A record's `ts` as a time (UTC when it names no zone); None when it is none."""
    try:
        at = datetime.fromisoformat(str(ts))
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


def _ids(payload: str) -> list[int]:
    """The row ids a notification's payload names (anything else on the channel: none)."""
    return [int(part) for part in payload.split(",") if part.isdigit()]


def _one(row: Any) -> Any:
    assert row is not None, "an aggregate returns one row"
    return row[0]


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
