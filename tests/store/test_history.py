"""Bounded history: the runs a store keeps of each task, trimmed as runs finish."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

from taskcron import TaskCron
from taskcron.config import Config, HistoryConfig
from taskcron.model import Outcome
from tests.conftest import FakeClock


def page_count(home: Path) -> int:
    with sqlite3.connect(home / "tasks.db") as con:
        count = int(con.execute("PRAGMA page_count").fetchone()[0])
    con.close()
    return count


def test_a_recurring_task_keeps_its_newest_runs_and_the_last_of_each_outcome(
    tc: TaskCron, clock: FakeClock, home: Path, tmp_path: Path
) -> None:
    flag = tmp_path / "fail"  # the task fails while it exists
    task = tc.schedule("m", command=["test", "!", "-e", str(flag)], every="1m", keep_runs=50)
    pages = {}
    for n in range(1, 501):
        if n == 100:
            flag.touch()
        elif n == 101:
            flag.unlink()
        clock.advance(tc.get(task.id, runs=0).due_at - clock.now)
        assert tc.tick().outcome == "ran"
        if n in (200, 500):
            pages[n] = page_count(home)

    runs = tc.get(task.id).runs
    assert [run.outcome for run in runs] == [Outcome.FAILED] + [Outcome.DONE] * 50
    assert runs[0].attempt == 1 and runs[-1].started_at == clock.now
    assert pages[500] <= pages[200]


def test_runs_older_than_keep_for_go_but_the_newest_stays(home: Path, clock: FakeClock) -> None:
    history = HistoryConfig(keep_runs=0, keep_for=timedelta(days=1))
    with TaskCron(config=Config(home=home, history=history), clock=clock) as tc:
        task = tc.schedule("m", command=["true"], every="6h")
        for _ in range(20):
            clock.advance(tc.get(task.id, runs=0).due_at - clock.now)
            assert tc.tick().outcome == "ran"

        runs = tc.get(task.id).runs
    assert 4 <= len(runs) <= 5
    assert all(clock.now - run.started_at <= timedelta(days=1) for run in runs)


def test_a_task_scheduled_with_keep_runs_shows_it(run_cli: Any) -> None:
    scheduled = run_cli("schedule", "m", "--keep-runs", "3", "--json", "--", "true")
    assert scheduled.returncode == 0, scheduled.stderr
    assert json.loads(scheduled.stdout)["keep_runs"] == 3
    refused = run_cli("schedule", "m", "--keep-runs", "-1", "--", "true")
    assert refused.returncode == 2 and "--keep-runs" in refused.stderr
