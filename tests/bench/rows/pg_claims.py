"""Claims per second on PostgreSQL against SQLite, with 1, 4 and 8 processes at once.

Each process opens its own connection to the store and, in bursts of a fixed
length, claims the next task and finishes it as done (`claim_next` then
`finish_run`, no child process), over and over. The claims are a pool's:
scope every module id, lanes of width 8 over four module ids, so that eight
processes really claim at once (a plain tick's claim finds its scope busy
while another runs; lanes let up to their width run). Bursts on the two
stores take turns, and each case (a number of processes) is one line: time
per task on PostgreSQL against time per task on SQLite, the aggregate over
all processes, with both rates and the errors (which must be none) in a note.

A burst is timed from a start every process waits for to the last one's end.
Between bursts, untimed, each store gets as many new due tasks as the last
burst took, so the line never runs dry. Runs in the target's interpreter (it
opens stores); the processes are forked from it.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

from tests.bench import postgres
from tests.bench.harness import Bench, Figures, Params, Timing, row

#: A store (SqliteStore or PostgresStore: a context manager), typed loosely so that
#: loading the registry imports no taskcron.
Store = Any

PROCESSES = (1, 4, 8)
MODULES = ("bench.a", "bench.b", "bench.c", "bench.d")
#: Every lane as wide as the most processes, so no claim waits for a lane.
WIDTHS = {"bench": max(PROCESSES)}
#: Due tasks each store holds before the first burst, per second of a burst.
QUEUED_PER_SECOND = 20_000
#: Errors quoted when a row fails for them.
QUOTED = 3


def case(processes: int) -> str:
    return "1 process" if processes == 1 else f"{processes} processes"


@row(
    name="pg-claims",
    title="claim+finish per task, pool claims, PostgreSQL vs SQLite ({burst_ms:,} ms bursts)",
    floor="the same on SQLite (WAL), the same processes, in turns",
    goal=2.0,
    unit="us",
    quick={"runs": 2, "processes": 8, "burst_ms": 300},
    full={"runs": 4, "processes": 8, "burst_ms": 1_000},
    in_target=True,
    cases=tuple(case(n) for n in PROCESSES),
)
def pg_claims(bench: Bench, params: Params) -> list[Figures]:
    """Time per claimed and finished task with 1, 4 and 8 processes (up to `processes`),
    PostgreSQL against SQLite; fails when any claim or finish went wrong."""
    from taskcron.store.postgres import PostgresStore
    from taskcron.store.sqlite import SqliteStore

    bench = dataclasses.replace(bench, warmup=1)  # a burst of hundreds of claims warms itself
    seconds = params["burst_ms"] / 1000
    found, errors, quoted = [], 0, []
    with postgres.server() as server:
        for processes in (n for n in PROCESSES if n <= params["processes"]):
            url = server.fresh_database()
            path = bench.directory(f"sqlite-{processes}") / "tasks.db"
            lines = {
                "PostgreSQL": Line(partial(PostgresStore, url), queue_postgres),
                "SQLite": Line(partial(SqliteStore, path), queue_sqlite),
            }
            figures, failed, said = compare(bench, lines, processes, seconds)
            found.append(figures)
            errors += failed
            quoted.extend(f"{case(processes)}, {error}" for error in said)
    if errors:
        summary = "; ".join(f"{figures.case}: {figures.notes[0]}" for figures in found)
        raise RuntimeError(f"{errors} errors ({summary}), among them:\n" + "\n".join(quoted))
    return found


@dataclasses.dataclass(frozen=True, slots=True)
class Line:
    """A store to claim from: how to open it, and how to add due tasks to it."""

    open: Callable[[], Store]
    queue: Callable[[Any, int], None]


@dataclasses.dataclass(frozen=True, slots=True)
class Burst:
    """What every process of one burst did together."""

    tasks: int
    seconds: float
    errors: int
    quoted: list[str]  #: The first few errors of each process.


def compare(
    bench: Bench, lines: dict[str, Line], processes: int, seconds: float
) -> tuple[Figures, int, list[str]]:
    """Bursts of `processes` processes on each line in turns: PostgreSQL's time per task
    against SQLite's, how many errors either met, and the first few of them."""
    for line in lines.values():
        with line.open() as store:
            line.queue(store, max(5_000, int(QUEUED_PER_SECOND * seconds)))
    crowds = {name: Crowd(line.open, processes) for name, line in lines.items()}
    stores = {name: line.open() for name, line in lines.items()}
    timed: dict[str, list[float]] = {name: [] for name in lines}
    errors, quoted = 0, []
    try:
        for i in range(bench.warmup + bench.runs):
            for name in sorted(lines, reverse=i % 2 == 1):
                burst = crowds[name].burst(seconds)
                lines[name].queue(stores[name], burst.tasks)
                errors += burst.errors
                quoted.extend(f"{name}: {error}" for error in burst.quoted)
                if i >= bench.warmup:
                    timed[name].append(burst.seconds / max(burst.tasks, 1))
        for crowd in crowds.values():
            crowd.close()
        for name, store in stores.items():
            problems = left_over(store)
            errors += len(problems)
            quoted.extend(f"{name}: {problem}" for problem in problems)
    finally:
        for crowd in crowds.values():
            crowd.close()
        for store in stores.values():
            store.close()
    value, floor = Timing.of(timed["PostgreSQL"], 1), Timing.of(timed["SQLite"], 1)
    notes = (
        f"PostgreSQL {1 / value.median:,.0f} tasks/s, SQLite {1 / floor.median:,.0f} tasks/s:"
        f" PostgreSQL/SQLite {floor.median / value.median:.2f}x; errors {errors}",
    )
    return Figures(value=value, floor=floor, case=case(processes), notes=notes), errors, quoted


def left_over(store: Store) -> list[str]:
    """What is wrong with a store after the bursts: tasks left running, integrity problems."""
    from taskcron.model import Scope, State

    running = store.list(scope=Scope(), states=[State.RUNNING])
    problems = [f"task {task.id} is left running" for task in running]
    return problems + [f"integrity: {problem}" for problem in store.integrity()]


class Crowd:
    """Processes forked from this one, each with its own connection to one store, that
    claim and finish tasks together when told to."""

    def __init__(self, open_store: Callable[[], Store], processes: int) -> None:
        context = multiprocessing.get_context("fork")
        self.pipes: list[Connection] = []
        self.workers = []
        for _ in range(processes):
            ours, theirs = context.Pipe()
            worker = context.Process(target=claim_loop, args=(open_store, theirs), daemon=True)
            worker.start()
            theirs.close()
            self.pipes.append(ours)
            self.workers.append(worker)

    def burst(self, seconds: float) -> Burst:
        """Every process claims and finishes from a common start for `seconds`."""
        start = time.monotonic() + 0.05  # every process has its order by then
        for pipe in self.pipes:
            pipe.send((start, start + seconds))
        answers = [pipe.recv() for pipe in self.pipes]
        return Burst(
            tasks=sum(tasks for tasks, _, _, _ in answers),
            seconds=max(ended for _, ended, _, _ in answers) - start,
            errors=sum(errors for _, _, errors, _ in answers),
            quoted=[error for _, _, _, quoted in answers for error in quoted],
        )

    def close(self) -> None:
        """Stop every process (once)."""
        pipes, self.pipes = self.pipes, []
        for pipe in pipes:
            pipe.send(None)
        for worker in self.workers:
            worker.join(timeout=30)
            if worker.exitcode != 0:
                raise RuntimeError(f"a claiming process exited {worker.exitcode}")


def claim_loop(open_store: Callable[[], Store], pipe: Connection) -> None:
    """A process of a crowd: for each (start, end) it gets, claim and finish from start
    until end, then answer (tasks, when it ended, errors); stop on None."""
    from taskcron.model import Lanes
    from taskcron.schedule import RetryPolicy

    policy = RetryPolicy(first=timedelta(seconds=10), cap=timedelta(hours=1))
    lanes = Lanes(WIDTHS)
    with open_store() as store:
        while (order := pipe.recv()) is not None:
            start, end = order
            time.sleep(max(start - time.monotonic(), 0))
            tasks, errors = 0, []
            while time.monotonic() < end:
                try:
                    problem = claim_and_finish(store, policy.after_run, lanes)
                except Exception as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                if problem is None:
                    tasks += 1
                else:
                    errors.append(problem)
            pipe.send((tasks, time.monotonic(), len(errors), errors[:QUOTED]))


def claim_and_finish(store: Store, decide: Any, lanes: Any) -> str | None:
    """Claim the next task as a pool does and finish it as done; what went wrong, if anything."""
    from taskcron.model import Outcome, RunEnd, Scope
    from taskcron.store import Lease

    now = datetime.now(timezone.utc)
    lease = Lease(
        host=store.host, pid=os.getpid(), expires_at=now + timedelta(hours=1), machine=store.machine
    )
    claimed = store.claim_next(scope=Scope(), now=now, lease=lease, decide=decide, lanes=lanes)
    if claimed.run is None:
        return f"the claim found no task ({claimed.outcome.value})"
    end = RunEnd(outcome=Outcome.DONE, ended_at=datetime.now(timezone.utc), elapsed=0.0)
    if store.finish_run(claimed.run.id, end, decide=decide) is None:
        return f"run {claimed.run.id} was recovered before it finished"
    return None


def queue_postgres(store: Any, count: int) -> None:
    """`count` more due tasks, the module ids in turn, in one statement."""
    store._db.execute(
        "INSERT INTO tasks (module, title, target, data, priority, state, due_at, attempts,"
        " max_attempts, created_at, updated_at)"
        ' SELECT (%s::text[])[g %% %s + 1], \'b\', \'{"kind": "command", "value": ["true"]}\','
        " 'null', 0, 'queued', now() - interval '1 second', 0, 1, now(), now()"
        " FROM generate_series(0, %s - 1) AS g",
        (list(MODULES), len(MODULES), count),
    )


def queue_sqlite(store: Any, count: int) -> None:
    """`count` more due tasks, the module ids in turn, in one transaction."""
    due = int((datetime.now(timezone.utc) - timedelta(seconds=1)).timestamp() * 1_000_000)
    target = '{"kind": "command", "value": ["true"]}'
    rows = [(MODULES[i % len(MODULES)], target, due, due, due) for i in range(count)]
    store._db.execute("BEGIN")
    store._db.executemany(
        "INSERT INTO tasks (module, title, target, data, priority, state, due_at, attempts,"
        " max_attempts, created_at, updated_at)"
        " VALUES (?, 'b', ?, 'null', 0, 'queued', ?, 0, 1, ?, ?)",
        rows,
    )
    store._db.execute("COMMIT")
