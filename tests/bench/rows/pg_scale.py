"""A claim on PostgreSQL costs about the same with a million tasks stored as with a thousand.

Two stores (schemas) of one database are filled in SQL (tests/pgstore.py):
1,000 tasks and `tasks` tasks, alike but for how many each module id holds
(50 module ids, all with due tasks; three tasks running under live leases of
another host), then VACUUM (ANALYZE)'d. The claim timed is a pool's
(`claim_next` over every module id, lanes of width 4), so it recovers
nothing, counts each module's lane and walks every module id's head; each
claimed task is then put back as it was, run deleted, untimed, so both stores
keep their size. Alternating between the stores, `rounds` claims a run.

Notes: whether any claim statement's plan at `tasks` stored reads a table
other than through an index (a Seq Scan), custom and generic plans; each
statement's plan on one line with the buffers it touches at both sizes; and
with `explain`, EXPLAIN (ANALYZE, BUFFERS) of each at `tasks` stored. Runs in
the target's interpreter (it opens stores).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from tests import pgstore
from tests.bench import postgres
from tests.bench.harness import Bench, Figures, Params, Timing, row

SMALL = 1_000
#: Tasks running under live leases of another host in each store.
RUNNING = 3
#: Every lane wider than what runs in it, so no module id is left out of the line.
WIDTHS = {"app": 4}


@row(
    name="pg-scale",
    title="claim_next on PostgreSQL at {tasks:,} stored vs 1,000 stored",
    floor="the same claim at 1,000 stored",
    goal=1.5,
    unit="us",
    quick={"runs": 5, "tasks": 100_000, "rounds": 5, "explain": 0},
    full={"runs": 15, "tasks": 1_000_000, "rounds": 10, "explain": 1},
    in_target=True,
)
def pg_scale(bench: Bench, params: Params) -> Figures:
    """Median time of a pool's `claim_next` with `tasks` stored against 1,000 stored."""
    from taskcron.store.postgres import PostgresStore

    large_count, rounds = params["tasks"], params["rounds"]
    with postgres.server() as server:
        url = server.fresh_database()
        with (
            PostgresStore(f"{url}&schema=small") as small,
            PostgresStore(f"{url}&schema=large") as large,
        ):
            for store, count in ((small, SMALL), (large, large_count)):
                pgstore.fill(store._db, count, running=RUNNING)
            timed: dict[str, list[float]] = {"small": [], "large": []}
            stores = {"small": small, "large": large}
            for i in range(bench.warmup + bench.runs):
                for name in sorted(stores, reverse=i % 2 == 1):
                    seconds = claims(stores[name], rounds)
                    if i >= bench.warmup:
                        timed[name].append(seconds)
            notes = plans(small, large, large_count, explain=bool(params["explain"]))
    return Figures(
        value=Timing.of(timed["large"], rounds),
        floor=Timing.of(timed["small"], rounds),
        notes=notes,
    )


def claims(store: Any, rounds: int) -> float:
    """Seconds `rounds` pool claims took, each claimed task put back (untimed) after it."""
    from taskcron.model import Lanes, Scope
    from taskcron.schedule import RetryPolicy
    from taskcron.store import Lease

    policy = RetryPolicy(first=timedelta(seconds=10), cap=timedelta(hours=1))
    lanes = Lanes(WIDTHS)
    total = 0.0
    for _ in range(rounds):
        now = datetime.now(timezone.utc)
        lease = Lease(host="bench", pid=1, expires_at=now + timedelta(hours=1))
        start = time.perf_counter()
        claimed = store.claim_next(
            scope=Scope(), now=now, lease=lease, decide=policy.after_run, lanes=lanes
        )
        total += time.perf_counter() - start
        if claimed.task is None or claimed.run is None or claimed.recovered:
            raise RuntimeError(f"the claim did not claim a task alone: {claimed}")
        pgstore.put_back(store._db, claimed.task.id, claimed.run.id)
    return total


def plans(small: Any, large: Any, count: int, *, explain: bool) -> tuple[str, ...]:
    """The notes on the claim statements' plans (see the module docstring)."""
    statements = {
        size: pgstore.claim_statements(store) for size, store in (("s", small), ("l", large))
    }
    scans = [
        f"{name} ({'generic' if generic else 'custom'} plan: {', '.join(found)})"
        for name, (sql, params) in statements["l"].items()
        for generic in (False, True)
        if (found := pgstore.table_scans(pgstore.plan(large._db, sql, params, generic=generic)))
    ]
    lines = [
        f"Seq Scan in the plans at {count:,} stored: "
        + (
            "; ".join(scans)
            if scans
            else f"none ({len(statements['l'])} statements, custom and generic plans)"
        )
    ]
    width = max(len(name) for name in statements["l"])
    for name, (sql, params) in statements["l"].items():
        top = pgstore.plan(large._db, sql, params, analyze=True)
        before = pgstore.plan(small._db, *statements["s"][name], analyze=True)
        lines.append(
            f"{name:<{width}}  {pgstore.shape(top)}; buffers {pgstore.buffers(top)}"
            f" ({pgstore.buffers(before)} at {SMALL:,})"
        )
    if explain:
        for name, (sql, params) in statements["l"].items():
            lines.append(f"EXPLAIN (ANALYZE, BUFFERS) {name} at {count:,} stored:")
            lines.extend(f"    {line}" for line in pgstore.text(large._db, sql, params))
    return tuple(lines)
