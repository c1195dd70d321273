"""`taskcron list` on 10,000 tasks: the table of every task costs what their JSON does.

The home holds `tasks` tasks, all queued from tomorrow on over 50 module ids
(tests/bench/sqlitefill.py), so `list` shows every one of them. The table
(`--limit 0`, every row) is timed against `list --json` on the same home: the
same tasks read from the store, printed as JSON.
"""

from __future__ import annotations

from tests.bench import sqlitefill
from tests.bench.harness import Bench, Figures, Params, row


@row(
    name="list",
    title="list --limit 0 ({tasks:,} tasks) vs list --json",
    floor="taskcron list --json on the same home",
    goal=2.0,
    unit="ms",
    quick={"runs": 3, "tasks": 10_000},
    full={"runs": 11, "tasks": 10_000},
)
def listing(bench: Bench, params: Params) -> Figures:
    """`list --limit 0` (the whole table) against `list --json` on a home of `tasks` tasks."""
    home = bench.directory("home")
    bench.command(bench.script, "init", home=home).run()
    sqlitefill.fill(home / "tasks.db", params["tasks"], future=True)
    table = bench.command(bench.script, "list", "--limit", "0", home=home)
    return bench.time(table, bench.command(bench.script, "list", "--json", home=home))
