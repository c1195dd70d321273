"""`taskcron schedule`: adding one task from the shell costs about what starting Python does.

The home holds 10,000 future tasks over 50 module ids (tests/bench/sqlitefill.py),
as the `tick` row's does; each run adds one command task to it. A note under the
figure gives what checking a `--task` name costs: `schedule --task noop` (which
imports the config's module to find the name registered) against the same with
`--no-check`, from a project whose module registers `noop` and imports nothing else.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.bench.harness import Bench, Command, Figures, Params, row
from tests.bench.rows.tick import floor, idle_home

#: The project's task module: what a small application's `modules` entry holds.
TASKS = "import taskcron\n\n\n@taskcron.task\ndef noop(ctx, data):\n    pass\n"


@row(
    name="schedule",
    title="schedule one command task ({tasks:,} stored) vs floor",
    floor="python -c 'import click, sqlite3'",
    goal=1.4,
    unit="ms",
    quick={"runs": 5, "tasks": 10_000},
    full={"runs": 21, "tasks": 10_000},
)
def schedule(bench: Bench, params: Params) -> Figures:
    """`taskcron schedule bench -- true` against starting Python with click and sqlite3;
    noted: `schedule --task noop` against the same with `--no-check`."""
    home = idle_home(bench, "home", params["tasks"])
    command = bench.command(bench.script, "schedule", "bench", "--", "true", home=home)
    figures = bench.time(command, floor(bench, home))
    project = task_project(bench)
    named = ("schedule", "bench", "--task", "noop")
    timed = bench.time_each(
        {
            "checked": in_project(bench.command(bench.script, *named, home=home), project),
            "unchecked": in_project(
                bench.command(bench.script, *named, "--no-check", home=home), project
            ),
        }
    )
    checked, unchecked = timed["checked"].median, timed["unchecked"].median
    note = (
        f"schedule --task noop: {checked * 1e3:.1f} ms checked, {unchecked * 1e3:.1f} ms "
        f"with --no-check: {checked / unchecked:.2f}x"
    )
    return dataclasses.replace(figures, notes=(note,))


def task_project(bench: Bench) -> Path:
    """A directory with a taskcron.toml whose `modules` registers the handler `noop`."""
    project = bench.directory("project")
    (project / "bench_noop.py").write_text(TASKS)
    (project / "taskcron.toml").write_text('modules = ["bench_noop"]\n')
    return project


def in_project(command: Command, project: Path) -> Command:
    """`command` run in `project`, so that its config is read (its home stays the env's)."""
    return dataclasses.replace(command, cwd=project)
