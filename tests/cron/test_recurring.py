"""Recurring and delayed tasks: next due times, coalescing, retries, lateness, keys."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from taskcron import TaskCron
from taskcron.config import Config
from taskcron.errors import InputError
from taskcron.model import Outcome, State
from taskcron.store.sqlite import APPLICATION_ID, SCHEMA_VERSION, SqliteStore
from taskcron.store.sqlite_schema import _V1
from tests.conftest import FakeClock


@pytest.fixture
def berlin(home: Path, clock: FakeClock) -> TaskCron:
    return TaskCron(config=Config(home=home, timezone="Europe/Berlin"), clock=clock)


def test_a_recurring_task_never_leaves_the_store(tc: TaskCron, clock: FakeClock) -> None:
    task = tc.schedule("m", command=["true"], every="90s")
    assert task.due_at == clock.now + timedelta(seconds=90)
    for _ in range(3):
        clock.advance(task.due_at - clock.now)
        result = tc.tick()
        assert result.outcome == "ran" and not result.failed
        task = tc.get(task.id)
        assert task.state is State.QUEUED
        assert task.due_at == clock.now + timedelta(seconds=90)  # from the run's end
        assert task.last_outcome is Outcome.DONE
    assert [r.outcome for r in task.runs] == [Outcome.DONE] * 3


def test_a_cron_task_is_first_due_at_its_next_fire_time(berlin: TaskCron, clock: FakeClock) -> None:
    task = berlin.schedule("m", command=["true"], cron="30 6 * * *")
    # 12:00 UTC on 2026-01-05 is 13:00 in Berlin: next is 06:30 Berlin on the 6th.
    assert task.due_at == datetime(2026, 1, 6, 5, 30, tzinfo=timezone.utc)
    assert task.recurrence is not None and task.recurrence.tz == "Europe/Berlin"
    assert berlin.tick().outcome == "idle"


def test_missed_fire_times_are_coalesced_into_one_run(tc: TaskCron, clock: FakeClock) -> None:
    task = tc.schedule("m", command=["true"], cron="* * * * *")
    clock.advance(timedelta(days=3))  # the machine was off
    assert tc.tick().outcome == "ran"
    assert tc.tick().outcome == "idle"
    task = tc.get(task.id)
    assert len(task.runs) == 1
    assert task.due_at == (clock.now + timedelta(minutes=1)).replace(second=0, microsecond=0)


def test_a_failing_recurring_task_retries_within_its_period_then_waits(
    tc: TaskCron, clock: FakeClock
) -> None:
    task = tc.schedule("m", command=["false"], cron="0 * * * *", max_attempts=2)
    clock.advance(task.due_at - clock.now)
    assert tc.tick().failed
    task = tc.get(task.id)
    assert task.state is State.QUEUED
    assert timedelta(seconds=8) <= task.due_at - clock.now <= timedelta(seconds=12)
    clock.advance(task.due_at - clock.now)
    assert tc.tick().failed
    task = tc.get(task.id)
    assert task.state is State.QUEUED  # never failed
    assert task.attempts == 0
    assert task.due_at == clock.now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def test_a_retry_never_goes_past_the_next_fire_time(home: Path, clock: FakeClock) -> None:
    from taskcron.config import RetryConfig

    config = Config(home=home, retry=RetryConfig(backoff=timedelta(hours=2)))
    app = TaskCron(config=config, clock=clock)
    task = app.schedule("m", command=["false"], every="10m", max_attempts=3)
    clock.advance(task.due_at - clock.now)
    app.tick()
    assert app.get(task.id).due_at == clock.now + timedelta(minutes=10)


def test_a_run_later_than_its_max_lateness_is_skipped_and_the_tick_goes_on(
    tc: TaskCron, clock: FakeClock
) -> None:
    late = tc.schedule("a", command=["true"], cron="0 * * * *", max_lateness="5m")
    once = tc.schedule("b", command=["true"], delay="1m", max_lateness="5m")
    other = tc.schedule("c", command=["true"], delay="90m")
    clock.advance(timedelta(hours=2))
    result = tc.tick()
    assert result.task is not None and result.task.id == other.id
    assert tc.get(once.id).state is State.CANCELLED
    skipped = tc.get(late.id)
    assert skipped.state is State.QUEUED
    assert skipped.runs == ()
    assert skipped.due_at == clock.now.replace(minute=0, second=0, microsecond=0) + timedelta(
        hours=1
    )
    events = [(r["event"], r["task"]) for r in tc.logstore.tail(10)]
    assert ("task.skipped", late.id) in events
    assert ("task.skipped", once.id) in events


def test_a_key_returns_the_waiting_task_instead_of_adding_another(
    tc: TaskCron, clock: FakeClock
) -> None:
    first = tc.schedule("mail", command=["true"], key="welcome-42")
    again = tc.schedule("mail", command=["true"], key="welcome-42", title="ignored")
    elsewhere = tc.schedule("other", command=["true"], key="welcome-42")
    assert again.id == first.id
    assert elsewhere.id != first.id
    tc.tick(modules=["mail"])
    clock.advance(1)
    after = tc.schedule("mail", command=["true"], key="welcome-42")
    assert after.id not in (first.id, elsewhere.id)


def test_delayed_tasks_wait_for_their_time(berlin: TaskCron, clock: FakeClock) -> None:
    later = berlin.schedule("m", command=["true"], delay="10m")
    at_noon = berlin.schedule("m", command=["true"], at="2026-01-05T14:00")
    utc = berlin.schedule("m", command=["true"], at="2026-01-05T13:30:00Z")
    assert later.due_at == clock.now + timedelta(minutes=10)
    assert at_noon.due_at == datetime(2026, 1, 5, 13, 0, tzinfo=timezone.utc)  # Berlin time
    assert utc.due_at == datetime(2026, 1, 5, 13, 30, tzinfo=timezone.utc)
    assert berlin.tick().outcome == "idle"
    clock.advance(timedelta(minutes=10))
    assert berlin.tick().task.id == later.id  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "0 0 L * *"}, "invalid cron expression '0 0 L * *': day of month field"),
        ({"cron": "0 0 1 * * 5"}, "invalid cron expression '0 0 1 * * 5': expected 5 fields"),
        ({"cron": "H * * * *"}, "invalid cron expression 'H * * * *': minute field"),
        ({"cron": "0 0 1#2 * *"}, "invalid cron expression '0 0 1#2 * *': unexpected character"),
        ({"cron": "@reboot"}, "invalid cron expression '@reboot': unknown @-word"),
        ({"cron": "0 0 31 2 *"}, "invalid cron expression '0 0 31 2 *': that day"),
        ({"cron": "@daily", "every": "1h"}, "give --cron or --every, not both"),
        ({"every": "0s"}, "invalid duration '0s': a period must be more than zero"),
        ({"cron": "@daily", "tz": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
        ({"at": "soon"}, "invalid time 'soon': expected ISO 8601"),
        ({"at": "2026-01-01T00:00", "delay": "1m"}, "give --at or --in, not both"),
        ({"max_lateness": "0"}, "invalid duration '0': a max lateness must be more than zero"),
        ({"key": "a\nb"}, "invalid key 'a\\nb'"),
    ],
)
def test_bad_recurrence_input_is_refused_and_changes_nothing(
    tc: TaskCron, kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(InputError) as caught:
        tc.schedule("m", command=["true"], **kwargs)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)
    assert not tc.home.exists()


def test_upcoming_lists_fire_times_of_recurring_and_delayed_tasks(
    tc: TaskCron, clock: FakeClock
) -> None:
    hourly = tc.schedule("a", command=["true"], cron="0 * * * *")
    once = tc.schedule("b", command=["true"], delay="90m")
    found = [(due - clock.now, task.id) for due, task in tc.upcoming(count=4)]
    assert found == [
        (timedelta(hours=1), hourly.id),
        (timedelta(minutes=90), once.id),
        (timedelta(hours=2), hourly.id),
        (timedelta(hours=3), hourly.id),
    ]


def test_a_version_1_store_is_migrated_forward_keeping_its_tasks(
    home: Path, clock: FakeClock
) -> None:
    home.mkdir(mode=0o700)
    db = sqlite3.connect(home / "tasks.db", isolation_level=None)
    db.executescript(_V1)
    db.execute(
        "INSERT INTO tasks (module, title, target, data, priority, state, due_at, attempts,"
        " max_attempts, created_at, updated_at) VALUES"
        " ('m', 'old', '{\"kind\": \"command\", \"value\": [\"true\"]}', 'null', 0, 'queued',"
        " 0, 0, 1, 0, 0)"
    )
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute("PRAGMA user_version = 1")
    db.close()
    app = TaskCron(config=Config(home=home), clock=clock)
    (task,) = app.list()
    assert (task.title, task.recurrence, task.key) == ("old", None, None)
    migrated = [r for r in app.logstore.tail(5) if r["event"] == "store.migrated"]
    assert [(r["from_version"], r["to_version"]) for r in migrated] == [(1, SCHEMA_VERSION)]
    assert SqliteStore(home / "tasks.db").migrated_from is None  # once only


def test_run_now_brings_a_recurring_task_forward_and_its_schedule_goes_on(
    tc: TaskCron, clock: FakeClock
) -> None:
    task = tc.schedule("m", command=["true"], every="1h")
    assert tc.tick().outcome == "idle"
    moved = tc.run_now(task.id)
    assert moved.due_at == clock.now
    assert tc.tick().outcome == "ran"
    assert tc.get(task.id).due_at == clock.now + timedelta(hours=1)


def test_run_now_never_moves_a_task_that_is_already_due_back(
    tc: TaskCron, clock: FakeClock
) -> None:
    first = tc.schedule("m", command=["true"])
    tc.schedule("n", command=["true"])
    clock.advance(timedelta(minutes=5))
    assert tc.run_now(first.id).due_at == clock.now - timedelta(minutes=5)
    assert tc.tick().task.id == first.id  # type: ignore[union-attr]
