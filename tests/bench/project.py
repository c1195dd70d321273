"""A project for the rows that run tasks: its code, its taskcron.toml, its home, tasks in bulk.

`make(directory)` writes two modules and a taskcron.toml listing one of them:

- `bench_jobs`: plain functions any runner can import (RQ's worker too):
  `noop`, `nap` (sleeps `data["seconds"]`) and `stamp` (writes `time.time()`
  at its start to `data["path"]`);
- `bench_tasks`: the registered handler `noop` (`@taskcron.task`).

The home is `<directory>/.taskcron`, beside the config, with its store made;
`bench.command(..., home=project.home)` runs in the home, so a command finds
the config in its parent. `schedule` adds tasks through the API in this
process, which is far quicker than the CLI for thousands: a row that calls it
imports taskcron, so it is `in_target`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOBS = '''\
"""Plain functions for the benchmark to run as tasks or jobs."""

import os
import time


def noop(ctx=None, data=None):
    pass


def nap(ctx, data):
    time.sleep(data["seconds"])


def stamp(ctx, data):
    started = time.time()
    path = data["path"]
    with open(path + ".part", "w") as handle:
        handle.write(repr(started))
    os.replace(path + ".part", path)
'''

TASKS = '''\
"""A registered handler for the benchmark."""

import taskcron


@taskcron.task
def noop(ctx, data):
    pass
'''


@dataclass(frozen=True, slots=True, kw_only=True)
class Project:
    """A project directory with the benchmark's task code and config, and its home."""

    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / "taskcron.toml"

    @property
    def home(self) -> Path:
        return self.directory / ".taskcron"


def make(directory: Path, **settings: str) -> Project:
    """The project in `directory`, its config holding `settings` (TOML values) besides
    `modules`, and its home and store made."""
    from taskcron import TaskCron

    (directory / "bench_jobs.py").write_text(JOBS)
    (directory / "bench_tasks.py").write_text(TASKS)
    lines = ['modules = ["bench_tasks"]', *(f"{key} = {value}" for key, value in settings.items())]
    project = Project(directory=directory)
    project.config.write_text("\n".join(lines) + "\n")
    with TaskCron(config=project.config) as app:
        app.store  # noqa: B018 -- opening it makes the home and the store
    return project


def schedule(
    project: Project, count: int, *, modules: Sequence[str] = ("bench",), **target: Any
) -> None:
    """`count` tasks due now, each `app.schedule(module, **target)`, taking `modules` in turn."""
    from taskcron import TaskCron

    with TaskCron(config=project.config) as app:
        for i in range(count):
            app.schedule(modules[i % len(modules)], **target)
