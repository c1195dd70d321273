"""Choosing the next task never scans (SqliteStore): every statement a claim runs uses an index.

The claim's statements are captured with the connection's trace callback (which
gives them with their parameters expanded) and each is explained with
`EXPLAIN QUERY PLAN`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from taskcron.model import Lanes, Outcome, Retention, RunEnd, Scope, State
from taskcron.store import ClaimOutcome, PoolLease, sqlite
from taskcron.store.sqlite import SqliteStore
from tests.store.conftest import HOST, T0, at, decide, lease, new_task
from tests.store.test_contract import dead_pid

#: One worker runs the whole module (`--dist loadgroup`), so that the two large stores
#: of `stores` are filled once, not once on each worker.
pytestmark = pytest.mark.xdist_group("no-scan")

MODULES = ("app", "app.mail", "app-x", "billing.eu", "reports")
PRIORITIES = (-1, 0, 2)
NOW = at(10_000_000)
HOUR = timedelta(hours=1)
SCOPES = [
    Scope(),
    Scope(modules=("app",)),
    Scope(modules=("billing", "reports")),
    Scope(excepts=("app",)),
    Scope(modules=("app",), excepts=("app.mail",)),
]


def populate(store: SqliteStore, per_module: int) -> None:
    """`per_module` tasks in each module: a quarter each done, failed, future and queued."""
    finished = per_module // 2
    for module in MODULES:
        for i in range(finished):
            store.schedule(new_task(module, priority=PRIORITIES[i % 3], due_at=at(i)), now=T0)
        below = tuple(m for m in MODULES if m.startswith(module + "."))
        scope = Scope(modules=(module,), excepts=below)
        for i in range(finished):
            got = store.claim_next(scope=scope, now=at(i), lease=lease(at(i)), decide=decide)
            assert got.outcome is ClaimOutcome.CLAIMED and got.run is not None
            outcome = Outcome.DONE if i % 2 else Outcome.FAILED
            end = RunEnd(outcome=outcome, ended_at=at(i), elapsed=0.0)
            store.finish_run(got.run.id, end, decide=decide)
    for module in MODULES:
        for i in range(per_module - finished):
            future = i % 2 == 0
            due = NOW + timedelta(days=1 + i) if future else at(1_000 + i)
            store.schedule(new_task(module, priority=PRIORITIES[i % 3], due_at=due), now=T0)
    counts = {s: len(store.list(scope=Scope(), states=(s,))) for s in State}
    assert counts[State.DONE] > 0 and counts[State.FAILED] > 0 and counts[State.QUEUED] > 0


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, SqliteStore]]:
    """Two stores alike but for their size: 200 and 2000 tasks per module."""
    opened = {}
    for per_module in (200, 2000):
        path = Path(tmp_path_factory.mktemp(f"store{per_module}")) / "tasks.db"
        opened[per_module] = SqliteStore(path, host=HOST)
        populate(opened[per_module], per_module)
    yield opened
    for store in opened.values():
        store.close()


def leave_a_dead_run(store: SqliteStore) -> None:
    """A running task whose lease has expired: the next claim in scope recovers it first."""
    store.schedule(new_task("stuck", due_at=T0), now=T0)
    got = store.claim_next(scope=Scope(modules=("stuck",)), now=T0, lease=lease(T0), decide=decide)
    assert got.outcome is ClaimOutcome.CLAIMED


@contextmanager
def tracing(store: SqliteStore) -> Iterator[list[str]]:
    """Every SQL statement the store runs inside the block, with its parameters expanded.

    Not the statements of the triggers a statement fires: they are part of that
    statement, and Python reports each again with the text of the one that fired it.
    """
    statements: list[str] = []
    fired = ("INSERT", "UPDATE", "DELETE")

    def trace(statement: str) -> None:
        again = statements and statements[-1] == statement and statement.startswith(fired)
        if not again:
            statements.append(statement)

    store._db.set_trace_callback(trace)
    try:
        yield statements
    finally:
        store._db.set_trace_callback(None)


def traced_claim(store: SqliteStore, scope: Scope, lanes: Lanes | None = None) -> list[str]:
    """Claim once in `scope` (a pool's claim, with `lanes`) and return every SQL statement it ran.

    A dead run waits to be recovered, so the recovery's statements count too. The
    claimed task is then put back where it stood, so that every claim sees the same line.
    Each claim is the store's first count of a run in its minute, which drops the
    minutes no longer kept.
    """
    recover = Scope(modules=(*scope.modules, "stuck")) if scope.modules else scope
    leave_a_dead_run(store)
    store._minutes_dropped = None
    with tracing(store) as statements:
        got = store.claim_next(scope=recover, now=NOW, lease=lease(NOW), decide=decide, lanes=lanes)
    assert got.outcome is ClaimOutcome.CLAIMED, (scope, got.outcome)
    assert len(got.recovered) == 1
    assert got.run is not None and got.task is not None
    store.finish_run(
        got.run.id,
        RunEnd(outcome=Outcome.INTERRUPTED, ended_at=NOW, elapsed=0.0),
        decide=lambda task, outcome, now: (State.QUEUED, task.due_at),
    )
    return statements


def plan(store: SqliteStore, statement: str) -> list[str]:
    """The plan's steps; a correlated subquery's header is not a step, its body is."""
    rows = store._db.execute("EXPLAIN QUERY PLAN " + statement)
    return [row[3] for row in rows if not row[3].startswith("CORRELATED SCALAR SUBQUERY")]


def searched(store: SqliteStore, statements: list[str]) -> int:
    """Assert that every SELECT, UPDATE and DELETE among `statements` only searches indexes.

    Return how many were explained.
    """
    explained = 0
    for statement in statements:
        if statement.split()[0].upper() not in ("SELECT", "UPDATE", "DELETE"):
            continue
        steps = plan(store, statement)
        explained += 1
        assert steps, statement
        for step in steps:
            assert "SCAN" not in step, (step, statement)
            assert "TEMP B-TREE" not in step, (step, statement)
            assert step.startswith("SEARCH"), (step, statement)
    return explained


#: A tick's claim (one task at a time) and a pool's (lanes).
CLAIMS = {"tick": None, "pool": Lanes({"app": 2})}


@pytest.mark.parametrize("lanes", CLAIMS.values(), ids=CLAIMS.keys())
@pytest.mark.parametrize("scope", SCOPES, ids=repr)
def test_choosing_the_next_task_never_scans(
    stores: dict[int, SqliteStore], scope: Scope, lanes: Lanes | None
) -> None:
    store = stores[2000]
    statements = traced_claim(store, scope, lanes)

    assert searched(store, statements) >= 5


@pytest.mark.parametrize("lanes", CLAIMS.values(), ids=CLAIMS.keys())
@pytest.mark.parametrize("scope", SCOPES, ids=repr)
def test_a_claim_runs_as_many_statements_with_ten_times_the_tasks(
    stores: dict[int, SqliteStore], scope: Scope, lanes: Lanes | None
) -> None:
    small = traced_claim(stores[200], scope, lanes)
    large = traced_claim(stores[2000], scope, lanes)

    assert len(large) == len(small)
    counts = len(MODULES) if lanes is not None else 0  # one lane count a module
    # The recovered run is counted (by task, by module, by minute, old minutes dropped),
    # and the recovered and the claimed task are read with their runs counted by outcome.
    counted = 4 + 2
    assert len(large) <= 2 * (len(MODULES) + len(PRIORITIES)) + counts + 15 + counted


def test_owner_child_and_pool_statements_only_search(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "tasks.db", host=HOST) as store:
        populate(store, 20)
        for i in range(30):
            store.schedule(new_task(MODULES[i % 5], owner=f"user{i % 3}"), now=T0)
        paused = store.schedule(new_task("app", owner="user0"), now=T0)
        store.transition(
            paused.id, action="pause", allowed=(State.QUEUED,), to=State.PAUSED, now=T0
        )
        got = store.claim_next(scope=Scope(), now=NOW, lease=lease(NOW), decide=decide)
        assert got.run is not None
        gone = PoolLease(host=HOST, pid=dead_pid(), scope=Scope(), expires_at=NOW + HOUR)
        lapsed = PoolLease(host=HOST, pid=os.getpid(), scope=Scope(), expires_at=NOW)
        store.register_pool(lapsed, now=T0)
        fresh = PoolLease(host=HOST, pid=os.getpid(), scope=Scope(), expires_at=NOW + HOUR)

        with tracing(store) as statements:
            store.cancel_owned("user0", now=NOW)
            store.set_child(got.run.id, 4321, start="99")
            store.register_pool(gone, now=NOW)
            pool_id = store.register_pool(fresh, now=NOW)
            assert pool_id is not None
            assert store.serving_pool(gone, now=NOW) is not None
            assert store.renew_pool(pool_id, expires_at=NOW + 2 * HOUR)
            store.release_pool(pool_id)

        assert searched(store, statements) >= 9
        for sql in (
            sqlite.SqliteStore.sql.SELECT_OWNED_WAITING,
            sqlite.SqliteStore.sql.CANCEL_OWNED,
            sqlite.SqliteStore.sql.SET_CHILD_PID,
            sqlite.SqliteStore.sql.DELETE_EXPIRED_POOLS,
            sqlite.SqliteStore.sql.SELECT_LIVE_POOLS,
            sqlite.SqliteStore.sql.DELETE_POOL,
            sqlite.SqliteStore.sql.RENEW_POOL,
        ):
            head = sql.partition(":")[0]  # up to its first parameter
            assert any(s.startswith(head) for s in statements), sql


def test_listing_an_owners_tasks_searches_its_index(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "tasks.db", host=HOST) as store:
        store.schedule(new_task("app", owner="user0"), now=T0)
        with tracing(store) as statements:
            store.list(scope=Scope(), states=(State.QUEUED, State.PAUSED), owner="user0")

        (listing,) = [s for s in statements if s.startswith("SELECT")]
        steps = plan(store, listing)
        assert steps[0].startswith("SEARCH tasks USING INDEX tasks_owner"), steps
        assert not any("SCAN" in step for step in steps), steps


@pytest.mark.parametrize("scope", SCOPES, ids=repr)
def test_what_status_reads_only_searches_indexes(
    stores: dict[int, SqliteStore], scope: Scope
) -> None:
    store = stores[2000]
    with tracing(store) as statements:
        counts = store.counts(scope)
        store.running(scope)
        due = store.next_due(scope, count=5)
        failed = store.failures(scope, count=5)

    assert counts and len(due) == 5 and len(failed) == 5
    assert searched(store, statements) >= 2 + 5 + 2 + 5
    for sql in (
        sqlite.SqliteStore.sql.COUNT_TASKS,
        sqlite.SqliteStore.sql.LATEST_FAILED,
        sqlite.SqliteStore.sql.WAITING_AFTER_FAILURE,
    ):
        head = sql.partition("{")[0]
        assert any(s.startswith(head) for s in statements), sql


def test_counting_tasks_reads_the_kept_counts_alone(stores: dict[int, SqliteStore]) -> None:
    store = stores[2000]
    with tracing(store) as statements:
        store.counts(Scope(modules=("app", "reports"), excepts=("app.mail",)))

    assert len(statements) == 4  # BEGIN, one count a range of module ids, COMMIT
    for statement in statements[1:-1]:
        (step,) = plan(store, statement)
        assert step.startswith("SEARCH task_counts USING PRIMARY KEY"), step


@pytest.mark.parametrize("scope", SCOPES, ids=repr)
def test_a_page_of_tasks_only_searches_indexes(
    stores: dict[int, SqliteStore], scope: Scope
) -> None:
    store = stores[2000]
    with tracing(store) as statements:
        page = store.page(scope=scope, states=tuple(State), limit=50, offset=100)

    assert len(page) == 50
    assert searched(store, statements) == len(State) + 1  # each state's line, then the page


def test_a_page_of_an_owners_tasks_searches_the_owners_index(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "tasks.db", host=HOST) as store:
        populate(store, 20)
        store.schedule(new_task("app", owner="user0"), now=T0)
        with tracing(store) as statements:
            store.page(scope=Scope(), states=(State.QUEUED,), owner="user0", limit=10)

        listing, tasks = [s for s in statements if s.startswith("SELECT")]
        steps = plan(store, listing)
        assert steps[0].startswith("SEARCH tasks USING INDEX tasks_owner"), steps
        assert not any("SCAN" in step for step in steps), steps
        assert not any("SCAN" in step for step in plan(store, tasks))


def add_runs(store: SqliteStore, task_id: int, count: int) -> None:
    """`count` ended runs of a task, inserted in one statement (a long history, cheaply)."""
    store._db.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)"
        " INSERT INTO runs (task_id, attempt, started_at, ended_at, elapsed, outcome, host, pid)"
        " SELECT :task_id, 1, :t + i, :t + i, 0.0, 'done', 'h', 1 FROM n",
        {"task_id": task_id, "count": count, "t": 1_000_000},
    )
    store._db.commit()


def test_a_claim_and_a_finish_read_the_current_run_and_not_the_history(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "tasks.db", host=HOST) as store:
        task = store.schedule(new_task("app", due_at=T0), now=T0)
        add_runs(store, task.id, 2_000)
        with tracing(store) as statements:
            got = store.claim_next(scope=Scope(), now=NOW, lease=lease(NOW), decide=decide)
            assert got.run is not None and got.task is not None
            end = RunEnd(outcome=Outcome.DONE, ended_at=NOW, elapsed=0.0)
            finished = store.finish_run(got.run.id, end, decide=decide)

        assert [run.id for run in got.task.runs] == [got.run.id]
        assert finished is not None
        assert [(run.id, run.outcome) for run in finished.runs] == [(got.run.id, Outcome.DONE)]
        assert searched(store, statements) >= 5
        assert store.get(task.id, runs=3).runs[-1].id == got.run.id
        assert len(store.get(task.id).runs) == 2_001


def test_a_finish_trims_a_long_history_a_batch_at_a_time_along_indexes(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "tasks.db", host=HOST) as store:
        task = store.schedule(new_task("app", due_at=T0), now=T0)
        add_runs(store, task.id, 2_000)
        store._db.execute("UPDATE runs SET outcome = 'failed' WHERE id = 7")
        store._db.commit()
        keep = Retention(keep_runs=100, keep_for=None, batch=50)
        got = store.claim_next(scope=Scope(), now=NOW, lease=lease(NOW), decide=decide)
        assert got.run is not None
        with tracing(store) as statements:
            end = RunEnd(outcome=Outcome.DONE, ended_at=NOW, elapsed=0.0)
            store.finish_run(got.run.id, end, decide=decide, keep=keep)

        assert searched(store, statements) >= 6
        assert any(s.startswith("DELETE FROM runs WHERE id IN") for s in statements)
        runs = store.get(task.id).runs
        assert len(runs) == 2_001 - 50
        assert runs[0].id == 7 and runs[1].id == 52  # the last failure stays


#: The tables metrics may read whole: each a row a module id (and outcome, state or
#: counter), never a row a task or a run.
COUNTING_TABLES = ("SCAN outcome_totals", "SCAN counters")


def test_what_metrics_read_only_searches_indexes_and_the_counting_tables(
    stores: dict[int, SqliteStore],
) -> None:
    from taskcron import metrics

    store = stores[2000]
    with tracing(store) as statements:
        samples = metrics.collect(store, home=Path("/nonexistent"), host=HOST, now=NOW)

    assert samples["taskcron_runs_total"] and samples["taskcron_oldest_due_age_seconds"]
    explained = 0
    for statement in statements:
        if statement.split()[0].upper() != "SELECT":
            continue
        explained += 1
        for step in plan(store, statement):
            recurring = step == "SCAN tasks USING INDEX tasks_recurring"  # recurring ones only
            assert step.startswith("SEARCH") or recurring or step in COUNTING_TABLES, (
                step,
                statement,
            )
    assert explained >= 4 + len(MODULES)
