"""An idle `taskcron tick` on a PostgreSQL store, over its Unix socket: what cron pays
every minute when nothing is due, against starting Python with click and psycopg
imported and one connection opened and closed, which any PostgreSQL tick pays anyway.

Both stores hold the same `tasks` future tasks over 50 module ids (tests/pgstore.py),
so the tick's line walks every module id's head. Beside it, in a note, the same
idle tick on a SQLite store holding the same tasks against the `tick` row's floor.
Runs in the target's interpreter (it fills the stores and starts the server).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests import pgstore
from tests.bench import postgres
from tests.bench.harness import Bench, Figures, Params, row

CONNECT = "import click, psycopg; psycopg.connect({url!r}).close()"


@row(
    name="pg-tick",
    title="idle tick on PostgreSQL ({tasks:,} future tasks) vs floor",
    floor="python -c 'import click, psycopg; psycopg.connect(URL).close()'",
    goal=1.3,
    unit="ms",
    quick={"runs": 3, "tasks": 10_000},
    full={"runs": 21, "tasks": 10_000},
    in_target=True,
)
def pg_tick(bench: Bench, params: Params) -> Figures:
    """Idle `taskcron tick` with TASKCRON_STORE naming a local PostgreSQL database
    against connecting to it from a Python that imported click and psycopg."""
    from taskcron.store.postgres import PostgresStore

    tasks = params["tasks"]
    with postgres.server() as server:
        url = server.fresh_database()
        home = bench.directory("postgres")
        bench.command(bench.script, "init", home=home, TASKCRON_STORE=url).run()
        with PostgresStore(url) as store:
            pgstore.fill(store._db, tasks, future=True)
        figures = bench.time(
            bench.command(bench.script, "tick", home=home, TASKCRON_STORE=url),
            bench.command(bench.python, "-c", CONNECT.format(url=url), home=home),
        )
    sqlite = sqlite_tick(bench, tasks)
    return Figures(
        value=figures.value,
        floor=figures.floor,
        notes=(
            f"SQLite beside it, the same {tasks:,} tasks: idle tick"
            f" {sqlite.value.median * 1e3:.1f} ms vs {sqlite.floor.median * 1e3:.1f} ms for"
            f" python -c 'import click, sqlite3': {sqlite.value.median / sqlite.floor.median:.2f}x",
            f"PostgreSQL's idle tick / SQLite's: {figures.value.median / sqlite.value.median:.2f}x;"
            f" their floors: {figures.floor.median / sqlite.floor.median:.2f}x",
        ),
    )


def sqlite_tick(bench: Bench, tasks: int) -> Figures:
    """The `tick` row's measure on a SQLite store holding `tasks` future tasks like the
    PostgreSQL one."""
    home = bench.directory("sqlite")
    bench.command(bench.script, "init", home=home).run()
    fill_future(home / "tasks.db", tasks)
    return bench.time(
        bench.command(bench.script, "tick", home=home),
        bench.command(bench.python, "-c", "import click, sqlite3", home=home),
    )


def fill_future(path: Path, count: int) -> None:
    """`count` queued tasks in the SQLite store at `path`, due from tomorrow on, over the
    module ids `pgstore.fill` uses."""
    from taskcron.store.sqlite import SqliteStore

    now = datetime.now(timezone.utc)
    rows = []
    for i in range(count):
        due = int((now + timedelta(days=1, seconds=i)).timestamp() * 1_000_000)
        module = pgstore.module_id(i // 20 % pgstore.MODULES)
        target = '{"kind": "command", "value": ["true"]}'
        rows.append((module, "bulk", target, "null", i % 20 % 3, due, due, due))
    with SqliteStore(path) as store:
        store._db.execute("BEGIN")
        store._db.executemany(
            "INSERT INTO tasks (module, title, target, data, priority, state, due_at,"
            " attempts, max_attempts, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 'queued', ?, 0, 1, ?, ?)",
            rows,
        )
        store._db.execute("COMMIT")
