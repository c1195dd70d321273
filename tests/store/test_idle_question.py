"""The idle tick's question agrees with the claim.

`taskcron.store.sqlite_line.nothing_to_do` answers an idle tick before the rest of taskcron
loads. It must say "nothing to do" exactly when a claim of the same scope, at
the same moment, finds the scope idle: never while a task in scope is due
(it would be left waiting a minute) and never while one runs (its recovery
would be put off). Each hypothesis example gets a fresh SQLite store: the
question is SQLite's.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from contextlib import closing
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from taskcron.model import Scope
from taskcron.store import ClaimOutcome
from taskcron.store import sqlite_line as line
from taskcron.store.sqlite import MIGRATIONS, SCHEMA_VERSION, SqliteStore, to_micros
from tests.store.conftest import T0, at, decide, lease, new_task
from tests.store.test_order import MODULES, schedule_all, scopes, task_specs


@settings(max_examples=200, deadline=None)
@given(
    specs=task_specs,
    running=st.lists(st.sampled_from(MODULES), max_size=2),
    scope=scopes,
    offset=st.sampled_from((-1, 0, 1, 2, 4, 6)),
)
def test_nothing_to_do_exactly_when_a_claim_finds_the_scope_idle(
    specs: list[tuple[str, int, int]], running: list[str], scope: Scope, offset: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tasks.db"
        store = SqliteStore(path)
        schedule_all(store, specs)
        for module in running:  # one task running under a live lease, in module's subtree
            store.schedule(new_task(module, due_at=at(-10)), now=T0)
            store.claim_next(scope=Scope(modules=(module,)), now=T0, lease=lease(T0), decide=decide)
        now = at(offset)
        with closing(sqlite3.connect(path)) as db:
            db.row_factory = sqlite3.Row
            answer = line.nothing_to_do(db, scope.modules, scope.excepts, to_micros(now))
        claim = store.claim_next(scope=scope, now=now, lease=lease(now), decide=decide)
        store.close()
        assert answer == (claim.outcome is ClaimOutcome.IDLE), (claim.outcome, scope)


def test_the_question_reads_the_schema_the_store_migrates_to() -> None:
    assert line.SCHEMA_VERSION == SCHEMA_VERSION == len(MIGRATIONS)


def test_a_store_it_cannot_simply_read_is_left_to_the_claim(tmp_path: Path) -> None:
    """Missing, new, older, foreign or not in WAL mode: not "idle", so that the full tick
    creates, migrates or refuses it as it always does."""
    path = tmp_path / "tasks.db"
    assert not line.idle_store(path, (), ())  # missing
    assert not path.exists()  # and not created
    path.touch()
    assert not line.idle_store(path, (), ())  # new and empty
    SqliteStore(path).close()
    assert line.idle_store(path, (), ())
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    assert not line.idle_store(path, (), ())  # older: the claim migrates it
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("PRAGMA application_id = 1")
    assert not line.idle_store(path, (), ())  # not taskcron's
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(f"PRAGMA application_id = {line.APPLICATION_ID}")
        db.execute("PRAGMA journal_mode = DELETE")
    assert not line.idle_store(path, (), ())  # not in WAL mode: the store switches it


def test_the_store_is_asked_at_the_wall_clock(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    path = tmp_path / "tasks.db"
    store = SqliteStore(path)
    now = datetime.now(timezone.utc)
    store.schedule(new_task("billing", due_at=now + timedelta(hours=1)), now=now)
    assert line.idle_store(path, (), ())
    store.schedule(new_task("mail", due_at=now - timedelta(seconds=1)), now=now)
    assert not line.idle_store(path, (), ())
    assert line.idle_store(path, ("billing",), ())
    assert not line.idle_store(path, (), ("billing",))
    assert line.idle_store(path, (), ("mail",))
    store.close()


def test_a_store_another_process_writes_is_asked_once_it_has_written(tmp_path: Path) -> None:
    """A claim waits for the write lock and reads what the writer committed (here, a task
    made due): so does the question, not the snapshot before it."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import datetime, timedelta, timezone

    path = tmp_path / "tasks.db"
    store = SqliteStore(path)
    now = datetime.now(timezone.utc)
    store.schedule(new_task("mail", due_at=now + timedelta(hours=1)), now=now)
    store.close()
    assert line.idle_store(path, (), ())
    with closing(sqlite3.connect(path, isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE tasks SET due_at = 0")
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(line.idle_store, path, (), ())
            time.sleep(0.5)  # not needed to pass: it asks while the writer writes
            writer.execute("COMMIT")
            assert answer.result(timeout=60) is False
