"""Choosing and claiming the next task never scans: a large store costs what a small one does.

Runs in the target's interpreter (it imports taskcron, inside the functions,
so that loading the registry does not).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from tests.bench.harness import Bench, Figures, Params, row

if TYPE_CHECKING:
    from taskcron.store.sqlite import SqliteStore

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@row(
    name="claim",
    title="claim+finish at {tasks:,} stored vs 1,000 stored",
    floor="claim+finish at 1,000 stored",
    goal=1.5,
    unit="us",
    quick={"runs": 5, "tasks": 20_000, "rounds": 20},
    full={"runs": 15, "tasks": 200_000, "rounds": 20},
    in_target=True,
)
def claim(bench: Bench, params: Params) -> Figures:
    """Claiming and finishing one task with `tasks` stored against 1,000 stored.

    Each timed run claims and finishes `rounds` tasks in a row; those tasks
    are added to both stores, so keep them few beside the 1,000.
    """
    rounds = params["rounds"]
    claims = rounds * (bench.warmup + bench.runs)
    with (
        filled(bench.directory("small"), 1_000, claims) as small,
        filled(bench.directory("large"), params["tasks"], claims) as large,
    ):
        return bench.time(lambda: take(large, rounds), lambda: take(small, rounds), per=rounds)


@contextmanager
def filled(directory: Path, count: int, claims: int) -> Iterator[SqliteStore]:
    """A store of `count` tasks (see `fill`) and `claims` more due now; left with none running."""
    from taskcron.model import Scope, State, Target
    from taskcron.store import NewTask
    from taskcron.store.sqlite import SqliteStore

    store = SqliteStore(directory / "tasks.db")
    try:
        fill(store, count, NOW)
        for _ in range(claims):
            new = NewTask(module="bench", title="b", target=Target.command(["true"]), due_at=NOW)
            store.schedule(new, now=NOW)
        yield store
        assert store.list(scope=Scope(), states=[State.RUNNING]) == []
    finally:
        store.close()


def take(store: SqliteStore, rounds: int) -> None:
    """Claim the next task and finish it as done, `rounds` times."""
    from taskcron.model import Outcome, RunEnd, Scope
    from taskcron.schedule import RetryPolicy
    from taskcron.store import Lease

    policy = RetryPolicy(first=timedelta(seconds=10), cap=timedelta(hours=1))
    lease = Lease(host="bench", pid=os.getpid(), expires_at=NOW + timedelta(hours=1))
    for _ in range(rounds):
        claimed = store.claim_next(scope=Scope(), now=NOW, lease=lease, decide=policy.after_run)
        assert claimed.run is not None
        end = RunEnd(outcome=Outcome.DONE, ended_at=NOW, elapsed=0.0)
        store.finish_run(claimed.run.id, end, decide=policy.after_run)


def fill(store: SqliteStore, count: int, now: datetime) -> None:
    """`count` tasks: mostly finished or future ones, some queued, across 20 module ids."""
    db = store._db
    rows = []
    states = ["done", "failed", "cancelled", "queued"]
    for i in range(count):
        state = states[i % 4]
        due = now + timedelta(days=1) if i % 8 == 3 else now - timedelta(seconds=count - i)
        micros = int(due.timestamp() * 1_000_000)
        rows.append(
            (
                f"mod{i % 20}.sub",
                "t",
                '{"kind":"command","value":["true"]}',
                "null",
                i % 5,
                state,
                micros,
                0,
                1,
                micros,
                micros,
            )
        )
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO tasks (module, title, target, data, priority, state, due_at, attempts,"
        " max_attempts, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    db.execute("COMMIT")
