"""The PostgreSQL store's finish: one round trip while the task is as its claim left it.

Where a task goes when its run ends is Python's decision (a retry policy, the next
fire time of a schedule), and it depends on the task. The claim function returns the
task with its row version (`xmin`, which every write of the row changes); the store
keeps both, and the finish decides from that copy and sends everything at once to
`finish_run`, a server-side function created by the schema's migrations
(`taskcron.store.postgres_schema`). Under the row's lock the function checks that the
row is still the version the claim left (no progress saved, no lease renewed, no
action taken since), then ends the run, counts it, moves the task, and returns the
task as the finish leaves it. Otherwise it changes nothing and says so, and the
finish reads the task under its lock first and decides again: two round trips,
pipelined (as soon as this store changes the task itself, saving progress or renewing
the lease, and after the function said so when another process did). How and why:
"The PostgreSQL store inside" in docs/pages/development.md.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from taskcron import errors
from taskcron.model import Progress, Retention, RunEnd, Task
from taskcron.store.postgres_claim import (
    CLAIM_RUN_COLUMNS,
    TASK_WITH_RUN,
    TASK_WITH_RUN_FROM,
    ClaimCall,
    inside,
    task_with_run,
)
from taskcron.store.postgres_faults import lost
from taskcron.store.protocol import Decide, Lease
from taskcron.store.queries import BUCKET_COLUMNS, POSTGRES, TASK_COLUMNS, Statements
from taskcron.store.sql_base import Row
from taskcron.values import replace

_PG = Statements(POSTGRES)

#: The task of a run being finished, while that run is its current one, locked; the id
#: of its newest run (the run's outcome is the task's last one once the run ends), how
#: many runs it has and when its oldest started (whether a retention may trim any).
FINISHING_TASK = (
    f"SELECT {TASK_COLUMNS}, (SELECT max(id) FROM runs WHERE runs.task_id = tasks.id)"
    " AS newest_run, (SELECT count(*) FROM runs WHERE runs.task_id = tasks.id) AS runs_kept,"
    " (SELECT started_at FROM runs WHERE runs.task_id = tasks.id ORDER BY id LIMIT 1)"
    " AS oldest_started_at FROM tasks WHERE state = 'running' AND run_id = %(run_id)s"
    " FOR UPDATE OF tasks"
)
#: How a run ended, recorded on the run and counted (`SqlRuns._count`), in one statement:
#: the run's update and two of the counts' upserts as data-modifying WITH queries.
FINISH_RUN = (
    f"WITH ended AS ({_PG.END_RUN.replace('%(id)s', '%(run_id)s')}),"
    f" by_task AS ({_PG.COUNT_TASK_OUTCOME}),"
    f" totals AS ({_PG.COUNT_OUTCOME_TOTAL}) {_PG.COUNT_OUTCOME_MINUTE}"
)
#: A task as a finish leaves it, in one read: its columns, its newest run's (prefixed
#: "run_") and its runs by outcome (`ClaimCall._with_run` reads the row).
FINISHED_TASK = (
    f"SELECT {TASK_COLUMNS}, r.*, o.* FROM tasks"
    " LEFT JOIN LATERAL (SELECT "
    + ", ".join(f"runs.{name} AS run_{name}" for name, _ in CLAIM_RUN_COLUMNS)
    + " FROM runs WHERE runs.task_id = tasks.id ORDER BY runs.id DESC LIMIT 1) AS r ON TRUE"
    " LEFT JOIN LATERAL (SELECT array_agg(c.outcome ORDER BY c.outcome) AS outcome_names,"
    " array_agg(c.runs ORDER BY c.outcome) AS outcome_runs FROM task_outcomes AS c"
    " WHERE c.task_id = tasks.id) AS o ON TRUE WHERE tasks.id = %(id)s"
)

# --- the finish in one round trip ---------------------------------------------

#: The function's parameters, in order, with their types: the task and the row version
#: its claim left; how the run ended (END_RUN's); what is counted (`_counted`'s, the
#: duration's bucket as its number); the minutes to drop before, if any; where the task
#: goes and what the run left on it (MOVE_TASK's).
FINISH_PARAMETERS = (
    ("task_id", "BIGINT"), ("row_version", "TEXT"), ("run_id", "BIGINT"),
    ("ended_at", "TIMESTAMPTZ"), ("elapsed", "DOUBLE PRECISION"), ("outcome", "TEXT"),
    ("exit_code", "INTEGER"), ("error", "TEXT"), ("traceback", "TEXT"),
    ("output_tail", "TEXT"), ("truncated", "BOOLEAN"),
    ("module", "TEXT"), ("seconds", "DOUBLE PRECISION"), ("minute", "TIMESTAMPTZ"),
    ("bucket", "INTEGER"), ("drop_before", "TIMESTAMPTZ"),
    ("state", "TEXT"), ("due_at", "TIMESTAMPTZ"), ("updated_at", "TIMESTAMPTZ"),
    ("reset", "BOOLEAN"), ("set_result", "BOOLEAN"), ("result", "TEXT"),
    ("set_progress", "BOOLEAN"), ("progress", "TEXT"), ("save_step", "BOOLEAN"),
    ("step_state", "TEXT"), ("clear_steps", "BOOLEAN"), ("set_health", "BOOLEAN"),
    ("failing_since", "TIMESTAMPTZ"), ("missed_since", "TIMESTAMPTZ"),
)  # fmt: skip
#: Each statement's parameters as the function's: `%(name)s` is `p_name`, the bucket
#: columns' 1 or 0 from the bucket's number, and MOVE_TASK's id is the task's.
_NAMES = {
    **{name: f"p_{name}" for name, _ in FINISH_PARAMETERS},
    **{column: f"(p_bucket = {n})::INTEGER" for n, column in enumerate(BUCKET_COLUMNS)},
    "id": "p_task_id",
}
_RETURNS = ", ".join(
    ["status TEXT", TASK_WITH_RUN, "runs_kept BIGINT", "oldest_started_at TIMESTAMPTZ"]
)
_SELECTS = ", ".join(
    [
        "v_status",
        task_with_run("p_outcome"),
        "(SELECT count(*) FROM runs WHERE runs.task_id = p_task_id)",
        "(SELECT started_at FROM runs WHERE runs.task_id = p_task_id ORDER BY id LIMIT 1)",
    ]
)
_FROM = TASK_WITH_RUN_FROM.format(task="p_task_id", run="p_run_id", wanted="v_status = 'finished'")
#: The finish's common path as one call (`FinishCall.finish_run`): under the task row's
#: lock, while the row is the version its claim left and the run its current one, the
#: run ended and counted, the minutes no longer kept dropped, the task moved, and the
#: task read back with that run and its runs by outcome (status "finished"). Otherwise
#: nothing changes (status "again": Python reads the task and decides again).
#:
#: Made again by the newest migration that names it (CREATE OR REPLACE).
FINISH_FUNCTIONS = (
    f"""
CREATE OR REPLACE FUNCTION finish_run(
    {", ".join(f"p_{name} {kind}" for name, kind in FINISH_PARAMETERS)}
) RETURNS TABLE ({_RETURNS})
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
    v_status TEXT := 'again';
BEGIN
    PERFORM 1 FROM tasks WHERE id = p_task_id AND state = 'running' AND run_id = p_run_id
        AND xmin::text = p_row_version FOR UPDATE;
    IF FOUND THEN
        {inside(FINISH_RUN, **_NAMES)};
        IF p_drop_before IS NOT NULL THEN
            {inside(_PG.DROP_OLD_MINUTES, before="p_drop_before")};
        END IF;
        {inside(_PG.MOVE_TASK, **_NAMES)};
        v_status := 'finished';
    END IF;
    RETURN QUERY SELECT {_SELECTS}
        FROM {_FROM};
END $$""",
)
#: One finish's common path (see FINISH_FUNCTIONS).
FINISH_CALL = (
    "SELECT * FROM finish_run(" + ", ".join(f"%({name})s" for name, _ in FINISH_PARAMETERS) + ")"
)


class FinishCall(ClaimCall):
    """`PostgresStore`'s finish: the function's common path, two pipelined trips when the
    task changed since its claim, and the history trimmed after either."""

    _db: Any  #: The store's connection (`PostgresStore`).

    def _pipelined(self) -> AbstractContextManager[Any]:
        """A write transaction in pipeline mode (`PostgresStore._pipelined`)."""
        raise NotImplementedError

    def renew_lease(self, run_id: int, *, lease: Lease) -> bool:
        """`SqlRuns.renew_lease`; the run's task is no longer as its claim left it."""
        self._claimed.pop(run_id, None)
        return super().renew_lease(run_id, lease=lease)

    def save_progress(self, run_id: int, progress: Progress) -> bool:
        """`SqlRuns.save_progress`; the run's task is no longer as its claim left it."""
        self._claimed.pop(run_id, None)
        return super().save_progress(run_id, progress)

    def finish_run(
        self, run_id: int, end: RunEnd, *, decide: Decide, keep: Retention | None = None
    ) -> Task | None:
        """The `Store` finish (see `SqlRuns.finish_run`): one call of the finish function
        when this store claimed the run and its task is as the claim left it, else two
        round trips, pipelined (the task read under its lock, then every write and the
        task read back). Trimming (`keep`) reads as it goes, in trips of its own.

        A connection lost in the first trip of two ran nothing that commits (the
        transaction was open): the finish starts once more on a new connection.
        """
        claimed = self._claimed.pop(run_id, None)
        found = None if claimed is None else self._finish_call(claimed, run_id, end, decide)
        if found is not None:
            done, row = found
            if keep is not None and self._may_trim(done, keep, row, end.ended_at):
                trimmed = self._trim_after(done, keep, end.ended_at)
                done = replace(done, runs_kept=int(row["runs_kept"]) - trimmed)
            return done
        try:
            return self._finish(run_id, end, decide, keep, retry=True)
        except _Again:
            return self._finish(run_id, end, decide, keep, retry=False)

    def _finish_call(
        self, claimed: tuple[Task, str], run_id: int, end: RunEnd, decide: Decide
    ) -> tuple[Task, Row] | None:
        """The finish in one call from the claimed task, and the function's row (how many
        runs the task has, when its oldest started); None when the function says the task
        changed since its claim (nothing was done)."""
        claim, version = claimed
        task = replace(claim, runs=(), outcomes=(), last_outcome=end.outcome)
        where, left = self._settle(task, end, decide)
        counted = self._counted(task, end)
        bucket = next(n for n, column in enumerate(BUCKET_COLUMNS) if counted[column])
        minute, drop = self._minutes_to_drop(end)
        params = {
            **self._run_ended(run_id, end),
            **{name: counted[name] for name in ("module", "seconds", "minute")},
            **self._moved(task, where, end.ended_at, left),
            "task_id": task.id,
            "row_version": version,
            "run_id": run_id,
            "bucket": bucket,
            "drop_before": None if drop is None else self._encode_time(drop),
        }
        row = self._call(FINISH_CALL, params)
        if row["status"] != "finished":
            return None
        if drop is not None:
            self._minutes_dropped = minute
        done = self._with_run(row)
        return replace(done, runs_kept=int(row["runs_kept"]), alerts=left["alerts"]), row

    def _trim_after(self, done: Task, keep: Retention, now: datetime) -> int:
        """Trim `done`'s runs beyond `keep` in a transaction of its own after the finish's;
        how many went. The finish has committed: a trim that fails is left to the task's
        next finish, and the finish stands."""
        try:
            with self._pipelined() as db:
                return self._trim(db, done, keep, now)
        except errors.StoreError:
            return 0

    def _finish(
        self, run_id: int, end: RunEnd, decide: Decide, keep: Retention | None, *, retry: bool
    ) -> Task | None:
        import psycopg

        first = True
        try:
            with self._pipelined() as db:
                row = db.execute(FINISHING_TASK, {"run_id": run_id}).fetchone()
                first = False
                if row is None:
                    return None
                newest = row["newest_run"] == run_id
                last = end.outcome.value if newest else row["last_outcome"]
                task = self._task({**row, "last_outcome": last})
                ended = self._run_ended(run_id, end)
                db.execute(FINISH_RUN, {**ended, "run_id": run_id, **self._counted(task, end)})
                self._drop_minutes(db, end)
                where, left = self._settle(task, end, decide)
                self._place(db, task, where, end.ended_at, left)
                finished = db.execute(FINISHED_TASK, {"id": task.id})
                kept, trimmed, done = int(row["runs_kept"]), 0, None
                if keep is not None and self._may_trim(task, keep, row, end.ended_at):
                    done = self._with_run(finished.fetchone())  # the trim keeps its run
                    trimmed = self._trim(db, done, keep, end.ended_at)
            done = done or self._with_run(finished.fetchone())
            # runs as `get` counts them
            return replace(done, runs_kept=kept - trimmed, alerts=left["alerts"])
        except errors.StoreUnreachable as exc:
            cause = exc.__cause__
            if retry and first and isinstance(cause, psycopg.Error) and lost(self._db, cause):
                raise _Again from exc
            raise

    def _may_trim(self, task: Task, keep: Retention, row: Row, now: datetime) -> bool:
        """Whether `keep` may trim runs of `task`, by what FINISHING_TASK read: more runs
        than it keeps, or one started before what it keeps (as `_trim` would find)."""
        limit, oldest = keep.limit(task), row["oldest_started_at"]
        if limit > 0 and row["runs_kept"] > limit:
            return True
        return (
            keep.keep_for is not None
            and oldest is not None
            and self._decode_time(oldest) < now - keep.keep_for
        )


class _Again(Exception):
    """A finish's first trip was lost: nothing it did commits; start it again."""
