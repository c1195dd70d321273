"""Bounded history: the runs a store keeps of each task, trimmed as runs finish."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from taskcron import TaskCron
from taskcron.config import Config, HistoryConfig
from taskcron.model import Outcome, Recurrence, Retention, RunEnd, Scope, State, Task
from taskcron.store import Store
from taskcron.store import sqlite as sqlite_module
from taskcron.store.sqlite import SqliteStore
from tests.conftest import FakeClock
from tests.store.conftest import HOST, T0, at, decide, lease, new_task


def page_count(home: Path) -> int:
    with sqlite3.connect(home / "tasks.db") as con:
        count = int(con.execute("PRAGMA page_count").fetchone()[0])
    con.close()
    return count


def test_a_recurring_task_keeps_its_newest_runs_and_the_last_of_each_outcome(
    tc: TaskCron, clock: FakeClock, home: Path, tmp_path: Path
) -> None:
    flag = tmp_path / "fail"  # the task fails while it exists
    # Hourly: the runs counted by minute (kept two days) stop growing long before run 200.
    task = tc.schedule("m", command=["test", "!", "-e", str(flag)], every="1h", keep_runs=50)
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


def run_recurring(store: Store, outcomes: list[Outcome], keep: Retention) -> Task:
    """Run a task recurring every minute once per outcome in `outcomes` (each run
    lasting 0.3s), trimming by `keep`; the task as the last finish left it."""
    task = store.schedule(new_task(recurrence=Recurrence(every=timedelta(minutes=1))), now=T0)
    for n, outcome in enumerate(outcomes):
        now = at(60 * (n + 1))
        got = store.claim_next(scope=Scope(), now=now, lease=lease(now), decide=decide)
        assert got.run is not None, got
        ended = RunEnd(outcome=outcome, ended_at=now, elapsed=0.3)
        finished = store.finish_run(got.run.id, ended, decide=decide, keep=keep)
        assert finished is not None
        task = finished
    return task


def test_both_stores_trim_runs_and_count_them_apart(store: Store) -> None:
    outcomes = [Outcome.DONE] * 3 + [Outcome.FAILED] + [Outcome.DONE] * 8
    task = run_recurring(store, outcomes, Retention(keep_runs=3, keep_for=None))

    shown = store.get(task.id)
    assert [run.outcome for run in shown.runs] == [Outcome.FAILED] + [Outcome.DONE] * 3
    assert shown.outcomes == (("done", 11), ("failed", 1))
    as_json = shown.to_json()
    assert (as_json["runs_total"], as_json["outcomes"]) == (12, {"done": 11, "failed": 1})
    totals = store.outcome_totals()
    assert [(t.module, t.outcome, t.runs) for t in totals] == [
        ("m", "done", 11),
        ("m", "failed", 1),
    ]
    assert totals[0].seconds == pytest.approx(11 * 0.3)
    assert totals[0].buckets == (0, 11, 0, 0, 0, 0, 0, 0, 0, 0)  # 0.1 < 0.3 <= 0.5
    minutes = store.outcome_minutes(since=T0)
    assert [(m.minute, m.outcome, m.runs) for m in minutes][:2] == [
        (at(60), "done", 1),
        (at(120), "done", 1),
    ]
    assert sum(m.runs for m in minutes) == 12

    store.transition(task.id, action="pause", allowed=(State.QUEUED,), to=State.PAUSED, now=at(1e4))
    store.remove(task.id)
    assert store.outcome_totals() == totals


def test_the_minutes_are_kept_for_two_days(store: Store) -> None:
    task = run_recurring(store, [Outcome.DONE], Retention())
    assert len(store.outcome_minutes(since=T0)) == 1
    later = store.schedule(new_task("n", due_at=at(3 * 86_400)), now=T0)
    now = at(3 * 86_400)
    got = store.claim_next(scope=Scope(modules=("n",)), now=now, lease=lease(now), decide=decide)
    assert got.run is not None and got.task is not None and got.task.id == later.id
    store.finish_run(
        got.run.id, RunEnd(outcome=Outcome.DONE, ended_at=now, elapsed=1), decide=decide
    )

    assert [m.module for m in store.outcome_minutes(since=T0)] == ["n"]
    assert sum(t.runs for t in store.outcome_totals()) == 2
    assert store.get(task.id).outcomes == (("done", 1),)


OLD_TASK = (
    "INSERT INTO tasks (module, title, target, data, priority, state, due_at, attempts,"
    " max_attempts, created_at, updated_at, schedule)"
    " VALUES ('m', 't', '{\"kind\": \"command\", \"value\": [\"true\"]}', 'null', 0, 'queued',"
    " 0, 0, 1, 0, 0, '{\"every\": 60.0}')"
)
#: 2,000 ended runs of task 1, every tenth one failed, each 0.2s long.
OLD_RUNS = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
    " INSERT INTO runs (task_id, attempt, started_at, ended_at, elapsed, outcome, host, pid)"
    " SELECT 1, 1, i, i, 0.2, CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'done' END, 'h', 1 FROM n"
)


def test_a_version_7_store_with_a_long_history_is_migrated_to_counted_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tasks.db"
    with monkeypatch.context() as old:
        old.setattr(sqlite_module, "MIGRATIONS", sqlite_module.MIGRATIONS[:7])
        old.setattr(sqlite_module, "SCHEMA_VERSION", 7)
        with SqliteStore(path, host=HOST) as store:
            store._db.execute(OLD_TASK)
            store._db.execute(OLD_RUNS)
            store._db.commit()

    with SqliteStore(path, host=HOST) as store:
        assert store.migrated_from == 7
        assert store.get(1, runs=0).outcomes == (("done", 1800), ("failed", 200))
        (done, failed) = store.outcome_totals()
        assert (done.runs, failed.runs) == (1800, 200)
        assert done.buckets == (0, 1800, 0, 0, 0, 0, 0, 0, 0, 0)
        now = at(60)
        got = store.claim_next(scope=Scope(), now=now, lease=lease(now), decide=decide)
        assert got.run is not None and got.task is not None and got.task.keep_runs is None
        ended = RunEnd(outcome=Outcome.DONE, ended_at=now, elapsed=0.2)
        store.finish_run(got.run.id, ended, decide=decide, keep=Retention(keep_runs=100))
        assert len(store.get(1).runs) == 2_001 - 50
        assert store.get(1, runs=0).outcomes == (("done", 1801), ("failed", 200))
