"""Reading a SQL store: tasks by id, a list or a page in line order, and the status reads
(counts, running tasks, the next due, the latest failures), each along an index."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable
from datetime import datetime
from typing import Any

from taskcron import errors
from taskcron.model import Run, Scope, State, Task
from taskcron.store.protocol import Counter, OutcomeMinute, OutcomeTotal, RecurringTask, Tasks
from taskcron.store.queries import BUCKET_COLUMNS
from taskcron.store.scopes import module_ranges
from taskcron.store.sql_base import DUMP_BATCH, Connection, Row, SqlBase
from taskcron.values import replace


class SqlReads(SqlBase):
    """The reads of the `Store` contract over SQL."""

    def get(self, task_id: int, *, runs: int | None = None) -> Task:
        """The task with its runs, oldest first (its newest `runs` only, if given), and
        how many the store holds (`runs_kept`); or `TaskNotFoundError`."""
        with self._read() as db:
            task = self._load(db, task_id, runs=True if runs is None else runs)
            kept = db.execute(self.sql.COUNT_TASK_RUNS, {"task_id": task_id}).fetchone()["n"]
        return replace(task, runs_kept=int(kept))

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

    def outcome_totals(self) -> tuple[OutcomeTotal, ...]:
        """Every module id's runs by outcome, ever (by module id, then outcome)."""
        with self._read() as db:
            rows = db.execute(self.sql.SELECT_OUTCOME_TOTALS).fetchall()
        return tuple(
            OutcomeTotal(
                module=row["module"],
                outcome=row["outcome"],
                runs=int(row["runs"]),
                seconds=float(row["seconds"]),
                buckets=tuple(int(row[name]) for name in BUCKET_COLUMNS),
            )
            for row in rows
        )

    def counters(self) -> tuple[Counter, ...]:
        """Every counter the store keeps, by name, then labels."""
        with self._read() as db:
            rows = db.execute(self.sql.SELECT_COUNTERS).fetchall()
        return tuple(
            Counter(name=row["name"], labels=json.loads(row["labels"]), value=int(row["value"]))
            for row in rows
        )

    def recurring(self, *, limit: int = 10_000) -> tuple[RecurringTask, ...]:
        """The recurring tasks by id, read along tasks_recurring, each with the end of its
        newest run that ended done (one probe of runs_outcome)."""
        with self._read() as db:
            rows = db.execute(self.sql.SELECT_RECURRING, {"limit": limit}).fetchall()
        return tuple(
            RecurringTask(
                id=row["id"],
                module=row["module"],
                key=row["key"],
                state=row["state"],
                due_at=self._decode_time(row["due_at"]),
                succeeded_at=(
                    None if row["succeeded_at"] is None else self._decode_time(row["succeeded_at"])
                ),
            )
            for row in rows
        )

    def oldest_queued(self, scope: Scope) -> dict[str, datetime]:
        """Each in-scope module id's oldest queued task's due time: the heads of the line."""
        with self._read() as db:
            return {module: self._decode_time(due) for module, due, _ in self._heads(db, scope)}

    def outcome_minutes(self, *, since: datetime) -> tuple[OutcomeMinute, ...]:
        """The runs by minute, module id and outcome since `since`, oldest minute first."""
        with self._read() as db:
            since_kept = {"since": self._encode_time(since)}
            rows = db.execute(self.sql.SELECT_OUTCOME_MINUTES, since_kept).fetchall()
        return tuple(
            OutcomeMinute(
                minute=self._decode_time(row["minute"]),
                module=row["module"],
                outcome=row["outcome"],
                runs=int(row["runs"]),
                seconds=float(row["seconds"]),
            )
            for row in rows
        )

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
                replace(
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

    def dump(self, *, batch: int = DUMP_BATCH) -> Generator[Task, None, None]:
        """Every task with all its runs and their counts by outcome, in id order, read on
        one snapshot.

        Three queries a batch of `batch` tasks: the tasks after the last id read,
        then the runs of the ids they span, then their counts. The read lasts until the iterator
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
                counted: dict[int, list[tuple[str, int]]] = {}
                span = {"first": rows[0]["id"], "last": rows[-1]["id"]}
                for row in db.execute(sql.DUMP_RUNS, span):
                    runs.setdefault(row["task_id"], []).append(self._run(row))
                for row in db.execute(sql.DUMP_OUTCOMES, span):
                    counted.setdefault(row["task_id"], []).append((row["outcome"], row["runs"]))
                for row in rows:
                    task = self._task(row, tuple(runs.get(row["id"], ())))
                    yield replace(task, outcomes=tuple(counted.get(row["id"], ())))
                after = span["last"]
