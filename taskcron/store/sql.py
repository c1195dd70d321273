"""SqlStore: the store's rules written once over SQL, for every SQL backend.

The order rule's skip-scan, recovery of dead runs, fenced finishes, lanes,
pools and the status reads are one algorithm whatever the engine. `SqlStore`
joins the parts (`sql_reads`: reading; `sql_runs`: claiming and finishing) and
adds the task writes, the pools and the copy between stores; what a backend
supplies is listed in `taskcron.store.sql_base`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime

from taskcron import errors
from taskcron.model import Retention, State, Task
from taskcron.store.protocol import (
    Counter,
    LogRow,
    NewTask,
    OutcomeMinute,
    OutcomeTotal,
    PoolLease,
    PruneCount,
    Tasks,
)
from taskcron.store.queries import BUCKET_COLUMNS
from taskcron.store.sql_base import DUMP_BATCH, Connection, batched, pid_alive, seconds
from taskcron.store.sql_reads import SqlReads
from taskcron.store.sql_runs import SqlRuns
from taskcron.values import replace

#: The tasks `prune` deletes when they were last updated long enough ago.
FINISHED = frozenset({State.DONE, State.FAILED, State.CANCELLED})
#: As many runs as a task may have: `prune` trims them all at once.
TRIM_ALL = 2**62


class SqlStore(SqlReads, SqlRuns):
    """The `Store` contract over SQL; a backend subclasses it (see `sql_base`)."""

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
                    "keep_runs": new.keep_runs,
                    "missed_after": seconds(new.missed_after),
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
            db.execute(self.sql.DELETE_TASK_OUTCOMES, {"task_id": task_id})
            db.execute(self.sql.DELETE_TASK, {"id": task_id})
            return task

    def prune(
        self,
        *,
        before: datetime,
        dry_run: bool = False,
        keep: Retention | None = None,
        now: datetime | None = None,
    ) -> PruneCount:
        """Delete finished (done, failed, cancelled) tasks last updated before `before`,
        with their runs, and count them; with `keep` (and `now`), trim every other task's
        runs by it too, at once; with `dry_run`, only count them."""
        cutoff = {"before": self._encode_time(before)}
        at = before if now is None else now
        if dry_run:
            with self._read() as db:
                runs = int(db.execute(self.sql.COUNT_PRUNE_RUNS, cutoff).fetchone()["n"])
                if keep is not None:
                    runs += self._trim_all(db, keep, at, before=before, delete=False)
                return PruneCount(
                    tasks=int(db.execute(self.sql.COUNT_PRUNE_TASKS, cutoff).fetchone()["n"]),
                    runs=runs,
                )
        with self._transaction(lock=True) as db:
            runs = int(db.execute(self.sql.PRUNE_RUNS, cutoff).rowcount)
            db.execute(self.sql.PRUNE_TASK_OUTCOMES, cutoff)
            tasks = int(db.execute(self.sql.PRUNE_TASKS, cutoff).rowcount)
            if keep is not None:
                runs += self._trim_all(db, keep, at, before=before, delete=True)
            return PruneCount(tasks=tasks, runs=runs)

    def _trim_all(
        self, db: Connection, keep: Retention, now: datetime, *, before: datetime, delete: bool
    ) -> int:
        """Trim (or count) the runs of every task `prune` keeps by `keep`, all at once."""
        whole = replace(keep, batch=TRIM_ALL)
        trimmed, after = 0, 0
        while True:
            ids = [r["id"] for r in db.execute(self.sql.TASK_IDS, {"after": after, "count": 500})]
            if not ids:
                return trimmed
            for task_id in ids:
                task = self._load(db, task_id, runs=1)
                if task.state in FINISHED and task.updated_at < before:
                    continue  # pruned with all its runs
                trimmed += self._trim(db, task, whole, now, delete=delete)
            after = ids[-1]

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

    def restore(
        self,
        tasks: Iterable[Task],
        *,
        batch: int = DUMP_BATCH,
        totals: Iterable[OutcomeTotal] = (),
        minutes: Iterable[OutcomeMinute] = (),
        counters: Iterable[Counter] = (),
        log: Iterable[LogRow] = (),
    ) -> tuple[int, int]:
        """Write `tasks` with their runs into this empty store, keeping every id, the
        runs counted by module id (`totals`) and by minute (`minutes`), the other
        counters (`counters`: missed runs, alerts), and the rows of `log` into its
        shared log (see `_restore_log`).

        One locked transaction: all of them or none. A store holding tasks or
        runs is `StoreNotEmptyError` (before `tasks` is read); a running task is
        `TasksRunningError`, since its lease names a process of the old store.
        Rows go in `batch` tasks (or counts) at a time. Returns how many tasks
        and runs were written.
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
            self._restore_counts(db, totals, minutes, batch)
            for counter in counters:
                self._add_count(db, counter.name, counter.labels, counter.value)
            self._restore_log(db, log, batch)
        return written, runs

    def _restore_counts(
        self,
        db: Connection,
        totals: Iterable[OutcomeTotal],
        minutes: Iterable[OutcomeMinute],
        batch: int,
    ) -> None:
        """Add the runs counted by module id and by minute to those this store counts."""
        for chunk in batched(totals, batch):
            rows = [
                {
                    "module": total.module,
                    "outcome": total.outcome,
                    "runs": total.runs,
                    "seconds": total.seconds,
                    **dict(zip(BUCKET_COLUMNS, total.buckets, strict=True)),
                }
                for total in chunk
            ]
            self._insert_many(db, self.sql.RESTORE_OUTCOME_TOTAL, rows)
        for moments in batched(minutes, batch):
            per_minute = [
                {
                    "minute": self._encode_time(minute.minute),
                    "module": minute.module,
                    "outcome": minute.outcome,
                    "runs": minute.runs,
                    "seconds": minute.seconds,
                }
                for minute in moments
            ]
            self._insert_many(db, self.sql.RESTORE_OUTCOME_MINUTE, per_minute)

    def _restore_batch(self, db: Connection, tasks: Sequence[Task]) -> int:
        """Insert some tasks and their runs; how many runs."""
        running = tuple(task.id for task in tasks if task.state is State.RUNNING)
        if running:
            raise errors.TasksRunningError(running)
        self._insert_many(db, self.sql.RESTORE_TASK, [self._task_row(task) for task in tasks])
        runs = [self._run_row(run) for task in tasks for run in task.runs]
        if runs:
            self._insert_many(db, self.sql.RESTORE_RUN, runs)
        counted = [
            {"task_id": task.id, "outcome": outcome, "runs": n}
            for task in tasks
            for outcome, n in task.outcomes or ()
        ]
        if counted:
            self._insert_many(db, self.sql.RESTORE_OUTCOME, counted)
        return len(runs)
