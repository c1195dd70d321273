"""Several `tick --drain` at once on one SQLite home, each with a scope of its own: none
meets "database is locked".

For 2, 4 and 8 drainers, the home holds `tasks` due no-op callables
(`bench_jobs:noop`) in each of as many module ids; the drainers start together,
each `tick --drain --module bench.sN --max-tasks N`, and are timed to the
last one's end. The floor is one `tick --drain` over the same number of
tasks in every scope, on a home of its own; the two take turns. Reported as
time per task (so 1x is one drainer's rate), with the rates in a note. An
error is a drainer that exits non-zero or writes "locked" to its stderr: a
figure with any misses its goal, the only one (the ratio is for information:
on a machine of few cores, starting eight interpreters weighs on a short
drain). Runs in the target's interpreter (it queues
the tasks through the store).
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

from tests.bench import project, sqlitefill
from tests.bench.harness import Bench, Figures, Params, Timing, clean_env, row
from tests.bench.rows.drain import NOOP

DRAINERS = (2, 4, 8)


def case(drainers: int) -> str:
    return f"{drainers} drainers"


@row(
    name="drainers",
    title="concurrent tick --drain of different scopes, {tasks:,} no-op tasks each, per task",
    floor="one tick --drain over the same tasks (1x = its rate)",
    goal=None,
    unit="us",
    quick={"runs": 1, "tasks": 10},
    full={"runs": 3, "tasks": 40},
    in_target=True,
    cases=tuple(case(n) for n in DRAINERS),
)
def drainers(bench: Bench, params: Params) -> list[Figures]:
    """Time per task of N drainers of N scopes at once against one drainer, N = 2, 4, 8."""
    tasks = params["tasks"]
    bench = dataclasses.replace(bench, warmup=0)  # errors are what counts; the rates are a note
    found = []
    for count in DRAINERS:
        scopes = [f"bench.s{i}" for i in range(count)]
        total = bench.warmup + bench.runs
        crowd = home(bench, f"crowd-{count}", scopes, tasks * total)
        alone = home(bench, f"alone-{count}", scopes, tasks * total)
        timed: dict[str, list[float]] = {"crowd": [], "alone": []}
        errors, quoted = 0, []
        for i in range(total):
            for name in sorted(timed, reverse=i % 2 == 1):
                if name == "crowd":
                    argvs = [drain(bench, tasks, "--module", scope) for scope in scopes]
                    seconds, failed = together(argvs, crowd)
                else:
                    seconds, failed = together([drain(bench, tasks * count)], alone)
                errors += len(failed)
                quoted.extend(failed)
                if i >= bench.warmup:
                    timed[name].append(seconds / (tasks * count))
        value, floor = Timing.of(timed["crowd"], 1), Timing.of(timed["alone"], 1)
        notes = [
            f"{count} drainers {1 / value.median:,.0f} tasks/s, one {1 / floor.median:,.0f}"
            f" tasks/s; errors {errors}",
            *(f"error: {line}" for line in quoted[:3]),
        ]
        found.append(
            Figures(value=value, floor=floor, case=case(count), notes=tuple(notes), errors=errors)
        )
    return found


def home(bench: Bench, name: str, scopes: list[str], each: int) -> Path:
    """A project home holding `each` due no-op callables in every one of `scopes`."""
    from taskcron.store.sqlite import SqliteStore

    made = project.make(bench.directory(name))
    with SqliteStore(made.home / "tasks.db") as store:
        now = datetime.now(timezone.utc)
        for scope in scopes:
            sqlitefill.queue(store._db, each, now=now, module=scope, target=NOOP)
    return made.home


def drain(bench: Bench, tasks: int, *scope: str) -> list[str]:
    return [bench.script, "tick", "--drain", "--max-tasks", str(tasks), *scope]


def together(argvs: list[list[str]], home: Path) -> tuple[float, list[str]]:
    """Run the commands at once in `home`: seconds to the last one's end, and what went
    wrong (a non-zero exit, "locked" on stderr)."""
    env = clean_env(TASKCRON_HOME=str(home))
    start = time.perf_counter()
    running = [
        subprocess.Popen(
            argv, cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for argv in argvs
    ]
    outputs = [process.communicate()[1] for process in running]
    seconds = time.perf_counter() - start
    failed = []
    for process, err in zip(running, outputs, strict=True):
        if process.returncode != 0 or "locked" in err:
            failed.append(f"exit {process.returncode}: {err.strip()[:200]}")
    return seconds, failed
