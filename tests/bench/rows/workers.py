"""A pool of two: `tick --workers 2` against `tick --drain` (one worker) on tasks that wait.

Reported as time per task, so the goal of 0.67x means a speed-up of at least
1.5x. Each task sleeps 20 ms, so that two at once can show on two cores;
the tasks take four module ids in turn (each module id is a lane of one).
Runs in the target's interpreter (it schedules through the API).
"""

from __future__ import annotations

import dataclasses

from tests.bench import project
from tests.bench.harness import Bench, Command, Figures, Params, row

NAP = 0.02
LANES = ("bench.a", "bench.b", "bench.c", "bench.d")


@row(
    name="workers",
    title="tick --workers 2 vs --drain, {tasks:,} tasks of 20 ms, per task (0.67x = 1.5x faster)",
    floor="tick --drain (one worker), the same tasks",
    goal=0.67,
    unit="ms",
    quick={"runs": 1, "tasks": 8},
    full={"runs": 3, "tasks": 200},
    in_target=True,
)
def workers(bench: Bench, params: Params) -> Figures:
    """Time per task of `tick --workers 2 --max-tasks N` against `tick --drain --max-tasks N`."""
    tasks = params["tasks"]
    # A long run warms itself, and the median of three sets a slow first one aside.
    bench = dataclasses.replace(bench, warmup=0)
    pool = napping(bench, "pool", tasks, "--workers", "2")
    drain = napping(bench, "drain", tasks, "--drain")
    return bench.time(pool, drain, per=tasks)


def napping(bench: Bench, name: str, tasks: int, *options: str) -> Command:
    """`tick OPTIONS --max-tasks N` on a home of its own holding N napping tasks for every
    run `bench` will make."""
    home = project.make(bench.directory(name))
    count = tasks * (bench.warmup + bench.runs)
    project.schedule(home, count, modules=LANES, call="bench_jobs:nap", data={"seconds": NAP})
    return bench.command(bench.script, "tick", *options, "--max-tasks", str(tasks), home=home.home)
