"""`taskcron tick --drain`: what each forked no-op task costs beside the least the same
work needs (tests/bench/forkfloor.py).

Reported as time per task, so the goal of 2x means at least half the floor's
throughput. Both are whole runs, interpreter start included. Runs in the
target's interpreter (it schedules through the API).
"""

from __future__ import annotations

import dataclasses

from tests.bench import forkfloor, project
from tests.bench.harness import Bench, Command, Figures, Params, row


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
    bench = dataclasses.replace(bench, warmup=1)  # a run of hundreds of tasks warms itself
    db = bench.directory("floor") / "floor.db"
    forkfloor.fill(db, tasks * (bench.warmup + bench.runs))
    floor = bench.command(bench.python, forkfloor.__file__, str(db), str(tasks), home=db.parent)
    return bench.time(drain_tick(bench, tasks), floor, per=tasks)


def drain_tick(bench: Bench, tasks: int) -> Command:
    """`tick --drain --max-tasks N` on a home holding N due `bench_jobs:noop` tasks for
    every run `bench` will make."""
    drained = project.make(bench.directory("drain"))
    project.schedule(drained, tasks * (bench.warmup + bench.runs), call="bench_jobs:noop")
    argv = ("tick", "--drain", "--max-tasks", str(tasks))
    return bench.command(bench.script, *argv, home=drained.home)
