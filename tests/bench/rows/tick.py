"""An idle `taskcron tick`: the cost cron pays every minute when nothing is due."""

from __future__ import annotations

from tests.bench.harness import Bench, Figures, Params, row


@row(
    name="tick",
    title="idle tick vs floor",
    floor="python -c 'import click, sqlite3'",
    goal=1.5,
    unit="ms",
    quick={"runs": 5},
    full={"runs": 21},
)
def tick(bench: Bench, params: Params) -> Figures:
    """Idle `taskcron tick` on an initialised home against starting the same Python
    with click and sqlite3 imported, which every command of ours pays anyway."""
    home = bench.directory("home")
    bench.command(bench.script, "init", home=home).run()
    return bench.time(
        bench.command(bench.script, "tick", home=home),
        bench.command(bench.python, "-c", "import click, sqlite3", home=home),
    )
