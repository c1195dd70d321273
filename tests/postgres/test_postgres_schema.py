"""A PostgreSQL store written by an older taskcron is brought up to date on open."""

from __future__ import annotations

import json

import pytest

from taskcron.model import Outcome, Retention, RunEnd, Scope, State, Target
from taskcron.store import NewTask, postgres
from taskcron.store.postgres import PostgresStore
from tests.conftest import wait_for
from tests.store.conftest import T0, at, decide, lease


def test_a_store_of_schema_2_gets_the_index_that_finds_a_paused_keyed_task(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyed = NewTask(module="m", title="t", target=Target.command(["true"]), due_at=T0, key="k")
    url = f"{postgres_url}&schema=old"
    with monkeypatch.context() as old:
        old.setattr(postgres, "MIGRATIONS", postgres.MIGRATIONS[:2])
        old.setattr(postgres, "SCHEMA_VERSION", 2)
        with PostgresStore(url, clock="caller") as store:  # the columns of schema 2
            first = store._db.execute(
                "INSERT INTO tasks (module, title, target, data, priority, state, due_at,"
                " attempts, max_attempts, created_at, updated_at, key)"
                " VALUES ('m', 't', %s, 'null', 0, 'paused', %s, 0, 1, %s, %s, 'k') RETURNING id",
                (json.dumps(keyed.target.to_json()), T0, T0, T0),
            ).fetchone()["id"]

    with PostgresStore(url, clock="caller") as store:
        assert (store.migrated_from, store.schema_version) == (2, postgres.SCHEMA_VERSION)
        found, existing = store.schedule_or_find(keyed, now=at(1))
        assert (found.id, found.state, existing) == (first, State.PAUSED, True)
        indexes = store._db.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'old'"
        ).fetchall()
        assert "tasks_key_paused" in {row["indexname"] for row in indexes}


def test_a_store_of_schema_3_with_a_long_history_is_migrated_to_counted_runs(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{postgres_url}&schema=old"
    with monkeypatch.context() as old:
        old.setattr(postgres, "MIGRATIONS", postgres.MIGRATIONS[:3])
        old.setattr(postgres, "SCHEMA_VERSION", 3)
        with PostgresStore(url, clock="caller") as store:  # the columns of schema 3
            task_id = store._db.execute(
                "INSERT INTO tasks (module, title, target, data, priority, state, due_at,"
                " attempts, max_attempts, created_at, updated_at, schedule)"
                " VALUES ('m', 't', %s, 'null', 0, 'queued', %s, 0, 1, %s, %s, %s) RETURNING id",
                (json.dumps(Target.command(["true"]).to_json()), T0, T0, T0, '{"every": 60.0}'),
            ).fetchone()["id"]
            store._db.execute(
                "INSERT INTO runs (task_id, attempt, started_at, ended_at, elapsed, outcome,"
                " host, pid) SELECT %s, 1, %s, %s, 0.2,"
                " CASE WHEN i %% 10 = 0 THEN 'failed' ELSE 'done' END, 'h', 1"
                " FROM generate_series(1, 2000) AS i",
                (task_id, T0, T0),
            )
    with PostgresStore(url, clock="caller") as store:
        assert (store.migrated_from, store.schema_version) == (3, postgres.SCHEMA_VERSION)
        assert store.get(task_id, runs=0).outcomes == (("done", 1800), ("failed", 200))
        done, failed = store.outcome_totals()
        assert (done.runs, failed.runs, done.buckets[1]) == (1800, 200, 1800)
        now = at(60)
        got = store.claim_next(scope=Scope(), now=now, lease=lease(now), decide=decide)
        assert got.run is not None
        ended = RunEnd(outcome=Outcome.DONE, ended_at=now, elapsed=0.2)
        store.finish_run(got.run.id, ended, decide=decide, keep=Retention(keep_runs=100))
        assert len(store.get(task_id).runs) == 2_001 - 50


#: A task added as a store of schema 4 was: the columns it had.
SCHEMA_4_TASK = (
    "INSERT INTO tasks (module, title, target, data, priority, state, due_at, attempts,"
    " max_attempts, created_at, updated_at) VALUES (%(module)s, 't',"
    ' \'{"kind": "command", "value": ["true"]}\', \'null\', 0, \'queued\', %(at)s, 0, 1,'
    " %(at)s, %(at)s)"
)


def test_a_store_of_schema_4_gets_its_tasks_counted(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{postgres_url}&schema=old"
    with monkeypatch.context() as old:
        old.setattr(postgres, "MIGRATIONS", postgres.MIGRATIONS[:4])
        old.setattr(postgres, "SCHEMA_VERSION", 4)
        with PostgresStore(url, clock="caller") as store:  # no counts in schema 4
            for module in ("a", "a", "b"):  # as schema 4's code added them: its columns
                store._db.execute(SCHEMA_4_TASK, {"module": module, "at": T0})
    with PostgresStore(url, clock="caller") as store:
        assert (store.migrated_from, store.schema_version) == (4, postgres.SCHEMA_VERSION)
        assert store.counts(Scope()) == {"a": {"queued": 2}, "b": {"queued": 1}}


def test_a_store_of_schema_4_is_migrated_to_tell_of_the_tasks_it_adds(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{postgres_url}&schema=old"
    new = NewTask(module="m", title="t", target=Target.command(["true"]), due_at=T0)
    with monkeypatch.context() as old:
        old.setattr(postgres, "MIGRATIONS", postgres.MIGRATIONS[:4])
        old.setattr(postgres, "SCHEMA_VERSION", 4)
        PostgresStore(url, clock="caller").close()

    with PostgresStore(url, clock="caller") as store:
        assert (store.migrated_from, store.schema_version) == (4, postgres.SCHEMA_VERSION)
        wake = store.wake_source()
        try:
            task = store.schedule(new, now=at(1))
            told = wait_for(wake.drain)
        finally:
            wake.close()
    assert told == [str(task.id)]


def test_a_store_of_schema_6_finishes_a_run_claimed_before_and_keeps_counting(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{postgres_url}&schema=old"
    new = NewTask(module="m", title="t", target=Target.command(["true"]), due_at=T0)
    with monkeypatch.context() as old:
        old.setattr(postgres, "MIGRATIONS", postgres.MIGRATIONS[:6])
        old.setattr(postgres, "SCHEMA_VERSION", 6)
        with PostgresStore(url, clock="caller") as store:
            first = store.schedule(new, now=T0)
            store.schedule(new, now=T0)
            got = store.claim_next(scope=Scope(), now=at(1), lease=lease(at(1)), decide=decide)
    assert got.run is not None and got.task is not None and got.task.id == first.id

    with PostgresStore(url, clock="caller") as store:
        assert (store.migrated_from, store.schema_version) == (6, postgres.SCHEMA_VERSION)
        ended = RunEnd(outcome=Outcome.DONE, ended_at=at(2), elapsed=1.0)
        finished = store.finish_run(got.run.id, ended, decide=decide)
        again = store.claim_next(scope=Scope(), now=at(3), lease=lease(at(3)), decide=decide)
        assert again.run is not None
        failed = RunEnd(outcome=Outcome.FAILED, ended_at=at(4), elapsed=1.0)
        second = store.finish_run(again.run.id, failed, decide=decide)

        assert finished is not None and finished.state is State.DONE
        assert second is not None and second.state is State.FAILED
        assert store.counts(Scope()) == {"m": {"done": 1, "failed": 1}}
        assert {(t.outcome, t.runs) for t in store.outcome_totals()} == {("done", 1), ("failed", 1)}
