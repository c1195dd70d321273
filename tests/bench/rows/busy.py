"""A `taskcron tick` that runs a task: forking a registered no-op costs little beside the
command's own start. Two rows: against an idle `tick --json` (which, unlike a plain idle
tick, goes the full way through the CLI and the API, as a busy tick does), and against
the `tick` row's floor. A
third runs a command task, `true`, against the floor that also spawns `true` and
waits for it, as any runner of a command must.

Runs in the target's interpreter (it schedules through the API).
"""

from __future__ import annotations

from collections.abc import Callable

from tests.bench import project
from tests.bench.harness import Bench, Command, Figures, Measure, Params, row

#: The floor of a tick that runs the command `true`: the `tick` row's, then spawning it.
SPAWN_TRUE = "import click, sqlite3, subprocess; subprocess.run(['true'], check=True)"


def busy_tick(bench: Bench, name: str = "busy", **settings: str) -> Command:
    """A `taskcron tick` command whose home holds a due `@task` no-op for every run it makes
    (its config holding `settings`)."""
    busy = project.make(bench.directory(name), **settings)
    project.schedule(busy, bench.warmup + bench.runs, task="noop")
    return bench.command(bench.script, "tick", home=busy.home)


def command_tick(bench: Bench) -> Command:
    """A `taskcron tick` command whose home (no config: no handler module to import) holds
    a due command task, `true`, for every run it makes."""
    from taskcron import TaskCron
    from taskcron.config import Config

    home = bench.directory("command")
    with TaskCron(config=Config(home=home)) as app:
        for _ in range(bench.warmup + bench.runs):
            app.schedule("bench", command=["true"])
    return bench.command(bench.script, "tick", home=home)


def idle_tick(bench: Bench) -> Command:
    """An idle `taskcron tick --json` of a home with the same config (listing the handler's
    module): the full command's start, without the early answer a plain idle tick gets."""
    idle = project.make(bench.directory("idle"))
    return bench.command(bench.script, "tick", "--json", home=idle.home)


def python_start(bench: Bench) -> Command:
    """Starting Python with click and sqlite3 imported, which every command of ours pays."""
    return bench.command(bench.python, "-c", "import click, sqlite3", home=bench.scratch)


def against(floor: Callable[[Bench], Command]) -> Measure:
    """A row that times a busy tick against `floor`."""

    def measure(bench: Bench, params: Params) -> Figures:
        return bench.time(busy_tick(bench), floor(bench))

    return measure


#: An alert rule that a healthy no-op never makes send (TOML's inline form of [[alerts]]).
QUIET_RULE = '[{name = "ops", webhook = "https://hooks.example.com/taskcron"}]'


@row(
    name="busy-alerts",
    title="busy tick (one no-op task) with an alert rule that does not fire vs without",
    floor="the same busy tick without [[alerts]]",
    goal=1.05,
    unit="ms",
    quick={"runs": 2},
    full={"runs": 21},
    in_target=True,
)
def busy_alerts(bench: Bench, params: Params) -> Figures:
    """A busy tick whose config holds an alert rule against one whose config holds none."""
    return bench.time(busy_tick(bench, "alerted", alerts=QUIET_RULE), busy_tick(bench))


#: The metrics' textfile, written after the tick (TOML's inline form of [metrics]).
TEXTFILE = '{textfile = "taskcron.prom"}'


@row(
    name="busy-metrics",
    title="busy tick (one no-op task) writing the metrics' textfile vs without",
    floor="the same busy tick without [metrics]",
    goal=1.15,
    unit="ms",
    quick={"runs": 2},
    full={"runs": 21},
    in_target=True,
)
def busy_metrics(bench: Bench, params: Params) -> Figures:
    """A busy tick whose config has it write the metrics' textfile against one without."""
    return bench.time(busy_tick(bench, "metered", metrics=TEXTFILE), busy_tick(bench))


ROWS = (
    ("busy", "idle tick --json", "an idle taskcron tick --json, same config", 1.25, idle_tick),
    ("busy-floor", "floor", "python -c 'import click, sqlite3'", 1.5, python_start),
)
for name, versus, floor, goal, measure_floor in ROWS:
    row(
        name=name,
        title=f"busy tick (one no-op task) vs {versus}",
        floor=floor,
        goal=goal,
        unit="ms",
        quick={"runs": 2},
        full={"runs": 21},
        in_target=True,
    )(against(measure_floor))


@row(
    name="busy-command",
    title="busy tick (one command task, `true`) vs floor + spawning true",
    floor="python -c 'import click, sqlite3, subprocess; subprocess.run([\"true\"])'",
    goal=1.3,
    unit="ms",
    quick={"runs": 2},
    full={"runs": 21},
    in_target=True,
)
def busy_command(bench: Bench, params: Params) -> Figures:
    """A tick that runs the command `true` against the floor that spawns it too."""
    floor = bench.command(bench.python, "-c", SPAWN_TRUE, home=bench.scratch)
    return bench.time(command_tick(bench), floor)
