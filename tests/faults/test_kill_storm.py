"""The kill storm: drainers started again and again, one killed with SIGKILL every
200 ms, over command tasks that append their number to one file.

Eight loops each keep one drainer going: plain draining ticks and pools
(`tick --drain`, `tick --workers 2`) of overlapping scopes, all on one home and
store, SQLite or PostgreSQL. After the storm, plain drainers recover what it
left. Then every task is done, none is lost, the only repeats are runs that
were recorded `interrupted`, and the store's integrity check passes.

The storm lasts at most STORM_SECONDS (or until every task is done); with
TASKCRON_STRESS=1 it has 2,000 tasks, else 600.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from taskcron import TaskCron
from taskcron.config import load
from taskcron.model import Outcome, Scope, State
from tests.conftest import SERIAL, clean_env, script

pytestmark = SERIAL

TASKS = 2000 if os.environ.get("TASKCRON_STRESS") == "1" else 600
MODULES = ("load.a", "load.a.x", "load.b", "load.c", "other")
STORM_SECONDS = 60
#: What each of the eight loops starts, again and again: overlapping scopes.
DRAINERS = (
    ("tick", "--drain"),
    ("tick", "--drain", "--module", "load"),
    ("tick", "--drain", "--except", "load.b"),
    ("tick", "--drain", "--module", "load.a"),
    ("tick", "--workers", "2"),
    ("tick", "--workers", "2", "--module", "load"),
    ("tick", "--workers", "2", "--except", "other"),
    ("tick", "--drain", "--module", "other", "--module", "load.c"),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A project whose config names the store: the home's SQLite file, or PostgreSQL."""
    lines = ['lease = "2s"', "[retry]", 'backoff = "0s"']
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        lines.insert(0, f"store = {json.dumps(url)}")
    (tmp_path / "taskcron.toml").write_text("\n".join(lines) + "\n")
    return tmp_path


def app(project: Path) -> TaskCron:
    return TaskCron(config=load(project / "taskcron.toml"))


def start(project: Path, args: tuple[str, ...]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [script(), *args],
        cwd=project,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def left(project: Path) -> int:
    """How many tasks are still queued or running."""
    with app(project) as tc:
        counts = tc.store.counts(Scope())
    return sum(by.get("queued", 0) + by.get("running", 0) for by in counts.values())


def test_drainers_killed_every_200_ms_lose_nothing_and_repeat_only_interrupted_runs(
    project: Path,
) -> None:
    marks = project / "marks"
    with app(project) as tc:
        ids = [
            tc.schedule(
                MODULES[n % len(MODULES)],
                command=["sh", "-c", f'echo {n} >> "$0"', str(marks)],
                max_attempts=1000,
            ).id
            for n in range(TASKS)
        ]
    rng = random.Random(14)
    loops = [start(project, args) for args in DRAINERS]
    kills = 0
    deadline = time.monotonic() + STORM_SECONDS
    try:
        while time.monotonic() < deadline and left(project):
            victim = rng.randrange(len(loops))
            if loops[victim].poll() is None:
                loops[victim].send_signal(signal.SIGKILL)
                kills += 1
            loops[victim].wait(timeout=30)
            for n, proc in enumerate(loops):
                if proc.poll() is not None:
                    loops[n] = start(project, DRAINERS[n])
            time.sleep(0.2)  # the storm's pace, not a wait for a result
    finally:
        for proc in loops:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)

    recovery = time.monotonic() + 120
    while left(project):
        assert time.monotonic() < recovery, f"{left(project)} tasks left after the storm"
        done = subprocess.run(
            [script(), "tick", "--drain"], cwd=project, env=clean_env(), timeout=120, check=False
        )
        assert done.returncode in (0, 1)  # 1: a recovered run's task may fail its retry, no more

    seen = Counter(int(line) for line in marks.read_text().split())
    interrupted = 0
    with app(project) as tc:
        assert tc.store.integrity() == []
        for number, task_id in enumerate(ids):
            task = tc.get(task_id)
            outcomes = [run.outcome for run in task.runs]
            assert task.state is State.DONE, (task_id, outcomes)
            assert outcomes[-1] is Outcome.DONE and outcomes.count(Outcome.DONE) == 1, outcomes
            assert set(outcomes) <= {Outcome.DONE, Outcome.INTERRUPTED}, outcomes
            assert 1 <= seen[number] <= len(outcomes), (number, seen[number], outcomes)
            interrupted += outcomes.count(Outcome.INTERRUPTED)
    repeats = sum(n - 1 for n in seen.values())
    print(
        f"\nkill storm: {TASKS} tasks, {kills} SIGKILLs, {interrupted} interrupted runs"
        f" recovered, {repeats} repeated outputs (each after an interrupted run), 0 lost"
    )
    assert kills > 0
