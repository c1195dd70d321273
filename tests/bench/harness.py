"""Rows, their registry, and timing as interleaved pairs.

A row is one figure reported as a ratio against a floor (or a peer) measured
in the same run, with a goal for that ratio. Each row is a function in a
module of tests/bench/rows/ (every module there is loaded), registered with
`@row(name=..., title=..., floor=..., goal=..., unit=..., quick=..., full=...)`.
It gets a `Bench` and its parameters, sets up what it needs in
`bench.directory(...)`, and returns `bench.time(subject, floor)`, where each
is a `bench.command(...)` or a callable. rows/tick.py is the smallest. A row
that cannot be measured here (a peer that is not installed) raises `Skipped`
saying why, and the table says so in its line.

A row that measures one thing in several cases (1, 4 and 8 processes) returns
a list of `Figures`, one a case, each naming its `case` (one of the row's
`cases`): each is a line of the table and an object of the JSON, judged
against the row's goal. `Figures.notes` are lines printed under the figure's
line (rates, plans, a peer's figure beside it) and kept in the JSON.
`Figures.errors` counts what went wrong while measuring (claims refused as
"database is locked", processes that failed): a figure with any misses its
goal whatever its ratio. A row whose goal is only that (`goal=None`) reports
its ratio for information.

Most rows time things; a row in MB measures memory instead (`Command.peak_rss`),
its figures in bytes.

The harness picks the parameters, reports value / floor against the goal and
never fails on a missed goal. Only ratios mean anything: the machines these
run on are shared and noisy.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

Params = Mapping[str, int]

#: Runs of the subject and of the floor before the timed ones (caches, .pyc files).
WARMUP = 2

#: Units a row may report in, as multiples of its figures' own unit: a second, or for
#: MB a byte.
UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "MB": 1e-6}


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """The installation being measured: an interpreter and its `taskcron` script."""

    python: str
    script: str
    taskcron: str  #: The `taskcron/__init__.py` that `python` imports.


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """Seconds per run of one subject (or per unit of work, see `Bench.time`); bytes for
    a row in MB."""

    median: float
    min: float
    runs: int

    @classmethod
    def of(cls, seconds: list[float], per: int) -> Timing:
        return cls(
            median=statistics.median(seconds) / per, min=min(seconds) / per, runs=len(seconds)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """What a row measured: its subject and its floor, timed in the same run."""

    value: Timing
    floor: Timing
    case: str = ""  #: Which of the row's `cases` this is; "" for a row of one case.
    notes: tuple[str, ...] = ()  #: Lines to print under the figure's line.
    errors: int | None = None  #: What went wrong while measuring, if the row counts it.
    goal: float | None = None  #: This case's own goal, where a row's cases differ in it.


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """One whole command, run to completion with its output discarded."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path

    def run(self) -> None:
        """Run it; raise with its stderr if it exits non-zero."""
        done = subprocess.run(
            self.argv,
            env=dict(self.env),
            cwd=self.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(self.argv)} exited {done.returncode}:\n{done.stderr}")

    def peak_rss(self) -> int:
        """Run it with its output discarded; the most memory it held at once (its peak
        resident set), in bytes.

        A process's peak survives `exec`, so a child forked from this large
        process would report at least this one's size. A small launcher
        (`_LAUNCH`, a Python without site) starts it instead and answers
        `os.wait4`'s figure for it.
        """
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _LAUNCH, *self.argv],
            env=dict(self.env),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(self.argv)} exited {done.returncode}:\n{done.stderr}")
        return int(done.stdout) * 1024  # Linux counts kilobytes


#: Spawn argv[1:] with its output discarded, wait for it, print its peak RSS (kB); exit as it did.
_LAUNCH = """\
import os, sys
quiet = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY, 0) for fd in (1, 2)]
child = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ, file_actions=quiet)
_, status, usage = os.wait4(child, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


Subject = Command | Callable[[], object]


class Skipped(Exception):
    """This row cannot be measured here; the message says why."""


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without TASKCRON_* or PYTHONPATH, plus `extra`.

    Without PYTHONPATH the target's interpreter imports its own taskcron.
    """
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("TASKCRON_") and k != "PYTHONPATH"
    }
    env.update(extra)
    return env


@dataclass(frozen=True, slots=True, kw_only=True)
class Bench:
    """What a row gets to work with: the target, the number of runs, a scratch directory."""

    target: Target
    runs: int
    scratch: Path
    warmup: int = WARMUP

    @property
    def python(self) -> str:
        return self.target.python

    @property
    def script(self) -> str:
        return self.target.script

    def directory(self, name: str) -> Path:
        """A new empty directory in this row's scratch space."""
        path = self.scratch / name
        path.mkdir(parents=True)
        return path

    def command(self, *argv: str, home: Path, **env: str) -> Command:
        """`argv` with TASKCRON_HOME set to `home` (and `env`), run in `home` (so no stray
        config is read)."""
        return Command(argv=argv, env=clean_env(TASKCRON_HOME=str(home), **env), cwd=home)

    def time(self, subject: Subject, floor: Subject, *, per: int = 1) -> Figures:
        """Time `subject` and `floor` in turns, `runs` times each after a warm-up.

        The order alternates (subject first, then floor first) so that noise on
        the machine falls on both alike. A callable that does `per` units of
        work is reported per unit.
        """
        for _ in range(self.warmup):
            _once(subject)
            _once(floor)
        values: list[float] = []
        floors: list[float] = []
        for i in range(self.runs):
            if i % 2:
                floors.append(_once(floor))
                values.append(_once(subject))
            else:
                values.append(_once(subject))
                floors.append(_once(floor))
        return Figures(value=Timing.of(values, per), floor=Timing.of(floors, per))

    def time_each(self, subjects: Mapping[str, Subject], *, per: int = 1) -> dict[str, Timing]:
        """Time each of `subjects` in turns, `runs` times after a warm-up, the order
        rotating run by run (so that noise falls on all alike); by name."""
        for _ in range(self.warmup):
            for subject in subjects.values():
                _once(subject)
        names = list(subjects)
        seconds: dict[str, list[float]] = {name: [] for name in names}
        for i in range(self.runs):
            start = i % len(names)
            for name in names[start:] + names[:start]:
                seconds[name].append(_once(subjects[name]))
        return {name: Timing.of(seconds[name], per) for name in names}


def _once(subject: Subject) -> float:
    start = time.perf_counter()
    if isinstance(subject, Command):
        subject.run()
    else:
        subject()
    return time.perf_counter() - start


Measure = Callable[[Bench, Params], "Figures | list[Figures]"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One registered figure; see the module docstring."""

    name: str  #: What `--rows` and the JSON call it.
    title: str  #: What it measures; formatted with the parameters.
    floor: str  #: What it is divided by; formatted with the parameters.
    goal: float | None  #: The largest ratio that meets the goal; None: only no errors.
    unit: str  #: A key of UNITS.
    quick: Params | None  #: Parameters for --quick; None leaves the row out (peers).
    full: Params
    measure: Measure
    in_target: bool  #: Whether `measure` imports taskcron, and so runs in the target.
    cases: tuple[str, ...] = ()  #: The cases it may report, in order; () for one figure.

    def params(self, *, quick: bool, runs: int | None) -> dict[str, int]:
        """The parameters for this mode, with `runs` overridden if given."""
        chosen = self.quick if quick else self.full
        if chosen is None:
            raise ValueError(f"row {self.name} has no quick parameters")
        return {**chosen, **({"runs": runs} if runs is not None else {})}

    def measures(self, params: Params, case: str = "") -> str:
        """What one of its lines measures: the title for `params`, and the case if any."""
        title = self.title.format(**params)
        return f"{title}, {case}" if case else title

    def figures(self, measured: Figures | list[Figures]) -> list[Figures]:
        """What `measure` returned as a list, checked against the row's cases."""
        found = measured if isinstance(measured, list) else [measured]
        cases = [figures.case for figures in found]
        known = [case for case in self.cases if case in cases] if self.cases else [""]
        if not cases or cases != known:
            raise ValueError(f"row {self.name} reported cases {cases}, not some of {self.cases}")
        return found


_REGISTRY: dict[str, Row] = {}


def row(
    *,
    name: str,
    title: str,
    floor: str,
    goal: float | None,
    unit: str,
    quick: Params | None,
    full: Params,
    in_target: bool = False,
    cases: tuple[str, ...] = (),
) -> Callable[[Measure], Measure]:
    """Register the decorated function as the row `name`.

    Both parameter sets hold `runs`, the timed runs of subject and floor. With
    `in_target`, the function runs in a child of the target's interpreter
    (needed whenever it imports taskcron), and imports taskcron inside itself
    so that loading the registry never does. `cases` names, in order, the
    cases a row that returns a list of figures may report (see the module
    docstring).
    """
    if unit not in UNITS:
        raise ValueError(f"row {name}: unit {unit!r} is not one of {', '.join(UNITS)}")
    if any(params is not None and "runs" not in params for params in (quick, full)):
        raise ValueError(f"row {name}: parameters without runs")

    def register(measure: Measure) -> Measure:
        if name in _REGISTRY:
            raise ValueError(f"two rows are named {name}")
        _REGISTRY[name] = Row(
            name=name,
            title=title,
            floor=floor,
            goal=goal,
            unit=unit,
            quick=quick,
            full=full,
            measure=measure,
            in_target=in_target,
            cases=cases,
        )
        return measure

    return register


def rows() -> dict[str, Row]:
    """Every row of every module in tests/bench/rows/, by name, in module order."""
    package = importlib.import_module("tests.bench.rows")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    return dict(_REGISTRY)
