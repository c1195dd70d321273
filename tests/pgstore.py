"""PostgreSQL stores filled in bulk, and the claim's statements explained on them.

For the plans test (tests/postgres/test_postgres_plans.py) and the benchmark's
PostgreSQL rows (tests/bench/rows/pg_*.py). Each function takes a store's
connection (`PostgresStore._db`: autocommit, its schema on the search path).

`fill(db, count)` writes `count` tasks straight into the store's tables, with
one INSERT ... SELECT over generate_series, laid out as a store that has run
for a while: over `MODULES` module ids (`app.m00` ...) twenty tasks each in
turn, and of every twenty 11 done, 2 failed, 1 cancelled, 1 paused, 3 queued
from tomorrow on and 2 queued and due (the oldest first, a second apart,
ending now); priorities 0, 1 and 2 in turn, a key on one task in ten, a run
for each done or failed task. Stores filled with different counts differ
only in how many tasks each module id holds, so a claim walks the same path
in both. `running` more tasks run under a live lease of another host.

`CLAIM_STATEMENTS` names the statements a claim runs (and a keyed schedule's
look-up); `claim_statements(store)` gives each with parameters that find rows
in a filled store, and `plan` explains one: the plan PostgreSQL picks for
those values, or with `generic` the one a prepared statement may settle on
after five runs (psycopg prepares a statement it has run five times).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from typing import Any

from taskcron.model import Scope
from taskcron.store import postgres, postgres_claim
from taskcron.store.postgres import PostgresStore

#: Module ids a filled store spreads its tasks over.
MODULES = 50
#: Whose leases the `running` tasks hold: another host, so none is ever recovered.
ELSEWHERE = "elsewhere"

#: The statements a claim runs, by their names in `PostgresStore.sql` or
#: `taskcron.store.postgres` (the claim function runs them too, and RUNNING_LEASES;
#: the rest of its reads are by primary key).
CLAIM_STATEMENTS = (
    "HEADS",
    "MODULE_TOP_PRIORITY",
    "MODULE_PRIORITY_BELOW",
    "OLDEST_AT_PRIORITY",
    "RUNNING_MODULES",
    "RUNNING_LEASES",
    "SELECT_RUNNING",
    "SELECT_RUNNING_LEASES",
    "SELECT_KEYED_TASK",
)
#: Scan nodes that read through an index; any other scan of a table reads all of it.
INDEX_SCANS = ("Index Scan", "Index Only Scan", "Bitmap Index Scan", "Bitmap Heap Scan")

FILL = """
INSERT INTO tasks (module, title, target, data, priority, state, due_at, attempts,
                   max_attempts, created_at, updated_at, key)
SELECT 'app.m' || lpad(((g / 20) %% %(modules)s)::text, 2, '0'), 'bulk',
       '{"kind": "command", "value": ["true"]}', 'null', (g %% 20) %% 3,
       CASE WHEN %(future)s OR g %% 20 >= 15 THEN 'queued'
            WHEN g %% 20 < 11 THEN 'done' WHEN g %% 20 < 13 THEN 'failed'
            WHEN g %% 20 = 13 THEN 'cancelled' ELSE 'paused' END,
       CASE WHEN %(future)s OR g %% 20 BETWEEN 15 AND 17
            THEN now() + interval '1 day' + g * interval '1 second'
            ELSE now() - (%(count)s - g) * interval '1 second' END,
       CASE WHEN NOT %(future)s AND g %% 20 < 13 THEN 1 ELSE 0 END, 1,
       now() - interval '30 days', now() - (%(count)s - g) * interval '1 second',
       CASE WHEN g %% 10 = 7 THEN 'k' || g END
FROM generate_series(0, %(count)s - 1) AS g
"""
FILL_RUNS = """
INSERT INTO runs (task_id, attempt, started_at, ended_at, elapsed, outcome, host, pid)
SELECT id, 1, updated_at, updated_at, 0.5,
       CASE WHEN state = 'done' THEN 'done' ELSE 'failed' END, %s, 1
FROM tasks WHERE state IN ('done', 'failed')
"""
#: A run for the oldest due task of each of the first `%s` module ids...
START_RUNS = """
INSERT INTO runs (task_id, attempt, started_at, host, machine, pid)
SELECT id, 1, now(), %(host)s, %(host)s, 1 FROM (
    SELECT DISTINCT ON (module) id FROM tasks WHERE state = 'queued' AND due_at <= now()
    ORDER BY module, due_at, id LIMIT %(running)s
) AS oldest
"""
#: ...and those tasks running it, under a lease that lasts a day.
RUN_TASKS = """
UPDATE tasks SET state = 'running', attempts = 1, run_id = runs.id, lease_host = runs.host,
       lease_machine = runs.machine, lease_pid = runs.pid,
       lease_expires_at = now() + interval '1 day'
FROM runs WHERE runs.task_id = tasks.id AND runs.ended_at IS NULL AND tasks.state = 'queued'
"""
#: A claimed task as it was before the claim: queued, without the claim's run.
PUT_BACK_TASK = """
UPDATE tasks SET state = 'queued', attempts = attempts - 1, run_id = NULL, lease_host = NULL,
       lease_machine = NULL, lease_pid = NULL, lease_expires_at = NULL
WHERE id = %s AND run_id = %s
"""
DELETE_RUN = "DELETE FROM runs WHERE id = %s"
#: VACUUM sets the visibility map as autovacuum would have by now, so that an index-only
#: scan's heap fetches, and so the buffers a plan touches, do not depend on when it ran.
SETTLE = ("VACUUM (ANALYZE) tasks", "VACUUM (ANALYZE) runs")


def fill(
    db: Any, count: int, *, future: bool = False, running: int = 0, settle: bool = True
) -> None:
    """`count` tasks laid out as the module docstring says, then `running` of the due
    ones running; with `future`, every task queued and due from tomorrow on.

    Then, with `settle`, VACUUM (ANALYZE): the planner knows the tables as they now are.
    """
    with db.transaction():
        db.execute(FILL, {"count": count, "modules": MODULES, "future": future})
        db.execute(FILL_RUNS, (ELSEWHERE,))
        if running:
            db.execute(START_RUNS, {"host": ELSEWHERE, "running": running})
            db.execute(RUN_TASKS)
    for statement in SETTLE if settle else ():
        db.execute(statement)


def put_back(db: Any, task_id: int, run_id: int) -> None:
    """Undo a claim of `task_id` that opened `run_id`: the store is as before it."""
    with db.transaction():
        if db.execute(PUT_BACK_TASK, (task_id, run_id)).rowcount != 1:
            raise RuntimeError(f"task {task_id} is not running run {run_id}")
        db.execute(DELETE_RUN, (run_id,))


def module_id(number: int) -> str:
    """The module id `fill` gives its `number`th module."""
    return f"app.m{number:02d}"


def claim_statements(store: PostgresStore) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """Each statement of CLAIM_STATEMENTS with parameters a claim would give it in a
    filled store, by name; the scoped ones (the heads, the running tasks) once for every
    module id, and once for one module id's subtree (named "NAME in app.m01")."""
    sql = store.sql
    module = module_id(1)  # it holds a running task when `fill` was given some
    found: dict[str, tuple[str, Mapping[str, Any]]] = {
        "HEADS": (postgres_claim.HEADS.format(below=postgres_claim.NO_BOUND), {"low": ""}),
        "MODULE_TOP_PRIORITY": (sql.MODULE_TOP_PRIORITY, {"module": module}),
        "MODULE_PRIORITY_BELOW": (sql.MODULE_PRIORITY_BELOW, {"module": module, "priority": 2}),
        "OLDEST_AT_PRIORITY": (sql.OLDEST_AT_PRIORITY, {"module": module, "priority": 1}),
        "RUNNING_MODULES": (postgres.RUNNING_MODULES, {}),
        "RUNNING_LEASES": (postgres_claim.RUNNING_LEASES, {}),
    }
    found[f"HEADS in {module}"] = (
        postgres_claim.HEADS.format(below=postgres_claim.BELOW),
        {"low": module, "high": module + "/"},
    )
    for name in ("SELECT_RUNNING", "SELECT_RUNNING_LEASES"):
        for label, scope in ((name, Scope()), (f"{name} in {module}", Scope(modules=(module,)))):
            where, params = store._scope_sql(scope)
            found[label] = (getattr(sql, name).format(scope=where), params)
    # Task 37 is the first queued one with a key in that module (keys: g % 10 == 7).
    found["SELECT_KEYED_TASK"] = (sql.SELECT_KEYED_TASK, {"module": module, "key": "k37"})
    # A key no task has: the lookup goes on to the paused tasks.
    found["SELECT_KEYED_TASK new"] = (sql.SELECT_KEYED_TASK, {"module": module, "key": "new"})
    return found


_names = (f"taskcron_explained_{n}" for n in itertools.count())


def plan(
    db: Any,
    statement: str,
    params: Mapping[str, Any],
    *,
    generic: bool = False,
    analyze: bool = False,
) -> dict[str, Any]:
    """The top node of `statement`'s plan (EXPLAIN's JSON) for `params`.

    `generic`: the plan of the statement prepared, without its values.
    `analyze`: run it too, so that the nodes count rows and buffers.
    """
    options = "FORMAT JSON, ANALYZE, BUFFERS" if analyze else "FORMAT JSON"
    ((document,),) = _explain(db, statement, params, options, generic=generic)
    return document[0]["Plan"]  # type: ignore[no-any-return]


def text(db: Any, statement: str, params: Mapping[str, Any]) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS)'s text for `params`, its lines (without timings)."""
    options = "ANALYZE, BUFFERS, TIMING OFF, SUMMARY OFF"
    return [line for (line,) in _explain(db, statement, params, options, generic=False)]


def _explain(
    db: Any, statement: str, params: Mapping[str, Any], options: str, *, generic: bool
) -> list[Any]:
    from psycopg import sql
    from psycopg.rows import tuple_row

    cursor = db.cursor(row_factory=tuple_row)
    if not generic:
        return cursor.execute(f"EXPLAIN ({options}) {statement}", params).fetchall()
    name = next(_names)
    numbered = {key: n for n, key in enumerate(params, 1)}  # %(key)s -> $n
    prepared = re.sub(r"%\((\w+)\)s", lambda found: f"${numbered[found[1]]}", statement)
    values = sql.SQL(", ").join(sql.Literal(value) for value in params.values())
    run = sql.SQL("EXPLAIN ({}) EXECUTE {}").format(sql.SQL(options), sql.Identifier(name))
    if params:
        run += sql.SQL("({})").format(values)
    with db.transaction():
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(sql.SQL("PREPARE {} AS ").format(sql.Identifier(name)) + sql.SQL(prepared))
        found = cursor.execute(run).fetchall()
        cursor.execute(sql.SQL("DEALLOCATE {}").format(sql.Identifier(name)))
    return found


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """`node` and every node under it."""
    yield node
    for child in node.get("Plans", ()):
        yield from nodes(child)


def sorts(node: dict[str, Any]) -> int:
    """How many Sort nodes there are under `node`: under a LIMIT, a sort reads every
    candidate row, where an index in the right order reads one."""
    return sum(found["Node Type"] in ("Sort", "Incremental Sort") for found in nodes(node))


def table_scans(node: dict[str, Any]) -> list[str]:
    """The nodes under `node` that read a table other than through an index."""
    return [
        found["Node Type"]
        for found in nodes(node)
        if "Relation Name" in found and found["Node Type"] not in INDEX_SCANS
    ]


def buffers(node: dict[str, Any]) -> int:
    """The shared buffers an analyzed plan touched (found in the cache or read)."""
    return int(node["Shared Hit Blocks"]) + int(node["Shared Read Blocks"])


def shape(node: dict[str, Any]) -> str:
    """A plan on one line: `Limit > Index Only Scan using tasks_line`."""
    steps = []
    for found in nodes(node):
        step = found["Node Type"]
        if found.get("Scan Direction") == "Backward":
            step += " Backward"
        if "Index Name" in found:
            step += f" using {found['Index Name']}"
        steps.append(step)
    return " > ".join(steps)
