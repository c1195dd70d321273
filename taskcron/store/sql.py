"""SqlStore: the store's rules written once over SQL, for every SQL backend.

The order rule's skip-scan, recovery of dead runs, fenced finishes, lanes,
pools and the status reads are one algorithm whatever the engine. A backend
(`SqliteStore`, `PostgresStore`) supplies only what differs:

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
- `_encode_time` / `_decode_time`: a datetime as the store keeps it, and back.

Rows are read by column name, and a connection needs only `execute`
returning a cursor with `fetchone`, `fetchall`, iteration and `rowcount`,
which `sqlite3` and psycopg 3 both offer.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

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
)
from taskcron.store.protocol import (
    Claim,
    ClaimOutcome,
    Decide,
    Lease,
    NewTask,
    PoolLease,
    PruneCount,
    Recovered,
    Skip,
    Tasks,
)
from taskcron.store.queries import Statements
from taskcron.store.scopes import module_ranges, scope_where

if TYPE_CHECKING:
    from typing_extensions import Self  # typing's own from Python 3.11 on

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


def batched(items: Iterable[Task], size: int) -> Iterator[list[Task]]:
    """`items` in lists of `size` (the last one shorter), read as they are needed."""
    chunk: list[Task] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def job_over(outcome: Outcome, where: Next | tuple[State, datetime]) -> bool:
    """Whether a run ended its job: done, failed for good, or a recurring task's
    attempts spent (it starts afresh at its next time)."""
    return (
        outcome is Outcome.DONE
        or where[0] is not State.QUEUED
        or (len(where) > 2 and bool(where[2]))
    )


class SqlStore:
    """The `Store` contract over SQL; a backend subclasses it (see the module docstring)."""

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
            runs=runs,
        )

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

    # --- reading -------------------------------------------------------------

    def _load(self, db: Connection, task_id: int, *, runs: bool = True, lock: bool = False) -> Task:
        select = self.sql.SELECT_TASK_FOR_UPDATE if lock else self.sql.SELECT_TASK
        row = db.execute(select, {"id": task_id}).fetchone()
        if row is None:
            raise errors.TaskNotFoundError(task_id)
        loaded: tuple[Run, ...] = ()
        if runs:
            loaded = tuple(
                self._run(r) for r in db.execute(self.sql.SELECT_TASK_RUNS, {"task_id": task_id})
            )
        return self._task(row, loaded)

    def _load_run(self, db: Connection, run_id: int) -> Run:
        return self._run(db.execute(self.sql.SELECT_RUN, {"id": run_id}).fetchone())

    def get(self, task_id: int) -> Task:
        """The task with its runs, or `TaskNotFoundError`."""
        with self._read() as db:
            return self._load(db, task_id)

    def get_run(self, run_id: int) -> Run:
        """One run by id (for the runner's bookkeeping and tests)."""
        with self._read() as db:
            row = db.execute(self.sql.SELECT_RUN, {"id": run_id}).fetchone()
        if row is None:
            raise errors.StoreError(f"no run with id {run_id}")
        return self._run(row)

    def list(
        self, *, scope: Scope, states: Iterable[State], owner: str | None = None
    ) -> list[Task]:
        """Tasks in scope, in one of `states` (and of `owner`, if given), in line order."""
        wanted = [State(s).value for s in states]
        if not wanted:
            return []
        sql = self.sql
        where, params = self._scope_sql(scope)
        whose = sql.ANY_OWNER if owner is None else sql.OWNER_IS
        named = {f"state{n}": state for n, state in enumerate(wanted)}
        marks = ", ".join(sql.mark(name) for name in named)
        statement = sql.LIST_TASKS.format(states=marks, scope=where, owner=whose)
        with self._read() as db:
            rows = db.execute(statement, {**named, **params, "owner": owner})
            return [self._task(row) for row in rows]

    def page(
        self,
        *,
        scope: Scope,
        states: Iterable[State],
        owner: str | None = None,
        limit: int,
        offset: int = 0,
    ) -> Tasks:
        """Up to `limit` tasks of `list`'s answer, from the `offset`-th on, without their runs.

        Each state's line positions (due time, id) are read along its index and
        merged, so a page costs its offset plus its length in each state, never
        the store; then only the page's own tasks are read and decoded.
        """
        wanted = sorted({State(s).value for s in states})
        if limit <= 0 or not wanted:
            return []
        sql = self.sql
        where, params = self._scope_sql(scope)
        rows = offset + limit
        keys: list[tuple[Any, int]] = []
        with self._read() as db:
            for state in wanted:
                statement = sql.PAGE_KEYS if owner is None else sql.PAGE_OWNED_KEYS
                args = {**params, "state": state, "rows": rows, "owner": owner}
                keys += [
                    (row["due_at"], row["id"])
                    for row in db.execute(statement.format(scope=where), args)
                ]
            ids = [task_id for _, task_id in sorted(keys)[offset : offset + limit]]
            if not ids:
                return []
            named = {f"id{n}": task_id for n, task_id in enumerate(ids)}
            marks = ", ".join(sql.mark(name) for name in named)
            by_id = {
                row["id"]: self._task(row)
                for row in db.execute(sql.SELECT_TASKS.format(ids=marks), named)
            }
        return [by_id[task_id] for task_id in ids]

    # --- writing -------------------------------------------------------------

    def schedule(self, new: NewTask, *, now: datetime) -> Task:
        """Add a queued task and return it; with a key, the one already waiting if any."""
        return self.schedule_or_find(new, now=now)[0]

    def schedule_or_find(self, new: NewTask, *, now: datetime) -> tuple[Task, bool]:
        """`schedule`, saying whether the task returned was there already (True) rather
        than added: with a key, a queued, running or paused task of the same module id
        and key is returned unchanged."""
        enc = self._encode_time
        with self._transaction(now=now, lock=new.key is not None) as db:
            if new.key is not None:
                keyed = {"module": new.module, "key": new.key}
                row = db.execute(self.sql.SELECT_KEYED_TASK, keyed).fetchone()
                if row is not None:
                    return self._load(db, row["id"]), True
            task_id = self._insert(
                db,
                self.sql.INSERT_TASK,
                {
                    "module": new.module,
                    "title": new.title,
                    "target": json.dumps(new.target.to_json()),
                    "data": new.data_json,
                    "priority": new.priority,
                    "due_at": enc(new.due_at),
                    "max_attempts": new.max_attempts,
                    "timeout": None if new.timeout is None else new.timeout.total_seconds(),
                    "created_at": enc(now),
                    "updated_at": enc(now),
                    "schedule": (
                        None if new.recurrence is None else json.dumps(new.recurrence.to_json())
                    ),
                    "max_lateness": (
                        None if new.max_lateness is None else new.max_lateness.total_seconds()
                    ),
                    "key": new.key,
                    "owner": new.owner,
                },
            )
            return self._load(db, task_id), False

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
        sooner_only: bool = False,
    ) -> Task:
        """Move a task from one of `allowed` to `to`, or raise `StateError` naming `action`."""
        with self._transaction(now=now, lock=True) as db:
            task = self._load(db, task_id, runs=False, lock=True)
            if task.state not in set(allowed):
                raise errors.StateError(task_id, task.state.value, action)
            attempts = 0 if reset_attempts else task.attempts
            due = task.due_at if due_at is None else due_at
            if sooner_only:
                due = min(due, task.due_at)
            db.execute(
                self.sql.SET_TASK_STATE,
                {
                    "state": to.value,
                    "attempts": attempts,
                    "due_at": self._encode_time(due),
                    "updated_at": self._encode_time(now),
                    "id": task_id,
                },
            )
            return self._load(db, task_id)

    def cancel_owned(self, owner: str, *, now: datetime) -> Tasks:
        """Cancel every queued or paused task of `owner` in one transaction.

        Return them as they were left, in line order (without their runs, as
        `list` gives them). Running and finished tasks are left alone.
        """
        with self._transaction(now=now, lock=True) as db:
            ids = [row["id"] for row in db.execute(self.sql.SELECT_OWNED_WAITING, {"owner": owner})]
            db.execute(
                self.sql.CANCEL_OWNED, {"updated_at": self._encode_time(now), "owner": owner}
            )
            cancelled = [self._load(db, task_id, runs=False) for task_id in ids]
        return sorted(cancelled, key=lambda task: (task.due_at, task.id))

    def remove(self, task_id: int) -> Task:
        """Delete a task that is not running, with its runs; return it as it was."""
        with self._transaction(lock=True) as db:
            task = self._load(db, task_id, lock=True)
            if task.state is State.RUNNING:
                raise errors.StateError(task_id, task.state.value, "remove")
            db.execute(self.sql.DELETE_TASK_RUNS, {"task_id": task_id})
            db.execute(self.sql.DELETE_TASK, {"id": task_id})
            return task

    def prune(self, *, before: datetime, dry_run: bool = False) -> PruneCount:
        """Delete finished (done, failed, cancelled) tasks last updated before `before`,
        with their runs, and count them; with `dry_run`, only count them."""
        cutoff = {"before": self._encode_time(before)}
        if dry_run:
            with self._read() as db:
                return PruneCount(
                    tasks=int(db.execute(self.sql.COUNT_PRUNE_TASKS, cutoff).fetchone()["n"]),
                    runs=int(db.execute(self.sql.COUNT_PRUNE_RUNS, cutoff).fetchone()["n"]),
                )
        with self._transaction(lock=True) as db:
            runs = int(db.execute(self.sql.PRUNE_RUNS, cutoff).rowcount)
            return PruneCount(
                tasks=int(db.execute(self.sql.PRUNE_TASKS, cutoff).rowcount), runs=runs
            )

    # --- claiming ------------------------------------------------------------

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
        with self._transaction(now=now, lock=True) as db:
            recovered = tuple(self._expire(db, scope, now, decide))
            if lanes is None:
                where, params = self._scope_sql(scope)
                running = db.execute(self.sql.SELECT_RUNNING.format(scope=where), params).fetchone()
                if running is not None:
                    return Claim(
                        outcome=ClaimOutcome.BUSY,
                        task=self._load(db, running["id"], runs=False),
                        recovered=recovered,
                    )
            room = None if lanes is None else self._lane_room(db, lanes)
            skipped: list[Task] = []
            while True:
                chosen = self._pick(db, scope, now, room)
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

    def _take(self, db: Connection, task: Task, lease: Lease, now: datetime) -> Task:
        """Open a run of `task` and mark it running under `lease`; the task as left."""
        attempt = task.attempts + 1
        started = self._encode_time(now)
        run_id = self._insert(
            db,
            self.sql.INSERT_RUN,
            {
                "task_id": task.id,
                "attempt": attempt,
                "started_at": started,
                "host": lease.host,
                "machine": lease.machine,
                "pid": lease.pid,
            },
        )
        db.execute(
            self.sql.CLAIM_TASK,
            {
                "attempts": attempt,
                "updated_at": started,
                "run_id": run_id,
                "lease_host": lease.host,
                "lease_machine": lease.machine,
                "lease_pid": lease.pid,
                "lease_expires_at": self._encode_time(lease.expires_at),
                "id": task.id,
            },
        )
        return self._load(db, task.id)

    def _pick(
        self,
        db: Connection,
        scope: Scope,
        now: datetime,
        room: Callable[[str], bool] | None = None,
    ) -> int | None:
        """The id of the task the order rule runs next, or None (see taskcron.order).

        With `room`, only modules it admits stand in the line. Due times are
        compared as the store keeps them.
        """
        sql, now_kept = self.sql, self._encode_time(now)
        heads = sorted(
            (due, tid, module)
            for module, due, tid in self._heads(db, scope)
            if due <= now_kept and (room is None or room(module))
        )
        if not heads:
            return None
        module = heads[0][2]
        # Candidates must stand before every other module's oldest due task.
        bound: tuple[Any, int] | None = (heads[1][0], heads[1][1]) if len(heads) > 1 else None
        priority: int | None = None
        while True:
            at_priority = {"module": module, "priority": priority}
            if priority is None:
                row = db.execute(sql.MODULE_TOP_PRIORITY, {"module": module}).fetchone()
            else:
                row = db.execute(sql.MODULE_PRIORITY_BELOW, at_priority).fetchone()
            if row is None:
                return None  # unreachable: the module's head qualifies at its own priority
            priority = row["priority"]
            at_priority["priority"] = priority
            oldest = db.execute(sql.OLDEST_AT_PRIORITY, at_priority).fetchone()
            if oldest["due_at"] <= now_kept and (
                bound is None or (oldest["due_at"], oldest["id"]) < bound
            ):
                return int(oldest["id"])

    def _expire(
        self, db: Connection, scope: Scope, now: datetime, decide: Decide
    ) -> Iterator[Recovered]:
        """Record the dead runs in scope as interrupted and move their tasks; yield them.

        A run is dead when its lease expired, or when it runs on this machine
        and its pid is gone. Each candidate is read again under a row lock, so
        that a finish committed meanwhile wins.
        """
        where, params = self._scope_sql(scope)
        rows = db.execute(self.sql.SELECT_RUNNING_LEASES.format(scope=where), params).fetchall()
        now_kept = self._encode_time(now)
        for candidate in rows:
            if not self._dead(candidate, now_kept):
                continue
            row = db.execute(
                self.sql.LOCK_RUNNING_LEASE, {"id": candidate["id"], "run_id": candidate["run_id"]}
            ).fetchone()
            if row is None or not self._dead(row, now_kept):
                continue
            task_id, run_id, host, pid = (
                row["id"],
                row["run_id"],
                row["lease_host"],
                row["lease_pid"],
            )
            expired = row["lease_expires_at"] is None or row["lease_expires_at"] <= now_kept
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

    def _dead(self, row: Row, now_kept: Any) -> bool:
        """Whether a running task's lease expired, or its pid on this machine is gone."""
        expires_at, pid = row["lease_expires_at"], row["lease_pid"]
        if expires_at is None or expires_at <= now_kept:
            return True
        return (
            self._same_machine(row["lease_host"], row["lease_machine"])
            and pid is not None
            and not pid_alive(pid)
        )

    def _end(
        self, db: Connection, task_id: int, run_id: int | None, end: RunEnd, decide: Decide
    ) -> Task:
        sql = self.sql
        if run_id is not None:
            db.execute(
                sql.END_RUN,
                {
                    "ended_at": self._encode_time(end.ended_at),
                    "elapsed": end.elapsed,
                    "outcome": end.outcome.value,
                    "exit_code": end.exit_code,
                    "error": end.error,
                    "traceback": end.traceback,
                    "output_tail": end.output_tail,
                    "truncated": bool(end.truncated),
                    "id": run_id,
                },
            )
        task = self._load(db, task_id, runs=False)  # where it goes next needs no runs
        if end.outcome is Outcome.DONE:
            db.execute(sql.SET_RESULT, {"result": end.result_json, "id": task_id})
        if end.progress is not None:
            progress = json.dumps(end.progress.to_json())
            db.execute(sql.SET_PROGRESS, {"progress": progress, "id": task_id})
        where = decide(task, end.outcome, end.ended_at)
        if end.outcome is Outcome.CONTINUED:
            db.execute(sql.SAVE_STEP, {"step_state": end.state_json, "id": task_id})
            resume = end.ended_at if end.resume_at is None else max(end.resume_at, end.ended_at)
            where = Next(State.QUEUED, resume)
        elif job_over(end.outcome, where):
            db.execute(sql.CLEAR_STEPS, {"id": task_id})
        return self._move(db, task, where, end.ended_at)

    def _move(
        self, db: Connection, task: Task, where: Next | tuple[State, datetime], now: datetime
    ) -> Task:
        """Put a task where a policy said (state, due time, attempts reset?); drop its lease."""
        state, due_at = where[0], where[1]
        reset = len(where) > 2 and bool(where[2])
        db.execute(
            self.sql.MOVE_TASK,
            {
                "state": state.value,
                "due_at": self._encode_time(due_at),
                "updated_at": self._encode_time(now),
                "reset": reset,
                "id": task.id,
            },
        )
        return self._load(db, task.id)

    # --- running and finishing -------------------------------------------------

    def renew_lease(self, run_id: int, *, lease: Lease) -> bool:
        """Extend the lease of a running run; False if the run is no longer ours."""
        with self._transaction() as db:
            cursor = db.execute(
                self.sql.RENEW_LEASE,
                {
                    "lease_expires_at": self._encode_time(lease.expires_at),
                    "run_id": run_id,
                    "lease_host": lease.host,
                    "lease_pid": lease.pid,
                },
            )
            return bool(cursor.rowcount == 1)

    def set_child(self, run_id: int, pid: int, *, start: str | None = None) -> None:
        """Record the pid of the process a run started (its process group too).

        `start` tells that process apart from a later one with the same pid.
        """
        with self._transaction() as db:
            db.execute(
                self.sql.SET_CHILD_PID, {"child_pid": pid, "child_start": start, "id": run_id}
            )

    def save_progress(self, run_id: int, progress: Progress) -> bool:
        """Store a running task's progress; False once the run is no longer its current one."""
        with self._transaction() as db:
            saved = {"progress": json.dumps(progress.to_json()), "run_id": run_id}
            cursor = db.execute(self.sql.SAVE_PROGRESS, saved)
            return bool(cursor.rowcount == 1)

    def finish_run(self, run_id: int, end: RunEnd, *, decide: Decide) -> Task | None:
        """Record how a run ended and move its task; None if the run was recovered meanwhile.

        The task's row is read under a lock: a recovery racing this finish
        either ends first (and this finds the run no longer current) or waits.
        """
        with self._transaction() as db:
            row = db.execute(self.sql.SELECT_TASK_OF_RUN, {"run_id": run_id}).fetchone()
            if row is None:
                return None
            return self._end(db, row["id"], run_id, end, decide)

    # --- status ----------------------------------------------------------------

    def counts(self, scope: Scope) -> dict[str, dict[str, int]]:
        """How many tasks each module id in scope has in each state.

        Read from an index of (module, state): no task is loaded. A module id
        without tasks, and a state without tasks, are left out.
        """
        sql = self.sql
        found: dict[str, dict[str, int]] = {}
        with self._read() as db:
            for low, high in module_ranges(scope.modules):
                where = sql.MODULE_FROM if high is None else sql.MODULE_RANGE
                params = {"low": low, "high": high}
                for row in db.execute(sql.COUNT_TASKS.format(range=where), params):
                    if row["module"] in scope:
                        found.setdefault(row["module"], {})[row["state"]] = row["tasks"]
        return found

    def running(self, scope: Scope) -> Tasks:
        """The running tasks in scope, each with its current run as its only run, oldest first."""
        where, params = self._scope_sql(scope)
        with self._read() as db:
            rows = db.execute(self.sql.SELECT_RUNNING_TASKS.format(scope=where), params).fetchall()
            tasks = [
                dataclasses.replace(
                    self._task(row, (self._load_run(db, row["run_id"]),)),
                    job_started_at=self._job_start(db, row),
                )
                for row in rows
            ]
        return sorted(tasks, key=lambda task: (task.runs[0].started_at, task.id))

    def _job_start(self, db: Connection, row: Row) -> datetime | None:
        """When the job of a running task's row started: its first step's run's start
        (the `steps`-th `continued` run back); None when the current run is its first step."""
        if not row["steps"]:
            return None
        back = {"task_id": row["id"], "run_id": row["run_id"], "offset": row["steps"] - 1}
        found = db.execute(self.sql.SELECT_JOB_START, back).fetchone()
        return None if found is None else self._decode_time(found["started_at"])

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
                for row in db.execute(
                    self.sql.MODULE_FIRST_QUEUED, {"module": module, "count": count}
                )
            )
            return [self._load(db, task_id, runs=False) for _, task_id in found[:count]]

    def failures(self, scope: Scope, *, count: int) -> Tasks:
        """The `count` most recently updated tasks in scope that failed.

        They are the tasks in state `failed`, and the queued or paused tasks
        that will run again (a one-off task with attempts left, a recurring
        task) whose last run failed or timed out.
        """
        sql = self.sql
        where, params = self._scope_sql(scope)
        with self._read() as db:
            failed = db.execute(
                sql.LATEST_FAILED.format(scope=where), {**params, "count": count}
            ).fetchall()
            waiting = db.execute(sql.WAITING_AFTER_FAILURE.format(scope=where), params).fetchall()
            newest = sorted(((r["updated_at"], r["id"]) for r in (*failed, *waiting)), reverse=True)
            return [self._load(db, task_id, runs=False) for _, task_id in newest[:count]]

    # --- pools -----------------------------------------------------------------

    def register_pool(self, pool: PoolLease, *, now: datetime) -> int | None:
        """Make `pool` the pool of its scope on its host; its id, or None when taken.

        In one locked transaction: pools whose lease expired, and pools on this
        machine whose pid is gone, are dropped; then a live pool on `pool`'s
        host whose scope overlaps refuses it. Pools on other hosts never do.
        """
        sql = self.sql
        with self._transaction(now=now, lock=True) as db:
            now_kept = self._encode_time(now)
            db.execute(sql.DELETE_EXPIRED_POOLS, {"now": now_kept})
            for row in db.execute(
                sql.SELECT_LIVE_POOLS, {"host": self.host, "now": now_kept}
            ).fetchall():
                if self._same_machine(row["host"], row["machine"]) and not pid_alive(row["pid"]):
                    db.execute(sql.DELETE_POOL, {"id": row["id"]})
            if self._overlapping_pool(db, pool, now) is not None:
                return None
            return self._insert(
                db,
                sql.INSERT_POOL,
                {
                    "host": pool.host,
                    "machine": pool.machine,
                    "pid": pool.pid,
                    "scope": json.dumps(pool.scope.to_json()),
                    "started_at": now_kept,
                    "expires_at": self._encode_time(pool.expires_at),
                },
            )

    def serving_pool(self, pool: PoolLease, *, now: datetime) -> PoolLease | None:
        """The live pool on `pool`'s host whose scope overlaps `pool`'s (not `pool` itself)."""
        with self._read(now=now) as db:
            return self._overlapping_pool(db, pool, now)

    def _overlapping_pool(self, db: Connection, pool: PoolLease, now: datetime) -> PoolLease | None:
        rows = db.execute(
            self.sql.SELECT_LIVE_POOLS, {"host": pool.host, "now": self._encode_time(now)}
        ).fetchall()
        for row in rows:
            if row["id"] == pool.id or (
                self._same_machine(row["host"], row["machine"]) and not pid_alive(row["pid"])
            ):
                continue
            found = self._pool(row)
            if found.scope.overlaps(pool.scope):
                return found
        return None

    def renew_pool(self, pool_id: int, *, expires_at: datetime) -> bool:
        """Extend a pool's lease; False when it is no longer registered."""
        with self._transaction() as db:
            cursor = db.execute(
                self.sql.RENEW_POOL, {"expires_at": self._encode_time(expires_at), "id": pool_id}
            )
            return bool(cursor.rowcount == 1)

    def release_pool(self, pool_id: int) -> None:
        """Remove a pool: its scope is free for another one."""
        with self._transaction() as db:
            db.execute(self.sql.DELETE_POOL, {"id": pool_id})

    # --- moving stores -------------------------------------------------------------

    def dump(self, *, batch: int = DUMP_BATCH) -> Generator[Task, None, None]:
        """Every task with all its runs, in id order, read on one snapshot.

        Two queries a batch of `batch` tasks: the tasks after the last id read,
        then the runs of the ids they span. The read lasts until the iterator
        is exhausted or closed.
        """
        sql = self.sql
        with self._read() as db:
            after = 0
            while True:
                rows = db.execute(sql.DUMP_TASKS, {"after": after, "count": batch}).fetchall()
                if not rows:
                    return
                runs: dict[int, list[Run]] = {}
                span = {"first": rows[0]["id"], "last": rows[-1]["id"]}
                for row in db.execute(sql.DUMP_RUNS, span):
                    runs.setdefault(row["task_id"], []).append(self._run(row))
                for row in rows:
                    yield self._task(row, tuple(runs.get(row["id"], ())))
                after = span["last"]

    def restore(self, tasks: Iterable[Task], *, batch: int = DUMP_BATCH) -> tuple[int, int]:
        """Write `tasks` with their runs into this empty store, keeping every id.

        One locked transaction: all of them or none. A store holding tasks or
        runs is `StoreNotEmptyError` (before `tasks` is read); a running task is
        `TasksRunningError`, since its lease names a process of the old store.
        Rows go in `batch` tasks at a time. Returns how many tasks and runs
        were written.
        """
        written, runs = 0, 0
        with self._transaction(lock=True) as db:
            found = db.execute(self.sql.COUNT_STORED).fetchone()
            if found["tasks"] or found["runs"]:
                raise errors.StoreNotEmptyError(self.url, found["tasks"], found["runs"])
            for chunk in batched(tasks, batch):
                runs += self._restore_batch(db, chunk)
                written += len(chunk)
            self._advance_ids(db)
        return written, runs

    def _restore_batch(self, db: Connection, tasks: Sequence[Task]) -> int:
        """Insert some tasks and their runs; how many runs."""
        running = tuple(task.id for task in tasks if task.state is State.RUNNING)
        if running:
            raise errors.TasksRunningError(running)
        self._insert_many(db, self.sql.RESTORE_TASK, [self._task_row(task) for task in tasks])
        runs = [self._run_row(run) for task in tasks for run in task.runs]
        if runs:
            self._insert_many(db, self.sql.RESTORE_RUN, runs)
        return len(runs)

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
