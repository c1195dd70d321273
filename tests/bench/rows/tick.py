"""An idle `taskcron tick`: the cost cron pays every minute when nothing is due.

The home holds `tasks` tasks, all queued from tomorrow on over 50 module ids
(tests/bench/sqlitefill.py), so the tick looks at every module id's line and
finds nothing due. Five rows: its time and its peak memory against starting
the same Python with click and sqlite3 imported, which every command of ours
pays anyway, its time with an alert rule in the config against the same floor,
its time with the metrics' textfile configured (which it only touches) against it too,
and its time with a million tasks stored against the same with 10,000.
"""

from __future__ import annotations

from pathlib import Path

from tests.bench import sqlitefill
from tests.bench.harness import Bench, Command, Figures, Params, Timing, row

FLOOR = ("-c", "import click, sqlite3")


def idle_home(bench: Bench, name: str, tasks: int) -> Path:
    """An initialised home holding `tasks` future tasks."""
    home = bench.directory(name)
    bench.command(bench.script, "init", home=home).run()
    sqlitefill.fill(home / "tasks.db", tasks, future=True)
    return home


def floor(bench: Bench, home: Path) -> Command:
    """`python -c 'import click, sqlite3'` with the target's interpreter."""
    return bench.command(bench.python, *FLOOR, home=home)


@row(
    name="tick",
    title="idle tick ({tasks:,} future tasks) vs floor",
    floor="python -c 'import click, sqlite3'",
    goal=1.3,
    unit="ms",
    quick={"runs": 5, "tasks": 10_000},
    full={"runs": 21, "tasks": 10_000},
)
def tick(bench: Bench, params: Params) -> Figures:
    """Idle `taskcron tick` against starting Python with click and sqlite3 imported."""
    home = idle_home(bench, "home", params["tasks"])
    return bench.time(bench.command(bench.script, "tick", home=home), floor(bench, home))


#: An alert rule, as a project would keep one: an idle tick reads it, checked in shape.
ALERT_RULE = '[[alerts]]\nname = "ops"\nwebhook = "https://hooks.example.com/taskcron"\n'


@row(
    name="tick-alerts",
    title="idle tick ({tasks:,} future tasks) with [[alerts]] vs floor",
    floor="python -c 'import click, sqlite3'",
    goal=1.3,
    unit="ms",
    quick={"runs": 5, "tasks": 10_000},
    full={"runs": 21, "tasks": 10_000},
)
def tick_alerts(bench: Bench, params: Params) -> Figures:
    """Idle `taskcron tick` of a home whose config holds an alert rule, against starting
    Python with click and sqlite3 imported."""
    home = idle_home(bench, "home", params["tasks"])
    (home / "taskcron.toml").write_text(ALERT_RULE)
    return bench.time(bench.command(bench.script, "tick", home=home), floor(bench, home))


#: The metrics' textfile, which an idle tick only touches.
METRICS = '[metrics]\ntextfile = "taskcron.prom"\n'


@row(
    name="idle-metrics",
    title="idle tick ({tasks:,} future tasks) with [metrics] vs floor",
    floor="python -c 'import click, sqlite3'",
    goal=1.3,
    unit="ms",
    quick={"runs": 5, "tasks": 10_000},
    full={"runs": 21, "tasks": 10_000},
)
def idle_metrics(bench: Bench, params: Params) -> Figures:
    """Idle `taskcron tick` of a home whose config has a textfile written (which it only
    touches), against starting Python with click and sqlite3 imported."""
    home = idle_home(bench, "home", params["tasks"])
    (home / "taskcron.toml").write_text(METRICS)
    (home / "taskcron.prom").write_text("")
    return bench.time(bench.command(bench.script, "tick", home=home), floor(bench, home))


@row(
    name="tick-rss",
    title="idle tick ({tasks:,} future tasks) vs floor, peak RSS, the largest of {runs} runs",
    floor="python -c 'import click, sqlite3', the same",
    goal=1.25,
    unit="MB",
    quick={"runs": 3, "tasks": 10_000},
    full={"runs": 9, "tasks": 10_000},
)
def tick_rss(bench: Bench, params: Params) -> Figures:
    """The largest peak resident set of `runs` idle ticks against that of the floor's
    runs, the two taking turns (`Command.peak_rss`)."""
    home = idle_home(bench, "home", params["tasks"])
    subject, base = bench.command(bench.script, "tick", home=home), floor(bench, home)
    values: list[int] = []
    floors: list[int] = []
    for i in range(bench.runs):
        pair = (subject, base) if i % 2 == 0 else (base, subject)
        for command in pair:
            (values if command is subject else floors).append(command.peak_rss())
    return Figures(value=largest(values), floor=largest(floors))


def largest(sizes: list[int]) -> Timing:
    """Sizes reported by their largest: a peak is what a machine must have room for."""
    return Timing(median=max(sizes), min=min(sizes), runs=len(sizes))


@row(
    name="tick-scale",
    title="idle tick at {tasks:,} future tasks vs 10,000",
    floor="the same idle tick at 10,000 future tasks",
    goal=1.1,
    unit="ms",
    quick={"runs": 5, "tasks": 50_000},
    full={"runs": 21, "tasks": 1_000_000},
)
def tick_scale(bench: Bench, params: Params) -> Figures:
    """Idle `taskcron tick` on a home of `tasks` future tasks against one of 10,000."""
    large = idle_home(bench, "large", params["tasks"])
    small = idle_home(bench, "small", 10_000)
    return bench.time(
        bench.command(bench.script, "tick", home=large),
        bench.command(bench.script, "tick", home=small),
    )
