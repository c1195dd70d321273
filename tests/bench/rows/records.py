"""Claiming a task and recording its run through the store, no child: against SqliteHuey
doing the same for its jobs, and against the least the same work needs in bare SQL.

taskcron's side is `claim_next` then `finish_run` as done, on a SQLite store
holding due tasks in one module id. SqliteHuey's is what its consumer's
worker does for a job: `dequeue`, then `execute` (its revocation check and a
result stored, the task returning a value). Both in WAL mode, with the same
`synchronous`: FULL (every commit waits for the disk) and NORMAL (taskcron's
setting, which SqliteHuey takes by a storage that sets it). The floor is
tests/bench/forkfloor.py's `records`: a `BEGIN IMMEDIATE` claim and a
`BEGIN IMMEDIATE` finish in SQL of its own. Reported as time per task, so 1x
is the peer's rate; the rates are in a note. Jobs and tasks are queued
beforehand, untimed. Runs in the target's interpreter; `claim-huey` is
skipped without huey (the `bench` extra).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tests.bench import forkfloor, sqlitefill
from tests.bench.harness import Bench, Figures, Params, Skipped, row

Work = Callable[[], None]
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
#: `synchronous` by case, as PRAGMA values.
SYNCHRONOUS = {"synchronous=FULL": "FULL", "synchronous=NORMAL": "NORMAL"}


@row(
    name="claim-huey",
    title="claim+record per task, no child, vs SqliteHuey dequeue+execute with results",
    floor="SqliteHuey: dequeue, execute, result stored (WAL, the same synchronous)",
    goal=1.0,
    unit="us",
    quick={"runs": 3, "rounds": 50},
    full={"runs": 9, "rounds": 200},
    in_target=True,
    cases=tuple(SYNCHRONOUS),
)
def claim_huey(bench: Bench, params: Params) -> list[Figures]:
    """Time per task of taskcron's claim+record against SqliteHuey's, per `synchronous`."""
    try:
        import huey  # noqa: F401
    except ImportError:
        raise Skipped("huey is not installed here: pip install '.[bench]'") from None
    rounds = params["rounds"]
    count = rounds * (bench.warmup + bench.runs)
    found = []
    for case, synchronous in SYNCHRONOUS.items():
        directory = bench.directory(synchronous.lower())
        with (
            taskcron_store(directory / "tasks.db", count, synchronous) as store,
            huey_queue(directory / "huey.db", count, synchronous) as peer,
        ):
            figures = bench.time(lambda: take(store, rounds), peer(rounds), per=rounds)
        found.append(
            Figures(
                value=figures.value,
                floor=figures.floor,
                case=case,
                notes=rates(figures, "SqliteHuey"),
            )
        )
    return found


@row(
    name="claim-sql",
    title="claim+record per task, no child, vs bare SQL (2x = half its rate)",
    floor="BEGIN IMMEDIATE claim, BEGIN IMMEDIATE finish (forkfloor.py's records)",
    goal=2.0,
    unit="us",
    quick={"runs": 3, "rounds": 50},
    full={"runs": 9, "rounds": 200},
    in_target=True,
)
def claim_sql(bench: Bench, params: Params) -> Figures:
    """Time per task of taskcron's claim+record against the same in bare SQL, both NORMAL."""
    rounds = params["rounds"]
    count = rounds * (bench.warmup + bench.runs)
    directory = bench.directory("normal")
    floor_db = directory / "floor.db"
    forkfloor.fill(floor_db, count)
    db = forkfloor.connect(floor_db)
    try:
        with taskcron_store(directory / "tasks.db", count, "NORMAL") as store:
            figures = bench.time(
                lambda: take(store, rounds), lambda: forkfloor.records(db, rounds), per=rounds
            )
    finally:
        db.close()
    return Figures(value=figures.value, floor=figures.floor, notes=rates(figures, "bare SQL"))


def rates(figures: Figures, floor: str) -> tuple[str, ...]:
    value, base = 1 / figures.value.median, 1 / figures.floor.median
    return (
        f"taskcron {value:,.0f} tasks/s, {floor} {base:,.0f} tasks/s: {value / base:.2f}x its rate",
    )


@contextmanager
def taskcron_store(path: Path, count: int, synchronous: str) -> Iterator[Any]:
    """A SQLite store holding `count` due tasks, its connection set to `synchronous`."""
    from taskcron.store.sqlite import SqliteStore

    store = SqliteStore(path)
    try:
        sqlitefill.queue(store._db, count, now=NOW)
        store._db.execute(f"PRAGMA synchronous = {synchronous}")
        yield store
    finally:
        store.close()


def take(store: Any, rounds: int) -> None:
    """Claim the next task and record its run as done, `rounds` times."""
    from taskcron.model import Outcome, RunEnd, Scope
    from taskcron.schedule import RetryPolicy
    from taskcron.store import Lease

    policy = RetryPolicy(first=timedelta(seconds=10), cap=timedelta(hours=1))
    lease = Lease(host="bench", pid=os.getpid(), expires_at=NOW + timedelta(hours=1))
    end = RunEnd(outcome=Outcome.DONE, ended_at=NOW, elapsed=0.0)
    for _ in range(rounds):
        claimed = store.claim_next(scope=Scope(), now=NOW, lease=lease, decide=policy.after_run)
        if claimed.run is None:
            raise RuntimeError(f"the claim found no task ({claimed.outcome.value})")
        store.finish_run(claimed.run.id, end, decide=policy.after_run)


@contextmanager
def huey_queue(
    path: Path, count: int, synchronous: str
) -> Iterator[Callable[[int], Callable[[], None]]]:
    """A SqliteHuey at `path` (WAL, `synchronous`) holding `count` jobs of a task that
    returns a value; gives `work(rounds)`, a callable that dequeues and executes `rounds`."""
    from huey import Huey
    from huey.storage import SqliteStorage

    class Storage(SqliteStorage):  # type: ignore[misc]
        def _create_connection(self) -> Any:
            db = super()._create_connection()
            db.execute(f"PRAGMA synchronous = {synchronous}")
            return db

    peer = Huey("bench", storage_class=Storage, filename=str(path))

    @peer.task()
    def answer() -> int:
        return 1

    for _ in range(count):
        answer()

    def work(rounds: int) -> Work:
        def run() -> None:
            for _ in range(rounds):
                job = peer.dequeue()
                if job is None:
                    raise RuntimeError("SqliteHuey's queue ran dry")
                peer.execute(job)

        return run

    try:
        yield work
        if peer.storage.result_store_size() < 1:
            raise RuntimeError("SqliteHuey stored no result")
    finally:
        peer.storage.close()
