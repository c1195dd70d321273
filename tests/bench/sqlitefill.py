"""SQLite stores filled in bulk, for the rows that need thousands to a million tasks.

`fill(path, count)` writes `count` tasks straight into the store at `path`
(which taskcron made: `taskcron init` or `SqliteStore`) in one INSERT ...
SELECT over a recursive CTE, laid out as tests/pgstore.py lays out a
PostgreSQL store: over `MODULES` module ids (`app.m00` ...) twenty tasks each
in turn, and of every twenty 11 done, 2 failed, 1 cancelled, 1 paused, 3
queued from tomorrow on and 2 queued and due (the oldest first, a second
apart, ending at `now`); priorities 0, 1 and 2 in turn, a key on one task in
ten, a run for each done or failed task. With `future`, every task is queued
and due from tomorrow on (what an idle tick sees). Stores filled with
different counts differ only in how many tasks each module id holds. The
store's triggers keep its counts current as the rows go in; no ANALYZE, since
the store never runs one either.

`put_back(db, task, run)` undoes a claim, so that a row can claim from one
store over and over and keep it as it was. Only the standard library: a row
may fill a store without importing taskcron.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

#: Module ids a filled store spreads its tasks over.
MODULES = 50
#: Whose leases running tasks hold in a filled store.
ELSEWHERE = "elsewhere"

DAY = 86_400_000_000

FILL = """
WITH RECURSIVE n(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM n WHERE g + 1 < :count)
INSERT INTO tasks (module, title, target, data, priority, state, due_at, attempts,
                   max_attempts, created_at, updated_at, key)
SELECT printf('app.m%02d', (g / 20) % :modules), 'bulk',
       '{"kind": "command", "value": ["true"]}', 'null', (g % 20) % 3,
       CASE WHEN :future OR g % 20 >= 15 THEN 'queued'
            WHEN g % 20 < 11 THEN 'done' WHEN g % 20 < 13 THEN 'failed'
            WHEN g % 20 = 13 THEN 'cancelled' ELSE 'paused' END,
       CASE WHEN :future OR g % 20 BETWEEN 15 AND 17 THEN :now + :day + g * 1000000
            ELSE :now - (:count - g) * 1000000 END,
       CASE WHEN NOT :future AND g % 20 < 13 THEN 1 ELSE 0 END, 1,
       :now - 30 * :day, :now - (:count - g) * 1000000,
       CASE WHEN g % 10 = 7 THEN 'k' || g END
FROM n
"""
FILL_RUNS = """
INSERT INTO runs (task_id, attempt, started_at, ended_at, elapsed, outcome, exit_code, host, pid)
SELECT id, 1, updated_at, updated_at, 0.5, CASE WHEN state = 'done' THEN 'done' ELSE 'failed' END,
       CASE WHEN state = 'done' THEN 0 ELSE 1 END, :host, 1
FROM tasks WHERE state IN ('done', 'failed')
"""
PUT_BACK_TASK = """
UPDATE tasks SET state = 'queued', attempts = attempts - 1, run_id = NULL, lease_host = NULL,
       lease_machine = NULL, lease_pid = NULL, lease_expires_at = NULL
WHERE id = ? AND run_id = ?
"""
DELETE_RUN = "DELETE FROM runs WHERE id = ?"


def micros(moment: datetime) -> int:
    """Microseconds since the epoch, as the store keeps times."""
    return round(moment.timestamp() * 1_000_000)


def fill(path: Path, count: int, *, now: datetime | None = None, future: bool = False) -> None:
    """`count` tasks laid out as the module docstring says, in one transaction."""
    at = micros(now or datetime.now(timezone.utc))
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            FILL, {"count": count, "modules": MODULES, "future": future, "now": at, "day": DAY}
        )
        db.execute(FILL_RUNS, {"host": ELSEWHERE})
        db.execute("COMMIT")
    finally:
        db.close()


def put_back(db: sqlite3.Connection, task: int, run: int) -> None:
    """Undo a claim of `task` that opened `run`: the task queued again, the run gone."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute(PUT_BACK_TASK, (task, run)).rowcount != 1:
            raise RuntimeError(f"task {task} is not running run {run}")
        db.execute(DELETE_RUN, (run,))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def module_id(number: int) -> str:
    """The module id `fill` gives its `number`th module."""
    return f"app.m{number:02d}"


QUEUE = """
WITH RECURSIVE n(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM n WHERE g + 1 < :count)
INSERT INTO tasks (module, title, target, data, priority, state, due_at, attempts,
                   max_attempts, created_at, updated_at)
SELECT :module, 'bulk', :target, 'null', 0, 'queued',
       :now - (:count - g), 0, 1, :now, :now
FROM n
"""


#: What a filled store's tasks run: the command `true`.
TRUE = '{"kind": "command", "value": ["true"]}'


def queue(
    db: sqlite3.Connection, count: int, *, now: datetime, module: str = "bench", target: str = TRUE
) -> None:
    """`count` more tasks of `module` queued and due by `now`, the oldest first, running
    `target` (a target's JSON), in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    db.execute(QUEUE, {"count": count, "now": micros(now), "module": module, "target": target})
    db.execute("COMMIT")
