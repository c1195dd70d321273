"""`taskcron schedule`: adding one task from the shell costs about what starting Python does.

The home holds 10,000 future tasks over 50 module ids (tests/bench/sqlitefill.py),
as the `tick` row's does; each run adds one command task to it.
"""

from __future__ import annotations

from tests.bench.harness import Bench, Figures, Params, row
from tests.bench.rows.tick import floor, idle_home


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
    """`taskcron schedule bench -- true` against starting Python with click and sqlite3."""
    home = idle_home(bench, "home", params["tasks"])
    command = bench.command(bench.script, "schedule", "bench", "--", "true", home=home)
    return bench.time(command, floor(bench, home))
