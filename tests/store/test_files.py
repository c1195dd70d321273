"""The store's files (SqliteStore): permissions, refusals that leave files untouched,
opening without creating, schema migrations, and many processes opening a new store
at once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from taskcron import TaskCron, errors
from taskcron.config import Config
from taskcron.model import Outcome, Scope, State
from taskcron.store import PoolLease, sqlite_schema
from taskcron.store import sqlite as sqlite_module
from taskcron.store.sqlite import APPLICATION_ID, SCHEMA_VERSION, SqliteStore
from tests.store.conftest import HOST, T0, new_task

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def pragma(path: Path, name: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(f"PRAGMA {name}").fetchone()[0])
    finally:
        db.close()


# --- permissions --------------------------------------------------------------


@pytest.mark.usefixtures("umask_022")
def test_the_home_is_created_0700_and_the_store_0600_under_a_permissive_umask(
    tmp_path: Path,
) -> None:
    home = tmp_path / "parent" / "home"
    with TaskCron(config=Config(home=home), clock=lambda: T0) as app:
        app.schedule("m", command=["true"])
        db = home / "tasks.db"
        assert mode(home) == 0o700
        assert mode(db) == 0o600
        for companion in (home / "tasks.db-wal", home / "tasks.db-shm"):
            if companion.exists():
                assert mode(companion) == 0o600, companion


@pytest.mark.usefixtures("umask_022")
def test_a_store_opened_directly_is_created_0600(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    with SqliteStore(path) as store:
        store.schedule(new_task(), now=T0)
        assert mode(path) == 0o600


# --- refusals -----------------------------------------------------------------


def test_a_store_from_a_newer_taskcron_is_refused_and_left_byte_for_byte(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tasks.db"
    with SqliteStore(path) as store:
        store.schedule(new_task(), now=T0)
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    before = snapshot(path)

    with pytest.raises(errors.StoreVersionError) as caught:
        SqliteStore(path)

    assert caught.value.found == 99
    assert caught.value.supported == SCHEMA_VERSION
    assert snapshot(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.db"]
    assert pragma(path, "user_version") == 99


def test_a_sqlite_file_of_another_application_is_refused_and_left_untouched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tasks.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE foo (bar TEXT)")
    db.execute("INSERT INTO foo VALUES ('keep me')")
    db.commit()
    db.close()
    before = snapshot(path)

    with pytest.raises(errors.ForeignStoreError):
        SqliteStore(path)

    assert snapshot(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.db"]
    assert pragma(path, "application_id") == 0


@pytest.mark.parametrize(
    "content",
    [b"hello\n", b"not a database, just some notes\n" * 200, bytes(range(256)) * 8],
    ids=["short-text", "long-text", "binary"],
)
def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "tasks.db"
    path.write_bytes(content)
    before = snapshot(path)

    with pytest.raises(errors.ForeignStoreError):
        SqliteStore(path)

    assert snapshot(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.db"]


@pytest.mark.parametrize("name", ["tasks.db", "home/tasks.db"], ids=["no-file", "no-home"])
def test_a_missing_store_opened_without_create_is_refused_and_nothing_is_created(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / name

    with pytest.raises(errors.StoreMissingError) as caught:
        SqliteStore(path, create=False)

    assert isinstance(caught.value, errors.StoreError)
    assert caught.value.where == str(path)
    assert str(caught.value) == f"no store at {path}: run 'taskcron init' to create one"
    assert list(tmp_path.iterdir()) == []


def test_an_existing_store_opens_without_create(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    with SqliteStore(path, host=HOST) as store:
        task = store.schedule(new_task(), now=T0)

    with SqliteStore(path, create=False, host=HOST) as store:
        assert store.get(task.id) == task


def test_a_store_opens_at_a_path_with_characters_special_in_uris(tmp_path: Path) -> None:
    home = tmp_path / "50% off #1?"
    home.mkdir()

    with SqliteStore(home / "tasks.db", host=HOST) as store:
        task = store.schedule(new_task(), now=T0)
    with SqliteStore(home / "tasks.db", create=False, host=HOST) as store:
        assert store.get(task.id) == task

    assert pragma(home / "tasks.db", "user_version") == SCHEMA_VERSION
    assert sorted(p.name for p in tmp_path.iterdir()) == [home.name]


def test_an_empty_file_becomes_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    path.touch()

    with SqliteStore(path) as store:
        assert store.migrated_from is None
        store.schedule(new_task(), now=T0)

    assert pragma(path, "user_version") == SCHEMA_VERSION


# --- errors -------------------------------------------------------------------


def test_sqlites_full_disk_code_is_a_disk_full_store_error_whatever_its_text(
    tmp_path: Path,
) -> None:
    cause = sqlite3.OperationalError("database or disk said no")
    cause.sqlite_errorcode = 13  # type: ignore[attr-defined]

    with SqliteStore(tmp_path / "tasks.db") as store:
        wrapped = store._wrap(cause)

    assert type(wrapped) is errors.StoreError
    assert str(wrapped) == f"store {tmp_path / 'tasks.db'}: disk full: database or disk said no"


# --- migrations ---------------------------------------------------------------


def test_a_new_store_is_migrated_from_version_0_and_marked_as_taskcrons(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"

    with SqliteStore(path) as store:
        assert store.migrated_from is None  # a new file is set up, not "migrated"

    assert pragma(path, "user_version") == SCHEMA_VERSION
    assert pragma(path, "application_id") == APPLICATION_ID
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    finally:
        db.close()
    assert {"tasks", "runs"} <= tables


def test_an_older_store_is_migrated_forward_keeping_its_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tasks.db"
    with SqliteStore(path, host=HOST) as store:
        old = store.schedule(new_task("kept"), now=T0)
    migrations = (*sqlite_module.MIGRATIONS, "CREATE TABLE added_by_next (x INTEGER)")
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", migrations)
    monkeypatch.setattr(sqlite_module, "SCHEMA_VERSION", len(migrations))

    with SqliteStore(path, host=HOST) as store:
        assert store.migrated_from == SCHEMA_VERSION
        assert store.schema_version == SCHEMA_VERSION + 1
        assert store.get(old.id) == old
    with SqliteStore(path, host=HOST) as store:
        assert store.migrated_from is None  # already current

    assert pragma(path, "user_version") == SCHEMA_VERSION + 1
    assert pragma(path, "application_id") == APPLICATION_ID
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT count(*) FROM added_by_next").fetchone() == (0,)
    finally:
        db.close()


def test_a_version_2_store_is_migrated_to_owners_child_starts_and_pools(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(sqlite_schema._V1 + sqlite_schema._V2)
    db.execute(
        "INSERT INTO tasks (module, title, target, data, priority, state, due_at, attempts,"
        " max_attempts, created_at, updated_at, schedule, key) VALUES"
        " ('m', 'old', '{\"kind\": \"command\", \"value\": [\"true\"]}', '[1]', 3,"
        " 'queued', 0, 1, 2, 0, 0, '{\"every\": 60.0}', 'k1')"
    )
    db.execute(
        "INSERT INTO runs (task_id, attempt, started_at, ended_at, outcome, host, pid,"
        " child_pid) VALUES (1, 1, 0, 5, 'continued', 'h', 7, 8)"
    )
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute("PRAGMA user_version = 2")
    db.close()

    with SqliteStore(path, host=HOST) as store:
        assert store.migrated_from == 2
        task = store.get(1)
        assert (task.title, task.key, task.data_json, task.priority) == ("old", "k1", "[1]", 3)
        assert task.recurrence is not None and task.owner is None
        (run,) = task.runs
        assert (run.child_pid, run.child_start, run.outcome) == (8, None, Outcome.CONTINUED)
        owned = store.schedule(new_task("m", owner="ann"), now=T0)
        assert store.list(scope=Scope(), states=(State.QUEUED,), owner="ann") == [owned]
        pool = PoolLease(host=HOST, pid=os.getpid(), scope=Scope(), expires_at=T0)
        assert store.register_pool(pool, now=T0 - timedelta(seconds=1)) is not None
    assert pragma(path, "user_version") == SCHEMA_VERSION


def test_a_version_3_store_is_migrated_to_progress_and_the_status_indexes(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript("".join(sqlite_module.MIGRATIONS[:3]))
    db.execute(
        "INSERT INTO tasks (module, title, target, data, priority, state, due_at, attempts,"
        " max_attempts, created_at, updated_at, owner) VALUES ('m', 'old', ?, '{}', 0,"
        " 'failed', 0, 1, 1, 0, 0, 'ann')",
        ('{"kind": "command", "value": ["true"]}',),
    )
    db.executescript(f"PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 3")
    db.close()

    with SqliteStore(path, host=HOST) as store:
        assert store.migrated_from == 3
        (task,) = store.failures(Scope(), count=5)
        assert (task.title, task.owner, task.progress) == ("old", "ann", None)
        assert store.counts(Scope()) == {"m": {"failed": 1}}
        indexes = store._db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        assert {"tasks_module_state", "tasks_failed", "tasks_rerun"} <= {r[0] for r in indexes}
    assert pragma(path, "user_version") == SCHEMA_VERSION


def test_a_failing_migration_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tasks.db"
    with SqliteStore(path, host=HOST) as store:
        store.schedule(new_task(), now=T0)
    migrations = (*sqlite_module.MIGRATIONS, "CREATE TABLE fine (x); CREATE TABLE tasks (x)")
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", migrations)
    monkeypatch.setattr(sqlite_module, "SCHEMA_VERSION", len(migrations))

    with pytest.raises(errors.StoreError):
        SqliteStore(path, host=HOST)

    assert pragma(path, "user_version") == SCHEMA_VERSION
    db = sqlite3.connect(path)
    try:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    finally:
        db.close()
    assert "fine" not in names


# --- what a store tells -------------------------------------------------------


def test_an_open_store_tells_its_schema_version(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "tasks.db") as store:
        assert store.schema_version == SCHEMA_VERSION


def test_a_stores_url_names_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    with SqliteStore(tmp_path / "tasks.db") as by_absolute, SqliteStore("tasks.db") as by_relative:
        assert by_absolute.url == f"sqlite:///{tmp_path}/tasks.db"
        assert by_relative.url == f"sqlite:///{Path.cwd()}/tasks.db"
    assert by_absolute.url.startswith("sqlite:////")


def test_a_sound_store_has_no_integrity_problems(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "tasks.db") as store:
        store.schedule(new_task(), now=T0)
        assert store.integrity() == []


def test_a_damaged_store_tells_its_integrity_problems(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    with SqliteStore(path) as store:
        store.schedule(new_task(), now=T0)
    null_a_title(path)

    with SqliteStore(path) as store:
        assert store.integrity() == ["NULL value in tasks.title"]


def null_a_title(path: Path) -> None:
    """Damage a store behind SQLite's back: a NULL in the NOT NULL column tasks.title."""
    strict = "title            TEXT    NOT NULL"
    select = "SELECT sql FROM sqlite_master WHERE name = 'tasks'"
    update = "UPDATE sqlite_master SET sql = ? WHERE name = 'tasks'"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        schema = db.execute(select).fetchone()[0]
        assert strict in schema
        db.execute("PRAGMA writable_schema = ON")
        db.execute(update, (schema.replace(strict, "title TEXT"),))
    finally:
        db.close()
    db = sqlite3.connect(path, isolation_level=None)  # reads the loosened schema
    try:
        db.execute("UPDATE tasks SET title = NULL")
        db.execute("PRAGMA writable_schema = ON")
        db.execute(update, (schema,))
    finally:
        db.close()


# --- concurrent first use -----------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from datetime import datetime, timezone
    from taskcron.home import ensure_home
    from taskcron.model import Target
    from taskcron.store import NewTask
    from taskcron.store.sqlite import SqliteStore

    home, name, make_home = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
    print("ready", flush=True)
    sys.stdin.readline()  # all children start their work on the same signal
    if make_home:
        ensure_home(home)
    now = datetime.now(timezone.utc)
    with SqliteStore(home / "tasks.db") as store:
        new = NewTask(module="race", title=name, target=Target.command(["true"]), due_at=now)
        store.schedule(new, now=now)
    """
)


def race(home: Path, *, make_home: bool, count: int = 8) -> None:
    """Start `count` processes, then let them all open the store and schedule at once."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(home), f"p{i}", "1" if make_home else "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        for i in range(count)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        failures = []
        for proc in procs:
            _, stderr = proc.communicate(timeout=60)
            if proc.returncode != 0:
                failures.append(stderr)
        assert failures == []
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def titles(path: Path) -> list[str]:
    with SqliteStore(path, host=HOST) as store:
        return sorted(t.title for t in store.list(scope=Scope(), states=tuple(State)))


@pytest.mark.parametrize("attempt", range(3))  # the races are brief: give them a few chances
def test_eight_processes_opening_a_new_store_at_once_all_succeed(
    tmp_path: Path, attempt: int
) -> None:
    race(tmp_path, make_home=False)

    assert titles(tmp_path / "tasks.db") == [f"p{i}" for i in range(8)]
    assert pragma(tmp_path / "tasks.db", "user_version") == SCHEMA_VERSION


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize("attempt", range(2))
def test_eight_processes_creating_the_same_home_at_once_all_succeed(
    tmp_path: Path, attempt: int
) -> None:
    home = tmp_path / "deep" / "home"

    race(home, make_home=True)

    assert mode(home) == 0o700
    assert mode(home / "tasks.db") == 0o600
    assert titles(home / "tasks.db") == [f"p{i}" for i in range(8)]


def test_a_version_6_store_is_migrated_to_kept_counts_that_follow_every_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tasks.db"
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", sqlite_module.MIGRATIONS[:6])
    monkeypatch.setattr(sqlite_module, "SCHEMA_VERSION", 6)
    with SqliteStore(path, host=HOST) as store:
        for module in ("a", "a", "b.c"):  # the columns of version 6
            store._db.execute(
                "INSERT INTO tasks (module, title, target, data, priority, state, due_at,"
                " attempts, max_attempts, created_at, updated_at)"
                ' VALUES (?, \'t\', \'{"kind": "command", "value": ["true"]}\', \'null\','
                " 0, 'queued', 0, 0, 1, 0, 0)",
                (module,),
            )
        store._db.commit()
    monkeypatch.undo()

    def grouped(store: SqliteStore) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        rows = "SELECT module, state, count(*) AS n FROM tasks GROUP BY module, state"
        for row in store._db.execute(rows):
            found.setdefault(row["module"], {})[row["state"]] = row["n"]
        return found

    with SqliteStore(path, host=HOST) as store:
        assert store.migrated_from == 6
        assert store.counts(Scope()) == grouped(store) == {"a": {"queued": 2}, "b.c": {"queued": 1}}
        store.transition(1, action="pause", allowed=(State.QUEUED,), to=State.PAUSED, now=T0)
        store.remove(3)
        assert store.counts(Scope()) == grouped(store) == {"a": {"queued": 1, "paused": 1}}
