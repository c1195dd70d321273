"""A run's life in a SQL store: the claim (recovering dead runs, skipping late tasks,
the order rule's pick, lanes), the lease renewed while it runs, and the fenced finish
that records how it ended and moves its task."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from taskcron.model import (
    Lanes,
    Next,
    Outcome,
    Progress,
    Retention,
    RunEnd,
    Scope,
    State,
    Task,
)
from taskcron.store.protocol import (
    Claim,
    ClaimOutcome,
    Decide,
    Lease,
    Recovered,
    Skip,
)
from taskcron.store.sql_base import Connection, Row, job_over, pid_alive
from taskcron.store.sql_ends import NOTHING_LEFT, Left, SqlEnds
from taskcron.values import replace

#: Runs deleted by one statement when trimming (a statement's parameters are bounded).
DELETE_CHUNK = 500


class SqlRuns(SqlEnds):
    """Claiming, running and finishing of the `Store` contract over SQL."""

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
                lease=lease,
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
        return self._load(db, task.id, runs=1)  # the run just opened, the newest

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
        if run_id is not None:
            db.execute(self.sql.END_RUN, self._run_ended(run_id, end))
        task = self._load(db, task_id, runs=False)  # where it goes next needs no runs
        if run_id is not None:
            self._count(db, task, end)
        where, left = self._settle(task, end, decide)
        self._place(db, task, where, end.ended_at, left)
        return replace(self._load(db, task.id, runs=1), alerts=left["alerts"])

    def _run_ended(self, run_id: int, end: RunEnd) -> dict[str, Any]:
        """`Statements.END_RUN`'s parameters: how a run ended, recorded on the run."""
        return {
            "ended_at": self._encode_time(end.ended_at),
            "elapsed": end.elapsed,
            "outcome": end.outcome.value,
            "exit_code": end.exit_code,
            "error": end.error,
            "traceback": end.traceback,
            "output_tail": end.output_tail,
            "truncated": bool(end.truncated),
            "id": run_id,
        }

    def _settle(
        self, task: Task, end: RunEnd, decide: Decide
    ) -> tuple[Next | tuple[State, datetime], Left]:
        """Where a task whose run ended goes next, and what the run leaves on it (result,
        progress, a step's state), which `_place` writes with the move."""
        left: Left = {}
        if end.outcome is Outcome.DONE:
            left.update(set_result=True, result=end.result_json)
        if end.progress is not None:
            left.update(set_progress=True, progress=json.dumps(end.progress.to_json()))
        where = decide(task, end.outcome, end.ended_at)
        if end.outcome is Outcome.CONTINUED:
            left.update(save_step=True, step_state=end.state_json)
            resume = end.ended_at if end.resume_at is None else max(end.resume_at, end.ended_at)
            where = Next(State.QUEUED, resume)
        elif job_over(end.outcome, where):
            left.update(clear_steps=True)
        return where, {**left, **self._health(task, end, where)}

    def _move(
        self, db: Connection, task: Task, where: Next | tuple[State, datetime], now: datetime
    ) -> Task:
        """Put a task where a policy said (state, due time, attempts reset?); drop its lease.

        The task is returned with its newest run only (the run just ended, when a run
        ended): a finish never reads the task's history."""
        self._place(db, task, where, now)
        return self._load(db, task.id, runs=1)

    def _place(
        self,
        db: Connection,
        task: Task,
        where: Next | tuple[State, datetime],
        now: datetime,
        left: Left | None = None,
    ) -> None:
        """`_move` without reading the task back; with what a run `left` (`_settle`)."""
        db.execute(self.sql.MOVE_TASK, {**self._moved(task, where, now, left), "id": task.id})

    def _moved(
        self, task: Task, where: Next | tuple[State, datetime], now: datetime, left: Left | None
    ) -> dict[str, Any]:
        """MOVE_TASK's parameters but the task's id (see `_place`)."""
        state, due_at = where[0], where[1]
        return {
            **NOTHING_LEFT,
            **(left or {}),
            "state": state.value,
            "due_at": self._encode_time(due_at),
            "updated_at": self._encode_time(now),
            "reset": len(where) > 2 and bool(where[2]),
        }

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

    def finish_run(
        self, run_id: int, end: RunEnd, *, decide: Decide, keep: Retention | None = None
    ) -> Task | None:
        """Record how a run ended and move its task; None if the run was recovered meanwhile.

        The task is returned with the run that ended as its only run, and how many
        runs the store keeps of it (`runs_kept`, one indexed count). With `keep`,
        its runs beyond the retention go in the same transaction, `keep.batch` at most.

        The task's row is read under a lock: a recovery racing this finish
        either ends first (and this finds the run no longer current) or waits.
        """
        with self._transaction() as db:
            row = db.execute(self.sql.SELECT_TASK_OF_RUN, {"run_id": run_id}).fetchone()
            if row is None:
                return None
            task = self._end(db, row["id"], run_id, end, decide)
            if keep is not None:
                self._trim(db, task, keep, end.ended_at)
            kept = db.execute(self.sql.COUNT_TASK_RUNS, {"task_id": task.id}).fetchone()["n"]
            return replace(task, runs_kept=int(kept))  # as `get` counts them

    def _trim(
        self, db: Connection, task: Task, keep: Retention, now: datetime, *, delete: bool = True
    ) -> int:
        """Delete up to `keep.batch` of `task`'s runs beyond its retention, oldest first;
        how many (without `delete`, only count them). Its newest run, a run not ended and
        the newest run of each outcome stay.

        Runs are read along runs_task from the oldest: only the candidates and at most
        one more run an outcome, never the whole history.
        """
        sql, limit = self.sql, keep.limit(task)
        bound: int | None = None
        if limit > 0:
            found = db.execute(sql.RUN_AT_RANK, {"task_id": task.id, "offset": limit}).fetchone()
            bound = None if found is None else found["id"]
        cutoff = None if keep.keep_for is None else self._encode_time(now - keep.keep_for)
        if bound is None and cutoff is None:
            return 0
        rows = db.execute(
            sql.OLDEST_RUNS, {"task_id": task.id, "count": keep.batch + len(Outcome) + 1}
        ).fetchall()
        newest = task.runs[-1].id if task.runs else None
        old: list[Row] = []
        for row in rows:
            if not (
                (bound is not None and row["id"] <= bound)
                or (cutoff is not None and row["started_at"] < cutoff)
            ):
                break
            if row["outcome"] is not None and row["id"] != newest:
                old.append(row)
        kept = self._last_of_outcomes(db, task.id, {row["outcome"] for row in old})
        gone = [row["id"] for row in old if row["id"] not in kept][: keep.batch]
        for start in range(0, len(gone) if delete else 0, DELETE_CHUNK):
            named = {
                f"id{n}": run_id for n, run_id in enumerate(gone[start : start + DELETE_CHUNK])
            }
            marks = ", ".join(sql.mark(name) for name in named)
            db.execute(sql.DELETE_RUNS.format(ids=marks), named)
        return len(gone)

    def _last_of_outcomes(self, db: Connection, task_id: int, outcomes: set[str]) -> set[int]:
        """The ids of the newest run of `task_id` with each of `outcomes`."""
        kept: set[int] = set()
        for outcome in sorted(outcomes):
            args = {"task_id": task_id, "outcome": outcome}
            found = db.execute(self.sql.LAST_OF_OUTCOME, args).fetchone()
            if found is not None:
                kept.add(found["id"])
        return kept
