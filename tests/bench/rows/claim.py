"""Choosing and claiming the next task never scans: a large store costs what a small one does.

Stores of 1,000 tasks and of `tasks` tasks are filled in SQL
(tests/bench/sqlitefill.py: 50 module ids, every state, two tasks of every
twenty due), alike but for how many tasks each module id holds. The claim
timed is `claim_next` (recovering nothing: no task runs), in three scopes:
every module id, `--module app.m01` and `--except app.m01`; each claimed task
is put back as it was, untimed, so both stores keep their size. Alternating
between the stores, `rounds` claims a run. Two rows: 100,000 stored and a
million (`claim-1m`), each scope a line.

Notes: each statement a claim runs, literals left out, with its
`EXPLAIN QUERY PLAN` at `tasks` stored, and any plan that reads a table
without an index (`SCAN tasks`, not `USING ... INDEX`). Runs in the target's
interpreter (it opens stores).
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from tests.bench import sqlitefill
from tests.bench.harness import Bench, Figures, Params, Timing, row

if TYPE_CHECKING:
    from taskcron.model import Scope
    from taskcron.store.sqlite import SqliteStore

SMALL = 1_000
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
MODULE = sqlitefill.module_id(1)
#: The scopes claimed in, by case: what `tick` would be given.
SCOPES = {
    "every module id": {},
    f"--module {MODULE}": {"modules": (MODULE,)},
    f"--except {MODULE}": {"excepts": (MODULE,)},
}
#: A literal in a statement, left out so that statements differing only in them are one.
LITERAL = re.compile(r"'[^']*'|\b\d+\b")


def measure(bench: Bench, params: Params) -> list[Figures]:
    """Median time of one `claim_next` in each scope with `tasks` stored against 1,000."""
    from taskcron.model import Scope
    from taskcron.store.sqlite import SqliteStore

    count, rounds = params["tasks"], params["rounds"]
    stores = {}
    for name, size in (("small", SMALL), ("large", count)):
        path = bench.directory(name) / "tasks.db"
        SqliteStore(path).close()
        sqlitefill.fill(path, size, now=NOW)
        stores[name] = SqliteStore(path)
    found, printed = [], set()
    try:
        for case, scope in ((case, Scope(**fields)) for case, fields in SCOPES.items()):
            timed: dict[str, list[float]] = {"small": [], "large": []}
            for i in range(bench.warmup + bench.runs):
                for name in sorted(stores, reverse=i % 2 == 1):
                    seconds = claims(stores[name], scope, rounds)
                    if i >= bench.warmup:
                        timed[name].append(seconds)
            notes = plans(stores["large"], scope, count, printed)
            found.append(
                Figures(
                    value=Timing.of(timed["large"], rounds),
                    floor=Timing.of(timed["small"], rounds),
                    case=case,
                    notes=notes,
                )
            )
    finally:
        for store in stores.values():
            store.close()
    return found


def claim(store: SqliteStore, scope: Scope) -> tuple[int, int]:
    """One `claim_next` in `scope`: the task claimed and its run."""
    from taskcron.schedule import RetryPolicy
    from taskcron.store import Lease

    policy = RetryPolicy(first=timedelta(seconds=10), cap=timedelta(hours=1))
    lease = Lease(host="bench", pid=os.getpid(), expires_at=NOW + timedelta(hours=1))
    claimed = store.claim_next(scope=scope, now=NOW, lease=lease, decide=policy.after_run)
    if claimed.task is None or claimed.run is None or claimed.recovered:
        raise RuntimeError(f"the claim did not claim a task alone: {claimed}")
    return claimed.task.id, claimed.run.id


def claims(store: SqliteStore, scope: Scope, rounds: int) -> float:
    """Seconds `rounds` claims took, each claimed task put back (untimed) after it."""
    total = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        task, run = claim(store, scope)
        total += time.perf_counter() - start
        sqlitefill.put_back(store._db, task, run)
    return total


def plans(store: SqliteStore, scope: Scope, count: int, printed: set[str]) -> tuple[str, ...]:
    """The notes on one claim's statements in `scope`: any that reads a table without an
    index, then each statement not yet in `printed` with its plan."""
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)  # expanded: the values are in the text
    try:
        task, run = claim(store, scope)
    finally:
        store._db.set_trace_callback(None)
    sqlitefill.put_back(store._db, task, run)
    seen: dict[str, tuple[int, str]] = {}
    for sql in statements:
        if sql.split(None, 1)[0].upper() not in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            continue
        shape = " ".join(LITERAL.sub("?", sql).split())
        times, plan = seen.get(shape, (0, ""))
        if not plan:
            rows = store._db.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
            plan = "; ".join(detail for *_, detail in rows)
        seen[shape] = (times + 1, plan)
    scans = [shape for shape, (_, plan) in seen.items() if full_scan(plan)]
    lines = [
        f"table scans in the plans at {count:,} stored: "
        + ("; ".join(scans) if scans else f"none ({len(seen)} statements)")
    ]
    for shape, (times, plan) in seen.items():
        if shape not in printed:
            printed.add(shape)
            lines.append(f"{times}x {shorten(shape)}")
            lines.append(f"    EXPLAIN QUERY PLAN: {plan}")
    return tuple(lines)


def full_scan(plan: str) -> bool:
    """Whether a plan reads a table without an index."""
    return any(
        step.startswith("SCAN") and "INDEX" not in step and "CONSTANT ROW" not in step
        for step in (part.strip() for part in plan.split(";"))
    )


def shorten(sql: str, width: int = 150) -> str:
    return sql if len(sql) <= width else sql[: width - 3] + "..."


for name, full, quick in (("claim", 100_000, 5_000), ("claim-1m", 1_000_000, 20_000)):
    row(
        name=name,
        title="claim_next at {tasks:,} stored vs 1,000 stored",
        floor="the same claim at 1,000 stored",
        goal=1.5,
        unit="us",
        quick={"runs": 5, "tasks": quick, "rounds": 10},
        full={"runs": 15, "tasks": full, "rounds": 20},
        in_target=True,
        cases=tuple(SCOPES),
    )(measure)
