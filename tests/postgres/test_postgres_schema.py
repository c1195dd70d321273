"""A PostgreSQL store written by an older taskcron is brought up to date on open."""

from __future__ import annotations

import json

import pytest

from taskcron.model import State, Target
from taskcron.store import NewTask, postgres
from taskcron.store.postgres import PostgresStore
from tests.store.conftest import T0, at


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
