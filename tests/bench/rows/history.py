"""A task's long history: the tick that runs it, `tick --json` and `show` at
`runs` runs stored against the same at 100.

One task recurring hourly, its runs inserted in bulk (each with a 200-byte
output tail), the `[history]` limits off so that nothing is trimmed while
timing. Before each timed command the task is made due again (one UPDATE,
in the subject and the floor alike). A claim and a finish read the task and
its current run only, `tick --json` prints the run it ran and `show` the
newest 20: none of them should pay for the history. The tick's peak memory at
both sizes is a note under its line.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tests.bench.harness import Bench, Command, Figures, Params, row

SMALL = 100
NO_LIMITS = '[history]\nkeep_runs = 0\nkeep_for = "0s"\n'
CASES = {"tick": ("tick",), "tick --json": ("tick", "--json"), "show": ("show", "1")}


def history_home(bench: Bench, name: str, runs: int) -> Path:
    """A home with task 1 recurring hourly and `runs` ended runs of it, nothing trimmed."""
    home = bench.directory(name)
    (home / "taskcron.toml").write_text(NO_LIMITS)
    bench.command(bench.script, "init", home=home).run()
    bench.command(bench.script, "schedule", "m", "--every", "1h", "--", "true", home=home).run()
    with sqlite3.connect(home / "tasks.db") as db:
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO runs (task_id, attempt, started_at, ended_at, elapsed, outcome,"
            " output_tail, host, pid) SELECT 1, 1, i, i, 0.01, 'done', printf('%.200c', 'x'),"
            " 'h', 1 FROM n",
            (runs,),
        )
        db.execute("INSERT INTO task_outcomes VALUES (1, 'done', ?)", (runs,))
    db.close()
    return home


def due_then(home: Path, command: Command) -> Callable[[], None]:
    """Make task 1 due now, then run `command`."""

    def run() -> None:
        with sqlite3.connect(home / "tasks.db") as db:
            db.execute("UPDATE tasks SET due_at = 0 WHERE id = 1")
        db.close()
        command.run()

    return run


@row(
    name="history",
    title="a task with {history:,} runs vs 100 runs",
    floor="the same command on a task with 100 runs",
    goal=1.2,
    unit="ms",
    quick={"runs": 3, "history": 10_000},
    full={"runs": 11, "history": 100_000},
    cases=tuple(CASES),
)
def history(bench: Bench, params: Params) -> list[Figures]:
    """Each command on a task of `history` runs against the same on one of 100."""
    large = history_home(bench, "large", params["history"])
    small = history_home(bench, "small", SMALL)
    figures = []
    for case, argv in CASES.items():
        big, little = (bench.command(bench.script, *argv, home=h) for h in (large, small))
        timed = bench.time(due_then(large, big), due_then(small, little))
        figures.append(replace(timed, case=case))
    peaks = [peak_tick(bench, home) for home in (large, small)]
    note = (
        f"a tick's peak RSS: {peaks[0] / 1e6:.1f} MB vs {peaks[1] / 1e6:.1f} MB"
        f" ({peaks[0] / peaks[1]:.2f}x, goal 1.2x)"
    )
    figures[0] = replace(figures[0], notes=(note,))
    return figures


def peak_tick(bench: Bench, home: Path) -> int:
    """The peak resident set, in bytes, of a tick that runs task 1."""
    with sqlite3.connect(home / "tasks.db") as db:
        db.execute("UPDATE tasks SET due_at = 0 WHERE id = 1")
    db.close()
    return bench.command(bench.script, "tick", home=home).peak_rss()
