"""The stores' statements, written once: each dialect's rendering of them."""

from __future__ import annotations

from taskcron.store import postgres, sqlite
from taskcron.store.queries import POSTGRES, SQLITE, Pair, Statements, render, to_pyformat


def test_named_parameters_become_psycopgs_and_casts_and_literals_stay() -> None:
    text = "SELECT id::text, ':no' FROM t WHERE a = :a AND b LIKE '50%' AND c = :a_b"
    assert to_pyformat(text) == (
        "SELECT id::text, ':no' FROM t WHERE a = %(a)s AND b LIKE '50%%' AND c = %(a_b)s"
    )


def test_each_dialect_keeps_only_its_own_words() -> None:
    text = "SELECT id FROM tasks INDEXED BY tasks_owner WHERE owner = :owner FOR UPDATE"
    assert (
        render(text, SQLITE) == "SELECT id FROM tasks INDEXED BY tasks_owner WHERE owner = :owner"
    )
    assert render(text, POSTGRES) == "SELECT id FROM tasks WHERE owner = %(owner)s FOR UPDATE"
    insert = "INSERT INTO pools (host) VALUES (:host) RETURNING id"
    assert render(insert, SQLITE) == "INSERT INTO pools (host) VALUES (:host)"
    assert render(insert, POSTGRES) == "INSERT INTO pools (host) VALUES (%(host)s) RETURNING id"


def test_a_pair_gives_each_dialect_its_text() -> None:
    pair = Pair(sqlite="SELECT max(:a, 0)", postgres="SELECT GREATEST(:a, 0)")
    assert render(pair, SQLITE) == "SELECT max(:a, 0)"
    assert render(pair, POSTGRES) == "SELECT GREATEST(%(a)s, 0)"


def test_both_stores_run_the_same_statements_rendered_from_one_text() -> None:
    names = [name for name in vars(Statements) if name.isupper() and not name.startswith("_")]
    assert len(names) > 50
    for name in names:
        neutral = getattr(Statements, name)
        assert getattr(sqlite.SqliteStore.sql, name) == render(neutral, SQLITE), name
        assert getattr(postgres.PostgresStore.sql, name) == render(neutral, POSTGRES), name
    assert not set(names) & (set(vars(sqlite)) | set(vars(postgres)))  # none written again
