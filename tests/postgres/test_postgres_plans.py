"""A claim never scans on PostgreSQL: its statements read through indexes, and touch
about as many buffers with a hundred times the tasks.

tests/store/test_no_scan.py says the same of SqliteStore. Here one database of the
session's server holds three stores (schemas) filled in SQL (tests/pgstore.py): 1,000
and 100,000 tasks laid out alike, VACUUM (ANALYZE)'d, and 100,000 tasks all queued for
later that are never analyzed (autovacuum off for them), as a new store into which a
backlog was just scheduled is until autovacuum's first ANALYZE. Each claim statement
is explained with the values a claim gives it, and prepared without them (the generic
plan psycopg's prepared statements may settle on). The measure is shared buffers, not
time: it is the same on every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from taskcron.store import postgres, postgres_claim
from taskcron.store.postgres import PostgresStore
from tests import pgstore
from tests.pgserver import PostgresServer

#: One worker runs the whole module (`--dist loadgroup`), so that the stores of `stores`
#: are filled once, not once on each worker.
pytestmark = pytest.mark.xdist_group("postgres-plans")

SMALL, LARGE = 1_000, 100_000
#: The stores, by what the tests call them: (tasks, analyzed); those never analyzed
#: hold only queued tasks, due from tomorrow on.
STORES = {"small": (SMALL, True), "large": (LARGE, True), "never analyzed": (LARGE, False)}
NAMES = [
    f"{name} in {pgstore.module_id(1)}" if scoped else name
    for name in pgstore.CLAIM_STATEMENTS
    for scoped in ((False, True) if name.startswith(("SELECT_RUNNING", "HEADS")) else (False,))
] + ["SELECT_KEYED_TASK new"]
PLANS = {"custom plan": False, "generic plan": True}


@pytest.fixture(scope="module")
def stores(postgres_server: PostgresServer) -> Iterator[dict[str, PostgresStore]]:
    name = postgres_server.unique_name()
    url = postgres_server.create_database(name)
    opened: dict[str, PostgresStore] = {}
    try:
        for label, (count, analyzed) in STORES.items():
            store = opened[label] = PostgresStore(f"{url}&schema={label.replace(' ', '_')}")
            if not analyzed:
                for table in ("tasks", "runs"):
                    store._db.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
            pgstore.fill(store._db, count, future=not analyzed, running=3, settle=analyzed)
        yield opened
    finally:
        for store in opened.values():
            store.close()
        postgres_server.drop_database(name)


def explained(store: PostgresStore, name: str, **options: Any) -> dict[str, Any]:
    sql, params = pgstore.claim_statements(store)[name]
    return pgstore.plan(store._db, sql, params, **options)


def as_text(store: PostgresStore, name: str) -> str:
    return "\n".join(pgstore.text(store._db, *pgstore.claim_statements(store)[name]))


def test_the_statements_explained_are_the_claims() -> None:
    assert len(NAMES) == len(pgstore.CLAIM_STATEMENTS) + 4
    for name in pgstore.CLAIM_STATEMENTS:
        assert any(hasattr(where, name) for where in (PostgresStore.sql, postgres, postgres_claim))


@pytest.mark.parametrize("generic", PLANS.values(), ids=PLANS.keys())
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("label", ["large", "never analyzed"])
def test_a_claim_statement_reads_its_table_through_an_index_in_order(
    stores: dict[str, PostgresStore], label: str, name: str, generic: bool
) -> None:
    store = stores[label]
    top = explained(store, name, generic=generic)

    scans = [node for node in pgstore.nodes(top) if "Relation Name" in node]
    assert scans, as_text(store, name)
    assert pgstore.table_scans(top) == [], as_text(store, name)
    assert pgstore.sorts(top) == 0, as_text(store, name)


#: How many more buffers a claim may touch at LARGE than at SMALL. A store not yet
#: vacuumed answers an index-only scan from the table too: one more page for each
#: module id whose head the claim walks, until autovacuum's first pass.
GROWTH = {"large": 1.5, "never analyzed": 2.0}


@pytest.mark.parametrize("label", ["large", "never analyzed"])
def test_a_claim_touches_about_as_many_buffers_with_a_hundred_times_the_tasks(
    stores: dict[str, PostgresStore], label: str
) -> None:
    touched = {
        size: {name: pgstore.buffers(explained(stores[size], name, analyze=True)) for name in NAMES}
        for size in ("small", label)
    }

    small, large = sum(touched["small"].values()), sum(touched[label].values())
    assert large <= GROWTH[label] * small, touched


def test_counting_tasks_reads_no_task_and_costs_the_same_at_any_size(
    stores: dict[str, PostgresStore],
) -> None:
    sql = PostgresStore.sql
    statement = sql.COUNT_TASKS.format(range=sql.MODULE_FROM)
    touched = {}
    for label in ("small", "large"):
        node = pgstore.plan(stores[label]._db, statement, {"low": ""}, analyze=True)
        read = {found.get("Relation Name") for found in pgstore.nodes(node)}
        assert "tasks" not in read, pgstore.shape(node)
        touched[label] = pgstore.buffers(node)
    assert touched["large"] <= 2 * touched["small"], touched


@pytest.mark.parametrize("label", ["large", "never analyzed"])
def test_metrics_read_the_recurring_tasks_through_their_index(
    stores: dict[str, PostgresStore], label: str
) -> None:
    store = stores[label]
    top = pgstore.plan(store._db, PostgresStore.sql.SELECT_RECURRING, {"limit": 10_000})

    read = {node.get("Index Name") for node in pgstore.nodes(top)}
    assert pgstore.table_scans(top) == [] and "tasks_recurring" in read, pgstore.shape(top)
