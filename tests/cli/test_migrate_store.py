"""`taskcron migrate-store --to URL`: every task and run copied into an empty store, ids kept.

The source is a real home filled through the API with the fake clock (tasks run for
real, in forked children); the move and everything after it run the installed
`taskcron` script as subprocesses, against real SQLite files and a real PostgreSQL.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from taskcron import TaskCron
from taskcron.api import watch_missed
from taskcron.logstore import LogStore, iter_all, record
from taskcron.model import Outcome, Recurrence, State, Task
from taskcron.store import open_store
from taskcron.store.protocol import OutcomeMinute, OutcomeTotal
from tests.conftest import FakeClock, clean_env, script, taskcron_in, wait_for

ERROR = "taskcron: error: "
#: Before every minute a store counts runs in.
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: Rotated log files the tests' homes keep.
BACKUPS = 40

HANDLERS = """
import taskcron

def send(ctx, data):
    print("sending", data["n"])
    return {"sent": data["n"]}

def boom(ctx, data):
    print("about to fail")
    raise ValueError("no invoices today")

def job(ctx, data):
    done = ctx.state.get("done", 0) + 3
    ctx.state["done"] = done
    ctx.progress(done, data["rows"], f"imported {done} rows")
    raise taskcron.Continue()
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An application directory: a handlers module and a taskcron.toml (home `state`)."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "movetasks.py").write_text(HANDLERS)
    (app / "taskcron.toml").write_text('home = "state"\n')
    return app


@pytest.fixture
def source(project: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project's store, filled with tasks of every kind and runs of every outcome.

    Returns the store file; the task module `now` is a one-off task due now.
    """
    monkeypatch.chdir("/")
    monkeypatch.delenv("TASKCRON_HOME", raising=False)
    with TaskCron(config=str(project / "taskcron.toml"), clock=clock) as tc:
        fill(tc, clock)
    return project / "state" / "tasks.db"


def fill(tc: TaskCron, clock: FakeClock) -> None:
    tc.schedule(
        "billing.invoices",
        call="movetasks:send",
        data={"n": 3},
        priority=5,
        title="send invoices",
        timeout="90s",
    )
    assert tc.tick(modules=["billing.invoices"]).outcome == "ran"
    tc.schedule("billing.boom", call="movetasks:boom", max_attempts=2)
    tc.tick(modules=["billing.boom"])
    clock.advance(timedelta(minutes=5))
    tc.tick(modules=["billing.boom"])
    tc.schedule("import.csv", call="movetasks:job", data={"rows": 9})
    for _ in range(2):
        assert tc.tick(modules=["import"]).outcome == "ran"
        clock.advance(1)
    weekly = tc.schedule(
        "reports.weekly",
        command=["echo", "weekly report"],
        cron="0 6 * * mon",
        tz="Europe/Berlin",
        max_lateness="1h",
    )
    clock.advance(weekly.due_at - clock.now)
    assert tc.tick(modules=["reports"]).outcome == "ran"
    tc.schedule("cleanup", command=["true"], every="5m", owner="ops")
    tc.schedule("mail.welcome", command=["true"], delay="10m", key="welcome-42", owner="user-7")
    tc.pause(tc.schedule("held", command=["true"]).id)
    tc.cancel(tc.schedule("withdrawn", command=["true"]).id)
    tc.remove(tc.schedule("gone", command=["true"]).id)
    tc.schedule("now", command=["echo", "ran on the new store"])


def dump(url: str) -> list[Task]:
    """Every task of the store at `url` with its runs, read as the store keeps them."""
    store = open_store(url, create=False)
    try:
        return list(store.dump())
    finally:
        store.close()


def counted(url: str) -> tuple[tuple[OutcomeTotal, ...], tuple[OutcomeMinute, ...]]:
    """The runs the store at `url` counts by module id and outcome, and by minute."""
    store = open_store(url, create=False)
    try:
        return store.outcome_totals(), store.outcome_minutes(since=EPOCH)
    finally:
        store.close()


def home_log(project: Path) -> list[dict[str, Any]]:
    """Every record of the project's home's log files, oldest first, rotated ones too."""
    return list(iter_all(LogStore(project / "state" / "log", backups=BACKUPS)))


def write_history(project: Path, count: int) -> None:
    """`count` records of output lines (ten a second) more in the home's log files, rotated
    across several files (the config reads them all), then a record without a time and a
    stray line."""
    (project / "taskcron.toml").write_text(
        f'home = "state"\n[log]\nmax_bytes = 5000\nbackups = {BACKUPS}\n'
    )
    files = LogStore(project / "state" / "log", max_bytes=5000, backups=BACKUPS)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for first in range(0, count, 10):
        files.append(
            *(
                record(
                    "task.output",
                    at=start + timedelta(seconds=n // 10),
                    host="old-host",
                    task=1,
                    module="import.csv",
                    message=f"imported row {n}",
                )
                for n in range(first, min(first + 10, count))
            )
        )
    files.write(b'{"event": "no.time"}\nnot a record\n')
    assert len(files.rotated()) > 2


def shown_log(project: Path, url: str) -> list[dict[str, Any]]:
    """What `taskcron log --json` shows of the store at `url`: every record."""
    shown = migrate(project, "--store", url, "log", "--lines", "100000", "--json")
    assert (shown.returncode, shown.stderr) == (0, "")
    return [json.loads(line) for line in shown.stdout.splitlines()]


def log_table(url: str) -> list[tuple[Any, ...]]:
    """The rows of the `log` table of the PostgreSQL store at `url`, by id (without it)."""
    import psycopg

    from taskcron.store.postgres import split_url

    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo, options=f"-c search_path={schema}") as db:
        rows = db.execute(
            "SELECT id, at, host, level, event, task_id, module, record FROM log ORDER BY id"
        ).fetchall()
    return [row[1:] for row in rows]


def in_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def migrate(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return taskcron_in(project, *args)


def counts(tasks: list[Task]) -> tuple[int, int]:
    return len(tasks), sum(len(task.runs) for task in tasks)


def with_password(url: str, password: str) -> tuple[str, str]:
    """`url` with `password` in it, and the password it holds (the server's own, if any)."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    netloc = f"{parts.username or ''}:{password}@{parts.netloc.rpartition('@')[2]}"
    return parts._replace(netloc=netloc).geturl(), password


# --- moving ------------------------------------------------------------------


def test_a_store_moves_from_sqlite_to_postgresql_with_every_task_and_run_as_it_was(
    project: Path, source: Path, postgres_url: str
) -> None:
    before = source.read_bytes()
    original = dump(sqlite_url(source))
    tasks, runs = counts(original)
    records = len(home_log(project))

    result = migrate(project, "migrate-store", "--to", postgres_url)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        f"copied {tasks} tasks, {runs} runs and {records} log records from {sqlite_url(source)}"
        f" to {postgres_url}",
        f"to use it, set in {project / 'taskcron.toml'} (or give --store or TASKCRON_STORE):",
        f'store = "{postgres_url}"',
    ]
    moved = dump(postgres_url)
    assert moved == original
    assert [t.to_json() for t in moved] == [t.to_json() for t in original]
    assert source.read_bytes() == before
    assert dump(sqlite_url(source)) == original


def test_the_source_holds_every_kind_of_task_the_move_must_keep(source: Path) -> None:
    """The move's tests are only as good as their source: check that it is rich."""
    tasks = {task.module: task for task in dump(sqlite_url(source))}
    done, failed, job = tasks["billing.invoices"], tasks["billing.boom"], tasks["import.csv"]
    assert (done.state, done.result, done.priority) == (State.DONE, {"sent": 3}, 5)
    assert done.timeout == timedelta(seconds=90)
    assert done.runs[0].output_tail == "sending 3\n" and done.runs[0].child_pid is not None
    assert failed.state is State.FAILED and len(failed.runs) == 2
    assert all("ValueError: no invoices today" in (r.traceback or "") for r in failed.runs)
    assert (job.steps, job.step_state_json) == (2, '{"done": 6}')
    assert job.progress is not None and job.progress.message == "imported 6 rows"
    assert [r.outcome for r in job.runs] == [Outcome.CONTINUED] * 2
    weekly = tasks["reports.weekly"]
    assert weekly.recurrence == Recurrence(cron="0 6 * * mon", tz="Europe/Berlin")
    assert weekly.max_lateness == timedelta(hours=1) and weekly.runs[0].host
    assert tasks["cleanup"].recurrence == Recurrence(every=timedelta(minutes=5))
    assert (tasks["mail.welcome"].key, tasks["mail.welcome"].owner) == ("welcome-42", "user-7")
    assert tasks["held"].state is State.PAUSED
    assert tasks["withdrawn"].state is State.CANCELLED
    assert "gone" not in tasks
    assert sorted(task.id for task in tasks.values()) != list(range(1, len(tasks) + 1))


def test_after_the_move_new_ids_follow_the_copied_ones_and_a_tick_runs_the_due_task(
    project: Path, source: Path, postgres_url: str
) -> None:
    original = dump(sqlite_url(source))
    assert migrate(project, "migrate-store", "--to", postgres_url).returncode == 0

    scheduled = migrate(
        project, "--store", postgres_url, "schedule", "later", "--in", "1d", "--", "true"
    )
    assert (scheduled.returncode, scheduled.stderr) == (0, "")
    assert int(scheduled.stdout) > max(task.id for task in original)
    ticked = migrate(project, "--store", postgres_url, "tick", "--module", "now")
    assert (ticked.returncode, ticked.stdout, ticked.stderr) == (0, "", "")

    now = next(task for task in dump(postgres_url) if task.module == "now")
    assert now.state is State.DONE
    assert now.runs[-1].output_tail == "ran on the new store\n"
    assert now.runs[-1].id > max(run.id for task in original for run in task.runs)


def test_a_store_moves_back_from_postgresql_to_sqlite_as_it_was(
    project: Path, source: Path, postgres_url: str, tmp_path: Path
) -> None:
    original = dump(sqlite_url(source))
    back = tmp_path / "back" / "tasks.db"
    assert migrate(project, "migrate-store", "--to", postgres_url).returncode == 0

    result = migrate(project, "--store", postgres_url, "migrate-store", "--to", sqlite_url(back))

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines()[0].endswith(f"from {postgres_url} to {sqlite_url(back)}")
    assert dump(sqlite_url(back)) == original
    scheduled = migrate(project, "--store", sqlite_url(back), "schedule", "later", "--", "true")
    assert int(scheduled.stdout) > max(task.id for task in original)


def test_the_runs_counted_by_module_and_minute_move_there_and_back(
    project: Path, source: Path, postgres_url: str, tmp_path: Path
) -> None:
    totals, minutes = counted(sqlite_url(source))
    assert sum(t.runs for t in totals) == 6 and len(totals) == 4
    assert [(m.module, m.runs) for m in minutes] == [("reports.weekly", 1)]  # two days kept
    tc = TaskCron(config=str(project / "taskcron.toml"))
    tc.remove(next(t.id for t in dump(sqlite_url(source)) if t.module == "billing.boom"))
    tc.close()
    back = tmp_path / "back" / "tasks.db"

    assert migrate(project, "migrate-store", "--to", postgres_url).returncode == 0
    assert counted(postgres_url) == (totals, minutes)
    moved = migrate(project, "--store", postgres_url, "migrate-store", "--to", sqlite_url(back))
    assert moved.returncode == 0
    assert counted(sqlite_url(back)) == (totals, minutes)


def test_the_missed_runs_and_alerts_counted_move_there_and_back(
    project: Path, source: Path, postgres_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    with TaskCron(config=str(project / "taskcron.toml"), clock=clock) as tc:
        tc.schedule("late.nightly", command=["true"], every="1d", missed_after="1m")
        clock.advance(timedelta(days=2))
        assert "late.nightly" in {task.module for task in watch_missed(tc)}
    store = open_store(sqlite_url(source), create=False)
    try:
        store.note_alerted(1, {}, channels={("ops", "mailto"): 2})
        counters = store.counters()
    finally:
        store.close()
    assert {(c.name, tuple(c.labels.values()), c.value) for c in counters} >= {
        ("missed", ("late.nightly",), 1),
        ("alerts", ("mailto", "ops"), 2),
    }
    back = tmp_path / "back" / "tasks.db"

    assert migrate(project, "migrate-store", "--to", postgres_url).returncode == 0
    moved = migrate(project, "--store", postgres_url, "migrate-store", "--to", sqlite_url(back))

    assert moved.returncode == 0, moved.stderr
    for url in (postgres_url, sqlite_url(back)):
        store = open_store(url, create=False)
        try:
            assert store.counters() == counters, url
        finally:
            store.close()


def test_the_json_output_names_the_counts_and_the_config_line(project: Path, source: Path) -> None:
    original = dump(sqlite_url(source))
    target = project / "copy.db"

    result = migrate(project, "migrate-store", "--to", "sqlite:///copy.db", "--json")

    assert (result.returncode, result.stderr) == (0, "")
    tasks, runs = counts(original)
    assert json.loads(result.stdout) == {
        "source": sqlite_url(source),
        "target": sqlite_url(target),
        "tasks": tasks,
        "runs": runs,
        "log_records": None,
        "log_records_left": 0,
        "config": f'store = "{sqlite_url(target)}"',
    }
    assert dump(sqlite_url(target)) == original
    scheduled = migrate(project, "--store", sqlite_url(target), "schedule", "later", "--", "true")
    assert int(scheduled.stdout) > max(task.id for task in original)


def test_the_password_of_the_target_is_never_printed(
    project: Path, source: Path, postgres_url: str
) -> None:
    url, password = with_password(postgres_url, "s3cret-pw")
    shown = postgres_url if urlsplit(postgres_url).password is None else None

    result = migrate(project, "migrate-store", "--to", url)

    assert (result.returncode, result.stderr) == (0, "")
    assert password not in result.stdout
    if shown is not None:
        assert f'store = "{shown}"' in result.stdout.splitlines()
    assert result.stdout.splitlines()[-1] == (
        "(the password is left out: keep it in ~/.pgpass or PGPASSWORD)"
    )
    logged = (project / "state" / "log" / "taskcron.jsonl").read_text()
    assert '"event": "store.copied"' in logged and password not in logged


# --- the log -----------------------------------------------------------------


def test_to_postgresql_the_homes_log_files_go_into_the_log_table_in_order(
    project: Path, source: Path, postgres_url: str
) -> None:
    write_history(project, 700)
    kept = [rec for rec in home_log(project) if "ts" in rec]

    result = migrate(project, "migrate-store", "--to", postgres_url, "--json")

    assert (result.returncode, result.stderr) == (0, "")
    said = json.loads(result.stdout)
    assert (said["log_records"], said["log_records_left"]) == (len(kept), 0)
    assert len(kept) > 700
    assert shown_log(project, postgres_url) == kept
    assert len(log_table(postgres_url)) < len(kept)  # output lines share rows, as on a host
    copied = home_log(project)[-1]
    assert (copied["event"], copied["records"]) == ("store.copied", len(kept))
    assert "records_left" not in copied


def test_from_postgresql_to_postgresql_the_log_table_is_copied_row_by_row_in_order(
    project: Path, source: Path, postgres_url: str
) -> None:
    write_history(project, 300)
    assert migrate(project, "migrate-store", "--to", postgres_url).returncode == 0
    ticked = migrate(project, "--store", postgres_url, "tick", "--module", "now")
    assert ticked.returncode == 0
    rows, shown = log_table(postgres_url), shown_log(project, postgres_url)
    other = in_schema(postgres_url, "moved")

    result = migrate(project, "--store", postgres_url, "migrate-store", "--to", other)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines()[0] == (
        f"copied 9 tasks, 7 runs and {len(shown)} log records from {postgres_url} to {other}"
    )
    assert log_table(other) == rows
    assert shown_log(project, other) == shown
    assert shown_log(project, postgres_url)[:-1] == shown
    assert shown_log(project, postgres_url)[-1]["records"] == len(shown)


def test_to_sqlite_the_log_table_stays_behind_and_says_how_many_records(
    project: Path, source: Path, postgres_url: str, tmp_path: Path
) -> None:
    write_history(project, 100)
    assert migrate(project, "migrate-store", "--to", postgres_url).returncode == 0
    shown, files = shown_log(project, postgres_url), home_log(project)
    back, again = tmp_path / "back" / "tasks.db", tmp_path / "again" / "tasks.db"

    result = migrate(project, "--store", postgres_url, "migrate-store", "--to", sqlite_url(back))
    as_json = migrate(
        project, "--store", postgres_url, "migrate-store", "--to", sqlite_url(again), "--json"
    )

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines()[:2] == [
        f"copied 9 tasks and 6 runs from {postgres_url} to {sqlite_url(back)}",
        f"left {len(shown)} log records in the log table of {postgres_url}: a SQLite store"
        f" keeps none (read them with: taskcron --store {shlex.quote(postgres_url)} log)",
    ]
    said = json.loads(as_json.stdout)
    assert (said["log_records"], said["log_records_left"]) == (None, len(shown) + 1)
    assert shown_log(project, postgres_url)[: len(shown)] == shown
    copied = home_log(project)[len(files)]
    assert (copied["event"], copied["records_left"]) == ("store.copied", len(shown))
    assert "records" not in copied and home_log(project)[: len(files)] == files


def test_a_copy_that_fails_in_the_log_leaves_the_target_empty_and_a_retry_works(
    project: Path, source: Path, postgres_url: str
) -> None:
    import psycopg

    from taskcron.store.postgres import split_url

    write_history(project, 100)
    open_store(postgres_url).close()
    conninfo, schema = split_url(postgres_url)
    with psycopg.connect(conninfo, options=f"-c search_path={schema}", autocommit=True) as db:
        db.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'no room for the log'; END $$"
        )
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON log EXECUTE FUNCTION refuse()")
        totals = counted(sqlite_url(source))

        result = migrate(project, "migrate-store", "--to", postgres_url)

        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == f"{ERROR}store {postgres_url}: no room for the log\n"
        assert (dump(postgres_url), counted(postgres_url), log_table(postgres_url)) == (
            [],
            ((), ()),
            [],
        )
        db.execute("DROP TRIGGER refuse ON log")
    retried = migrate(project, "migrate-store", "--to", postgres_url)
    assert retried.returncode == 0
    assert counted(postgres_url) == totals
    assert shown_log(project, postgres_url) == [r for r in home_log(project)[:-1] if "ts" in r]


# --- refusing ----------------------------------------------------------------


def test_a_target_that_holds_tasks_is_refused_and_left_as_it_was(
    project: Path, source: Path, postgres_url: str
) -> None:
    held = migrate(project, "--store", postgres_url, "schedule", "kept", "--", "true")
    assert held.returncode == 0
    before = dump(postgres_url)

    result = migrate(project, "migrate-store", "--to", postgres_url)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"{ERROR}store {postgres_url} already holds 1 task and 0 runs: tasks are copied into"
        " an empty store only; nothing was written\n"
    )
    assert dump(postgres_url) == before


def test_the_move_is_refused_while_a_task_runs_and_creates_no_target(
    project: Path, source: Path, tmp_path: Path
) -> None:
    started, stop = tmp_path / "started", tmp_path / "stop"
    wait = f"touch {started}; while [ ! -e {stop} ]; do sleep 0.02; done"
    scheduled = migrate(project, "schedule", "slow", "--", "sh", "-c", wait)
    task_id = int(scheduled.stdout)
    tick = subprocess.Popen(
        [script(), "tick", "--module", "slow"], cwd=project, env=clean_env(), text=True
    )
    try:
        wait_for(started.exists)
        target = tmp_path / "new" / "tasks.db"

        result = migrate(project, "migrate-store", "--to", sqlite_url(target))

        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            f"{ERROR}task {task_id} is running: wait for it to finish, or stop the ticks and"
            " workers, then try again\n"
        )
        assert not target.parent.exists()
    finally:
        stop.touch()
        assert tick.wait(timeout=60) == 0


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("mysql://db/tasks", "scheme 'mysql'"),
        ("tasks.db", "no scheme"),
        ("sqlite:///", "it names no file"),
        ("postgresql://u:secret@db:port/tasks", "Port could not be cast"),
        ("postgresql://u:secret@[::1/tasks", "Invalid IPv6 URL"),
        ("postgresql://u:secret@db/tasks?schema=Bad", "must be a lower-case identifier"),
    ],
)
def test_a_malformed_target_url_is_bad_input_that_writes_nothing(
    project: Path, source: Path, url: str, why: str
) -> None:
    if url.startswith("postgresql"):
        pytest.importorskip("psycopg")
    before = source.read_bytes()

    result = migrate(project, "migrate-store", "--to", url)

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(ERROR + "invalid store URL ")
    assert why in result.stderr and "secret" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert sorted(p.name for p in project.iterdir()) == ["movetasks.py", "state", "taskcron.toml"]
    assert source.read_bytes() == before


def test_an_unreachable_server_is_exit_1_without_the_password(project: Path, source: Path) -> None:
    pytest.importorskip("psycopg")
    result = migrate(project, "migrate-store", "--to", "postgresql://u:secret@127.0.0.1:1/tasks")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(
        f"{ERROR}cannot connect to store postgresql://u@127.0.0.1:1/tasks: "
    )
    assert len(result.stderr.splitlines()) == 1 and "secret" not in result.stderr


def test_the_current_store_is_no_target(project: Path, source: Path) -> None:
    result = migrate(project, "migrate-store", "--to", "sqlite:///state/tasks.db")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"{ERROR}invalid --to {sqlite_url(project / 'state' / 'tasks.db')!r}: it is the current"
        " store; name another one\n"
    )


def test_a_home_without_a_store_has_nothing_to_move(tmp_path: Path) -> None:
    (tmp_path / ".taskcron").mkdir()
    result = taskcron_in(tmp_path, "migrate-store", "--to", "sqlite:///new.db")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(f"{ERROR}no store at sqlite:///")
    assert not (tmp_path / "new.db").exists()
