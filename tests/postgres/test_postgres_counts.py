"""A PostgreSQL store counts tasks by module id and state without reading the tasks and
without a row that every writer updates: deltas, folded into task_counts as they go."""

from __future__ import annotations

import random
from collections import Counter

from taskcron.model import Outcome, RunEnd, Scope, State
from taskcron.store.postgres import PostgresStore
from taskcron.store.postgres_schema import FOLD_EVERY
from tests.store.conftest import T0, at, decide, lease, new_task

MODULES = [f"app.m{n}" for n in range(12)]


def _counted(store: PostgresStore) -> dict[str, dict[str, int]]:
    """The counts as a GROUP BY over every task finds them."""
    rows = store._db.execute("SELECT module, state, count(*) AS n FROM tasks GROUP BY 1, 2")
    found: dict[str, dict[str, int]] = {}
    for row in rows:
        found.setdefault(row["module"], {})[row["state"]] = row["n"]
    return found


def _deltas(store: PostgresStore) -> int:
    return int(store._db.execute("SELECT count(*) AS n FROM task_count_deltas").fetchone()["n"])


def test_counts_follow_every_change_of_state_and_their_deltas_stay_few(
    postgres_url: str,
) -> None:
    pick = random.Random(25)
    moves: Counter[str] = Counter()
    with PostgresStore(postgres_url, clock="caller") as store:
        for step in range(1, 1500):
            now = at(step)
            roll = pick.random()
            if roll < 0.35:
                store.schedule(new_task(pick.choice(MODULES), max_attempts=2), now=T0)
                moves["scheduled"] += 1
            elif roll < 0.75:
                got = store.claim_next(scope=Scope(), now=now, lease=lease(now), decide=decide)
                if got.run is not None:
                    outcome = pick.choice([Outcome.DONE, Outcome.DONE, Outcome.FAILED])
                    end = RunEnd(outcome=outcome, ended_at=now, elapsed=0.1)
                    store.finish_run(got.run.id, end, decide=decide)
                    moves["ran"] += 1
            elif roll < 0.85:
                queued = store.list(scope=Scope(), states=(State.QUEUED,))
                if queued:
                    task = pick.choice(queued)
                    store.transition(
                        task.id,
                        action="cancel",
                        allowed=(State.QUEUED,),
                        to=State.CANCELLED,
                        now=now,
                    )
                    moves["cancelled"] += 1
            else:
                ended = store.list(scope=Scope(), states=(State.DONE, State.CANCELLED))
                if ended:
                    store.remove(pick.choice(ended).id)
                    moves["removed"] += 1
            if step % 250 == 0:
                assert store.counts(Scope()) == _counted(store), step
                assert store.counts(Scope(modules=("app.m1",))) == {
                    m: c for m, c in _counted(store).items() if m == "app.m1"
                }
        assert store.counts(Scope()) == _counted(store)
        assert _deltas(store) < 2 * FOLD_EVERY, moves
        # A fold has happened many times over: most changes live in task_counts now.
        assert sum(moves.values()) * 2 > 4 * FOLD_EVERY


def test_a_bulk_insert_and_delete_add_a_delta_a_module_id_and_state(postgres_url: str) -> None:
    with PostgresStore(postgres_url, clock="caller") as store:
        before = _deltas(store)
        store._db.execute(
            "INSERT INTO tasks (module, title, target, data, priority, state, due_at,"
            " attempts, max_attempts, created_at, updated_at)"
            " SELECT 'bulk.m' || (i %% 3), 't', '{}', 'null', 0, 'queued', %s, 0, 1, %s, %s"
            " FROM generate_series(1, 10000) AS i",
            (T0, T0, T0),
        )
        assert _deltas(store) - before <= 3
        assert store.counts(Scope(modules=("bulk",))) == {
            "bulk.m0": {"queued": 3333},
            "bulk.m1": {"queued": 3334},
            "bulk.m2": {"queued": 3333},
        }
        store._db.execute("DELETE FROM tasks WHERE module = 'bulk.m1'")
        assert store.counts(Scope(modules=("bulk",))) == {
            "bulk.m0": {"queued": 3333},
            "bulk.m2": {"queued": 3333},
        }
