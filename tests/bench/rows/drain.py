"""`taskcron tick --drain`: what each forked no-op task costs beside the least the same
work needs (tests/bench/forkfloor.py).

Reported as time per task, so the goal of 2x means at least half the floor's
throughput. Both are whole runs, interpreter start included. Runs in the
target's interpreter (it schedules through the API).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone

from tests.bench import forkfloor, project, sqlitefill
from tests.bench.harness import Bench, Command, Figures, Params, row

NOOP = json.dumps({"kind": "call", "value": "bench_jobs:noop"})


@row(
    name="drain",
    title="tick --drain vs floor, {tasks:,} no-op tasks, time per task (2x = half its rate)",
    floor="claim, fork, wait, finish in one process (forkfloor.py)",
    goal=2.0,
    unit="us",
    quick={"runs": 1, "tasks": 100},
    full={"runs": 3, "tasks": 2_000},
    in_target=True,
)
def drain(bench: Bench, params: Params) -> Figures:
    """`tick --drain --max-tasks N` over N no-op callables against forkfloor.py over N."""
    tasks = params["tasks"]
    # A long run warms itself, and the median of three sets a slow first one aside.
    bench = dataclasses.replace(bench, warmup=0)
    db = bench.directory("floor") / "floor.db"
    forkfloor.fill(db, tasks * (bench.warmup + bench.runs))
    floor = bench.command(bench.python, forkfloor.__file__, str(db), str(tasks), home=db.parent)
    return bench.time(drain_tick(bench, tasks), floor, per=tasks)


def drain_tick(bench: Bench, tasks: int) -> Command:
    """`tick --drain --max-tasks N` on a home holding N due `bench_jobs:noop` tasks for
    every run `bench` will make (queued in SQL: scheduling thousands costs more than
    the row)."""
    from taskcron.store.sqlite import SqliteStore

    drained = project.make(bench.directory("drain"))
    with SqliteStore(drained.home / "tasks.db") as store:
        count = tasks * (bench.warmup + bench.runs)
        sqlitefill.queue(store._db, count, now=datetime.now(timezone.utc), target=NOOP)
    argv = ("tick", "--drain", "--max-tasks", str(tasks))
    return bench.command(bench.script, *argv, home=drained.home)
