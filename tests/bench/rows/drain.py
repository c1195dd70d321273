"""`taskcron tick --drain`: what each forked no-op task costs beside the least the same
work needs (tests/bench/forkfloor.py) and beside RQ's forking worker
(tests/bench/rqpeer.py), the same number of jobs of the same no-op.

Reported as time per task, so the goal of 2x against the floor means at least
half its throughput, and 1x against RQ at least its rate. All are whole runs,
interpreter start included, taking turns. Runs in the target's interpreter
(it queues the tasks through the store).
"""

from __future__ import annotations

import dataclasses
import json
from contextlib import ExitStack
from datetime import datetime, timezone

from tests.bench import forkfloor, project, rqpeer, sqlitefill
from tests.bench.harness import Bench, Command, Figures, Params, Skipped, row

NOOP = json.dumps({"kind": "call", "value": "bench_jobs:noop"})


FLOOR = "against the fork + SQL floor (forkfloor.py)"
PEER = "against RQ's forking worker"


@row(
    name="drain",
    title="tick --drain, {tasks:,} no-op tasks, time per task",
    floor="claim, fork, wait, finish in one process (forkfloor.py); rq worker --burst",
    goal=2.0,
    unit="us",
    quick={"runs": 1, "tasks": 100},
    full={"runs": 3, "tasks": 2_000},
    in_target=True,
    cases=(FLOOR, PEER),
)
def drain(bench: Bench, params: Params) -> list[Figures]:
    """`tick --drain --max-tasks N` over N no-op callables against forkfloor.py over N
    (goal 2x: half its rate) and against `rq worker --burst --max-jobs N` (goal 1x:
    RQ's rate), the three taking turns; the RQ line is left out, saying why in a
    note, where RQ cannot run."""
    tasks = params["tasks"]
    # A long run warms itself, and the median of three sets a slow first one aside.
    bench = dataclasses.replace(bench, warmup=0)
    count = tasks * (bench.warmup + bench.runs)
    db = bench.directory("floor") / "floor.db"
    forkfloor.fill(db, count)
    subjects = {
        "drain": drain_tick(bench, tasks),
        "floor": bench.command(
            bench.python, forkfloor.__file__, str(db), str(tasks), home=db.parent
        ),
    }
    with ExitStack() as stack:
        try:
            subjects["rq"] = stack.enter_context(rqpeer.worker(bench, tasks, count))
            missing = None
        except Skipped as exc:
            missing = str(exc)
        timed = bench.time_each(subjects, per=tasks)
    value = timed["drain"]
    rate = f"taskcron {1 / value.median:,.0f} tasks/s"
    found = [
        Figures(
            value=value,
            floor=timed["floor"],
            case=FLOOR,
            notes=(
                f"{rate}, the floor {1 / timed['floor'].median:,.0f} tasks/s",
                *([f"no RQ line: {missing}"] if missing else []),
            ),
        )
    ]
    if "rq" in timed:
        notes = (f"{rate}, RQ {1 / timed['rq'].median:,.0f} jobs/s",)
        found.append(Figures(value=value, floor=timed["rq"], case=PEER, notes=notes, goal=1.0))
    return found


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
