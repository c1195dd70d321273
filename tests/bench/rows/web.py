"""The dashboard's pages cost what they cost on a small store: no page reads every task.

Two SQLite homes are filled in SQL (`fill`): 100 tasks and `tasks` tasks,
alike but for how many each module id holds; then two PostgreSQL stores on a
private server, filled alike (`tests.pgstore.fill`, analyzed as autovacuum
would have), when a server can start here (else those cases are left out,
saying why). The overview (`/`), the first
page of the tasks (`/tasks`) and the same as JSON (`/api/tasks`) are asked
of the dashboard's Starlette app in this process, through Starlette's test
client with the Bearer token (no socket, no server: what is timed is the
routes, the API and the store), `rounds` requests a run, the two homes
taking turns. Runs in the target's interpreter (it opens stores); skipped
without the `web` extra and httpx2 (the test client's).
"""

from __future__ import annotations

import functools
import importlib
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.bench import postgres
from tests.bench.harness import Bench, Figures, Params, Skipped, row

SMALL = 100
#: The pages timed, each a case of the row on each store.
PATHS = ("/", "/tasks", "/api/tasks")
#: The cases on PostgreSQL: a page's path and this.
ON_POSTGRES = " on PostgreSQL"
#: Module ids the tasks are spread over (`app.m00` ...), one task each in turn.
MODULES = 50
#: Tasks running (the first due ones) under a lease of another host, in each home.
RUNNING = 3
TOKEN = "the-benchmark-token-0123456789"
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)

#: `?1` tasks, the `g`th of module `g % MODULES` (`?2`), and of every twenty in turn
#: 6 done, 2 failed, 1 cancelled, 1 paused, 4 queued and due (a second apart, ending
#: `?3`, in micro-seconds) and 6 queued from a day after it on: 13 of every 20 active,
#: so that at 100 stored the first page of the active tasks is full, as at any size.
#: Priorities 0, 1 and 2 in turn; a run for each done or failed task.
FILL = """
WITH RECURSIVE n(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM n WHERE g + 1 < ?1)
INSERT INTO tasks (module, title, target, data, priority, state, due_at, attempts,
                   max_attempts, created_at, updated_at)
SELECT printf('app.m%02d', g % ?2), 'bulk ' || g, '{"kind": "command", "value": ["true"]}',
       'null', g % 3,
       CASE WHEN g % 20 < 6 THEN 'done' WHEN g % 20 < 8 THEN 'failed'
            WHEN g % 20 = 8 THEN 'cancelled' WHEN g % 20 = 9 THEN 'paused'
            ELSE 'queued' END,
       CASE WHEN g % 20 >= 14 THEN ?3 + 86400000000 + g * 1000000
            ELSE ?3 - (?1 - g) * 1000000 END,
       CASE WHEN g % 20 < 8 THEN 1 ELSE 0 END, 1,
       ?3 - 30 * 86400000000, ?3 - (?1 - g) * 1000000
FROM n
"""
FILL_RUNS = """
INSERT INTO runs (task_id, attempt, started_at, ended_at, elapsed, outcome, exit_code,
                  host, pid)
SELECT id, 1, updated_at, updated_at, 0.5, CASE WHEN state = 'done' THEN 'done' ELSE 'failed' END,
       CASE WHEN state = 'done' THEN 0 ELSE 1 END, 'elsewhere', 1
FROM tasks WHERE state IN ('done', 'failed')
"""
START_RUNS = """
INSERT INTO runs (task_id, attempt, started_at, host, machine, pid)
SELECT id, 1, ?2, 'elsewhere', 'elsewhere', 1 FROM tasks INDEXED BY tasks_state
WHERE state = 'queued' AND due_at <= ?2 ORDER BY due_at, id LIMIT ?1
"""
RUN_TASKS = """
UPDATE tasks SET state = 'running', attempts = 1, run_id = runs.id, lease_host = runs.host,
       lease_machine = runs.machine, lease_pid = runs.pid,
       lease_expires_at = ?1 + 86400000000
FROM runs WHERE runs.task_id = tasks.id AND runs.ended_at IS NULL AND tasks.state = 'queued'
"""


@row(
    name="web",
    title="a dashboard page at {tasks:,} stored vs 100 stored (in-process: Starlette's"
    " TestClient, Bearer token)",
    floor="the same page at 100 stored",
    goal=2.0,
    unit="ms",
    quick={"runs": 3, "tasks": 10_000, "rounds": 3},
    full={"runs": 15, "tasks": 100_000, "rounds": 10},
    in_target=True,
    cases=PATHS + tuple(path + ON_POSTGRES for path in PATHS),
)
def web(bench: Bench, params: Params) -> list[Figures]:
    """Median time of one request of each of `PATHS` with `tasks` stored against 100."""
    for name in ("starlette", "jinja2", "httpx2"):
        try:
            importlib.import_module(name)
        except ImportError:
            raise Skipped(f"{name} is not installed (the web extra, httpx2)") from None
    rounds = params["rounds"]
    with ExitStack() as stack:
        small = stack.enter_context(dashboard(bench.directory("small"), SMALL))
        large = stack.enter_context(dashboard(bench.directory("large"), params["tasks"]))
        found = pages(bench, small, large, rounds)
    try:
        with ExitStack() as stack:
            server = stack.enter_context(postgres.server())
            small = stack.enter_context(pg_dashboard(bench.directory("pg-small"), server, SMALL))
            count = params["tasks"]
            large = stack.enter_context(pg_dashboard(bench.directory("pg-large"), server, count))
            found += pages(bench, small, large, rounds, suffix=ON_POSTGRES)
    except Skipped as skipped:
        found[-1] = replace(found[-1], notes=(*found[-1].notes, f"PostgreSQL: {skipped}"))
    return found


def pages(bench: Bench, small: Any, large: Any, rounds: int, *, suffix: str = "") -> list[Figures]:
    """Each of `PATHS` timed on the large store against the small one."""
    found = []
    for path in PATHS:
        figures = bench.time(
            functools.partial(ask, large, path, rounds),
            functools.partial(ask, small, path, rounds),
            per=rounds,
        )
        found.append(Figures(value=figures.value, floor=figures.floor, case=path + suffix))
    return found


@contextmanager
def dashboard(home: Path, count: int) -> Iterator[Any]:
    """A test client of the dashboard over a home of `count` tasks (see `fill`)."""
    from starlette.testclient import TestClient

    from taskcron import TaskCron
    from taskcron.config import Config
    from taskcron.store.sqlite import SqliteStore
    from taskcron.web import Settings
    from taskcron.web.routes import build

    path = home / "tasks.db"
    SqliteStore(path).close()
    fill(path, count)
    settings = Settings(host="127.0.0.1", port=8765, token=TOKEN)
    with (
        TaskCron(config=Config(home=home), clock=lambda: NOW) as app,
        TestClient(build(app, settings), headers={"Authorization": f"Bearer {TOKEN}"}) as client,
    ):
        for path_ in PATHS:
            ask(client, path_, 1)
        yield client


@contextmanager
def pg_dashboard(home: Path, server: Any, count: int) -> Iterator[Any]:
    """A test client of the dashboard over a PostgreSQL store of `count` tasks on
    `server`, laid out as `tests.pgstore.fill` does."""
    from starlette.testclient import TestClient

    from taskcron import TaskCron
    from taskcron.config import Config
    from taskcron.store.postgres import PostgresStore
    from taskcron.web import Settings
    from taskcron.web.routes import build
    from tests import pgstore

    url = server.fresh_database()
    with PostgresStore(url) as store:
        pgstore.fill(store._db, count, running=RUNNING)
    settings = Settings(host="127.0.0.1", port=8765, token=TOKEN)
    with (
        TaskCron(config=Config(home=home, store=url)) as app,
        TestClient(build(app, settings), headers={"Authorization": f"Bearer {TOKEN}"}) as client,
    ):
        for path_ in PATHS:
            ask(client, path_, 1)
        yield client


def fill(path: Path, count: int) -> None:
    """`count` tasks written straight into the store at `path` (see FILL), `RUNNING` of
    the due ones running. No ANALYZE: the store never runs one either."""
    from taskcron.store.sqlite import to_micros

    now = to_micros(NOW)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN")
        db.execute(FILL, (count, MODULES, now))
        db.execute(FILL_RUNS)
        db.execute(START_RUNS, (RUNNING, now))
        db.execute(RUN_TASKS, (now,))
        db.execute("COMMIT")
    finally:
        db.close()


def ask(client: Any, path: str, rounds: int) -> None:
    """GET `path` `rounds` times; fail on anything but a 200."""
    for _ in range(rounds):
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")
