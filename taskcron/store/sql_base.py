"""The base of `SqlStore`: what a backend supplies, and rows to records and back.

A backend (`SqliteStore`, `PostgresStore`) supplies only what differs between
engines:

- `sql`: the statements of `taskcron.store.queries`, rendered in its dialect;
- `_transaction(now=, lock=)` and `_read()`: its transactions. A write
  transaction with `lock` is serialized with every other locked one (SQLite's
  write lock; a PostgreSQL advisory lock); `now` is the caller's clock, which
  a backend may map onto its own (see `_encode_time`);
- `_insert`: run an INSERT and return the new row's id;
- `_heads` and `_lane_room`: the heads of the line and the lanes' room, each
  in as few round trips as the engine allows;
- `_insert_many`: run an INSERT once for each of many rows (`restore`);
- `_advance_ids`: make the ids handed out next follow the highest stored
  (`restore` writes ids of its own);
- `_restore_log`: write rows into the store's shared log (`restore`), if it
  keeps one;
- `_encode_time` / `_decode_time`: a datetime as the store keeps it, and back.

Rows are read by column name, and a connection needs only `execute`
returning a cursor with `fetchone`, `fetchall`, iteration and `rowcount`,
which `sqlite3` and psycopg 3 both offer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from taskcron import errors
from taskcron.model import (
    Lanes,
    Next,
    Outcome,
    Progress,
    Recurrence,
    Run,
    Scope,
    State,
    Target,
    Task,
)
from taskcron.store.protocol import (
    LogRow,
    PoolLease,
)
from taskcron.store.queries import Statements
from taskcron.store.scopes import scope_where
from taskcron.values import replace

if TYPE_CHECKING:
    from typing_extensions import Self  # typing's own from Python 3.11 on

T = TypeVar("T")
Row = Any  #: A row whose columns are read by name (`sqlite3.Row`, a psycopg dict row).


class Cursor(Protocol):
    """What a statement answers: rows by name, and how many rows it changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Row: ...

    def fetchall(self) -> Sequence[Row]: ...

    def __iter__(self) -> Iterator[Row]: ...


class Connection(Protocol):
    """What the rules need of a connection (`sqlite3` and psycopg 3 both have it)."""

    def execute(self, sql: Any, params: Any = ..., /) -> Cursor: ...


#: How many tasks `dump` reads, and `restore` writes, at a time.
DUMP_BATCH = 500


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last one shorter), read as they are needed."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def seconds(span: timedelta | None) -> float | None:
    """A duration as the stores keep it: seconds, or None."""
    return None if span is None else span.total_seconds()


def job_over(outcome: Outcome, where: Next | tuple[State, datetime]) -> bool:
    """Whether a run ended its job: done, failed for good, or a recurring task's
    attempts spent (it starts afresh at its next time)."""
    return (
        outcome is Outcome.DONE
        or where[0] is not State.QUEUED
        or (len(where) > 2 and bool(where[2]))
    )


class SqlBase:
    """What every part of `SqlStore` stands on: the backend's hooks, rows decoded into
    records (and records into rows for `restore`), and a task loaded by id."""

    sql: ClassVar[Statements]
    #: This host's name, as leases and pools name it.
    host: str
    #: This machine's identity: the same-host fast path needs both to match.
    machine: str
    #: Where the store is, without any password.
    url: str

    # --- what a backend supplies --------------------------------------------

    def _transaction(
        self, *, now: datetime | None = None, lock: bool = False
    ) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self, *, now: datetime | None = None) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _insert(self, db: Connection, sql: str, params: Mapping[str, Any]) -> int:
        raise NotImplementedError

    def _insert_many(self, db: Connection, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        raise NotImplementedError

    def _advance_ids(self, db: Connection) -> None:
        raise NotImplementedError

    def _restore_log(self, db: Connection, rows: Iterable[LogRow], batch: int) -> None:
        """Write `rows` into the store's shared log, `batch` at a time, in order; a store
        that keeps none (this default) refuses any row."""
        for _ in rows:
            raise errors.StoreError(
                f"store {self.url} keeps no log table: its log is in each home's log files"
            )

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _encode_time(self, moment: datetime) -> Any:
        raise NotImplementedError

    def _decode_time(self, value: Any) -> datetime:
        raise NotImplementedError

    def _heads(self, db: Connection, scope: Scope) -> Iterator[tuple[str, Any, int]]:
        """Each in-scope module's oldest queued task, (module, due_at as kept, id).

        The heads of the line, found without a scan: SQLite probes its index
        module by module (a statement costs no round trip there); PostgreSQL
        walks the same index in one recursive query.
        """
        raise NotImplementedError

    def _lane_room(self, db: Connection, lanes: Lanes) -> Callable[[str], bool]:
        """Whether a module's lane has room: fewer of its tasks run, store-wide, than
        its width. Read once a claim: skipping late tasks frees no lane."""
        raise NotImplementedError

    # --- rows ----------------------------------------------------------------

    def _task(self, row: Row, runs: tuple[Run, ...] = ()) -> Task:
        """A task from a row of the backend's task columns."""
        schedule, timeout, lateness = row["schedule"], row["timeout"], row["max_lateness"]
        progress, last = row["progress"], row["last_outcome"]
        missed_after = row["missed_after"]
        return Task(
            id=row["id"],
            module=row["module"],
            title=row["title"],
            target=Target.from_json(json.loads(row["target"])),
            data_json=row["data"],
            priority=row["priority"],
            state=State(row["state"]),
            due_at=self._decode_time(row["due_at"]),
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            timeout=None if timeout is None else timedelta(seconds=timeout),
            created_at=self._decode_time(row["created_at"]),
            updated_at=self._decode_time(row["updated_at"]),
            result_json=row["result"],
            recurrence=None if schedule is None else Recurrence.from_json(json.loads(schedule)),
            max_lateness=None if lateness is None else timedelta(seconds=lateness),
            key=row["key"],
            owner=row["owner"],
            progress=None if progress is None else Progress.from_json(json.loads(progress)),
            steps=row["steps"],
            step_state_json=row["step_state"],
            last_outcome=None if last is None else Outcome(last),
            keep_runs=row["keep_runs"],
            runs=runs,
            missed_after=None if missed_after is None else timedelta(seconds=missed_after),
            failing_since=self._decode_optional(row["failing_since"]),
            missed_since=self._decode_optional(row["missed_since"]),
            alerted_json=row["alerted"],
        )

    def _decode_optional(self, value: Any) -> datetime | None:
        """A time the store may hold, or None."""
        return None if value is None else self._decode_time(value)

    def _run(self, row: Row) -> Run:
        """A run from a row of the backend's run columns."""
        ended_at, outcome = row["ended_at"], row["outcome"]
        return Run(
            id=row["id"],
            task_id=row["task_id"],
            attempt=row["attempt"],
            started_at=self._decode_time(row["started_at"]),
            ended_at=None if ended_at is None else self._decode_time(ended_at),
            elapsed=row["elapsed"],
            outcome=None if outcome is None else Outcome(outcome),
            exit_code=row["exit_code"],
            error=row["error"],
            traceback=row["traceback"],
            output_tail=row["output_tail"],
            truncated=bool(row["truncated"]),
            host=row["host"],
            machine=row["machine"] or "",
            pid=row["pid"],
            child_pid=row["child_pid"],
            child_start=row["child_start"],
        )

    def _pool(self, row: Row) -> PoolLease:
        """A pool from a row of SELECT_LIVE_POOLS."""
        return PoolLease(
            id=row["id"],
            host=row["host"],
            machine=row["machine"] or "",
            pid=row["pid"],
            scope=Scope.from_json(json.loads(row["scope"])),
            expires_at=self._decode_time(row["expires_at"]),
        )

    def _scope_sql(self, scope: Scope) -> tuple[str, dict[str, Any]]:
        """The WHERE fragment on `module` for a scope, and its parameters by name."""
        return scope_where(scope.modules, scope.excepts, self.sql.mark)

    def _same_machine(self, host: str | None, machine: str | None) -> bool:
        """Whether a lease was taken on this machine: the host and the machine id match.

        A lease written before machine ids were recorded names none: its host decides.
        """
        return host == self.host and (not machine or machine == self.machine)

    def _load(
        self, db: Connection, task_id: int, *, runs: bool | int = True, lock: bool = False
    ) -> Task:
        """A task by id with its runs, oldest first: all of them (True), none (False), or
        its newest `runs` (an int: read backwards along runs_task, never the whole history).
        Unless `runs` is False, with its runs counted by outcome (`Task.outcomes`)."""
        select = self.sql.SELECT_TASK_FOR_UPDATE if lock else self.sql.SELECT_TASK
        row = db.execute(select, {"id": task_id}).fetchone()
        if row is None:
            raise errors.TaskNotFoundError(task_id)
        task = self._task(row, self._runs_of(db, task_id, runs))
        if runs is False:
            return task
        counted = db.execute(self.sql.SELECT_TASK_OUTCOMES, {"task_id": task_id})
        return replace(task, outcomes=tuple((r["outcome"], int(r["runs"])) for r in counted))

    def _runs_of(self, db: Connection, task_id: int, runs: bool | int) -> tuple[Run, ...]:
        """A task's runs, oldest first: all (True), none (False), or the newest `runs`."""
        if runs is False or (runs is not True and runs <= 0):
            return ()
        if runs is True:
            rows = db.execute(self.sql.SELECT_TASK_RUNS, {"task_id": task_id})
            return tuple(self._run(r) for r in rows)
        newest = db.execute(self.sql.SELECT_LAST_RUNS, {"task_id": task_id, "count": runs})
        return tuple(reversed([self._run(r) for r in newest]))

    def _load_run(self, db: Connection, run_id: int) -> Run:
        return self._run(db.execute(self.sql.SELECT_RUN, {"id": run_id}).fetchone())

    def _task_row(self, task: Task) -> dict[str, Any]:
        """A task's values for RESTORE_TASK, by column: the inverse of `_task`."""
        enc = self._encode_time
        return {
            "id": task.id,
            "module": task.module,
            "title": task.title,
            "target": json.dumps(task.target.to_json()),
            "data": task.data_json,
            "priority": task.priority,
            "state": task.state.value,
            "due_at": enc(task.due_at),
            "attempts": task.attempts,
            "max_attempts": task.max_attempts,
            "timeout": None if task.timeout is None else task.timeout.total_seconds(),
            "created_at": enc(task.created_at),
            "updated_at": enc(task.updated_at),
            "result": task.result_json,
            "schedule": (
                None if task.recurrence is None else json.dumps(task.recurrence.to_json())
            ),
            "max_lateness": (
                None if task.max_lateness is None else task.max_lateness.total_seconds()
            ),
            "key": task.key,
            "owner": task.owner,
            "progress": None if task.progress is None else json.dumps(task.progress.to_json()),
            "steps": task.steps,
            "step_state": task.step_state_json,
            "keep_runs": task.keep_runs,
            "missed_after": seconds(task.missed_after),
            "failing_since": None if task.failing_since is None else enc(task.failing_since),
            "missed_since": None if task.missed_since is None else enc(task.missed_since),
            "alerted": task.alerted_json,
        }

    def _run_row(self, run: Run) -> dict[str, Any]:
        """A run's values for RESTORE_RUN, by column: the inverse of `_run`."""
        return {
            "id": run.id,
            "task_id": run.task_id,
            "attempt": run.attempt,
            "started_at": self._encode_time(run.started_at),
            "ended_at": None if run.ended_at is None else self._encode_time(run.ended_at),
            "elapsed": run.elapsed,
            "outcome": None if run.outcome is None else run.outcome.value,
            "exit_code": run.exit_code,
            "error": run.error,
            "traceback": run.traceback,
            "output_tail": run.output_tail,
            "truncated": run.truncated,
            "host": run.host,
            "machine": run.machine,
            "pid": run.pid,
            "child_pid": run.child_pid,
            "child_start": run.child_start,
        }
