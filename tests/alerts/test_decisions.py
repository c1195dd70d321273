"""When alerts go out: decided by the store as runs end and as missed runs are found,
sent once, through a real webhook (a local HTTP server); nights on the API's clock."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

from taskcron.api import TaskCron, watch_missed
from taskcron.config import AlertRule, Config
from taskcron.model import State
from tests.alerts.conftest import Hooks
from tests.conftest import FakeClock, clean_env, script

#: A command that fails until its flag file exists.
FLAGGED = "test -e {flag}"


def app(home: Path, clock: FakeClock, *rules: AlertRule) -> TaskCron:
    return TaskCron(config=Config(home=home, alerts=rules), clock=clock)


def sent(hooks: Hooks) -> list[tuple[str, int]]:
    """(event, task) of each alert the webhook received, in order."""
    return [(body["event"], body["task"]) for _path, body in hooks.received]


def records(home: Path, event: str) -> list[dict[str, object]]:
    lines = (home / "log" / "taskcron.jsonl").read_text().splitlines()
    return [rec for rec in map(json.loads, lines) if rec["event"] == event]


def test_a_task_failing_three_nights_then_succeeding_sends_one_failed_and_one_recovered(
    home: Path, clock: FakeClock, hooks: Hooks
) -> None:
    flag = home.parent / "fixed"
    with app(home, clock, AlertRule(name="ops", webhook=f"{hooks.url}/ops")) as tc:
        task = tc.schedule(
            "billing.nightly", command=["sh", "-c", FLAGGED.format(flag=flag)], cron="0 3 * * *"
        )
        for _night in range(3):
            clock.advance(tc.get(task.id).due_at - clock.now)
            assert tc.tick().task.last_outcome.value == "failed"
        assert tc.get(task.id).failing_since is not None
        flag.touch()
        clock.advance(tc.get(task.id).due_at - clock.now)
        assert tc.tick().task.last_outcome.value == "done"

    assert sent(hooks) == [("failed", task.id), ("recovered", task.id)]
    failed = hooks.received[0][1]
    assert (failed["rule"], failed["module"], failed["attempt"], failed["max_attempts"]) == (
        "ops",
        "billing.nightly",
        1,
        1,
    )
    assert [rec["channel"] for rec in records(home, "alert.sent")] == ["webhook", "webhook"]


def test_a_rule_with_repeat_sends_failed_again_while_the_task_goes_on_failing(
    home: Path, clock: FakeClock, hooks: Hooks
) -> None:
    rule = AlertRule(name="ops", webhook=f"{hooks.url}/ops", repeat=timedelta(hours=36))
    with app(home, clock, rule) as tc:
        task = tc.schedule("nightly", command=["false"], cron="0 3 * * *")
        for _night in range(4):
            clock.advance(tc.get(task.id).due_at - clock.now)
            tc.tick()

    # nights 1 and 3: the second is 24 hours after the first, the third 48
    assert sent(hooks) == [("failed", task.id), ("failed", task.id)]


def test_a_cooldown_holds_back_the_same_event_of_a_task(
    home: Path, clock: FakeClock, hooks: Hooks
) -> None:
    rule = AlertRule(name="ops", webhook=f"{hooks.url}/ops", cooldown=timedelta(hours=2))
    flag = home.parent / "fixed"
    with app(home, clock, rule) as tc:
        task = tc.schedule("flaky", command=["sh", "-c", FLAGGED.format(flag=flag)], every="30m")
        for fixed in (False, True, False, True):  # fails, recovers, fails, recovers: 2 hours
            flag.touch() if fixed else flag.unlink(missing_ok=True)
            clock.advance(tc.get(task.id).due_at - clock.now)
            tc.tick()

    assert sent(hooks) == [("failed", task.id), ("recovered", task.id)]


def test_a_retried_attempt_sends_nothing_and_a_one_off_task_that_fails_for_good_does(
    home: Path, clock: FakeClock, hooks: Hooks
) -> None:
    with app(home, clock, AlertRule(name="ops", webhook=f"{hooks.url}/ops")) as tc:
        task = tc.schedule("once", command=["false"], max_attempts=2)
        tc.tick()
        assert sent(hooks) == []  # a retry is to come
        clock.advance(tc.get(task.id).due_at - clock.now)
        tc.tick()

    assert tc.get(task.id).state is State.FAILED
    assert sent(hooks) == [("failed", task.id)]


def test_a_line_stopped_for_three_hours_is_missed_once_seen_by_another_scope_then_recovered(
    home: Path, clock: FakeClock, hooks: Hooks
) -> None:
    with app(home, clock, AlertRule(name="ops", webhook=f"{hooks.url}/ops")) as tc:
        task = tc.schedule("reports.every5", command=["true"], every="5m")
        assert tc.get(task.id).missed_after == timedelta(minutes=5)
        clock.advance(timedelta(hours=3) + (task.due_at - clock.now))  # its line stopped
        assert tc.tick(modules=["other"]).outcome == "idle"  # another line's tick sees it
        tc.tick(modules=["other"])
        missed = tc.get(task.id)
        assert missed.missed_json(clock.now) == {
            "since": task.due_at.isoformat(),
            "fire_times": 36,
        }
        assert watch_missed(tc) == []  # found once
        assert tc.tick(modules=["reports"]).task.last_outcome.value == "done"
        assert tc.get(task.id).missed_since is None

    assert sent(hooks) == [("missed", task.id), ("recovered", task.id)]
    assert hooks.received[0][1]["details"] == {"since": task.due_at.isoformat(), "fire_times": 36}
    (record,) = records(home, "task.missed")
    assert (record["task"], record["fire_times"], record["level"]) == (task.id, 36, "warning")


def test_two_hosts_finishing_a_tasks_runs_in_turn_send_each_change_once(
    home: Path, clock: FakeClock, hooks: Hooks
) -> None:
    rule = AlertRule(name="ops", webhook=f"{hooks.url}/ops")
    flag = home.parent / "fixed"
    one, two = app(home, clock, rule), app(home, clock, rule)
    with one, two:
        task = one.schedule("shared", command=["sh", "-c", FLAGGED.format(flag=flag)], every="1m")
        for turn, host in enumerate((one, two, one, two, one)):
            if turn == 3:
                flag.touch()
            clock.advance(host.get(task.id).due_at - clock.now)
            host.tick()

    assert sent(hooks) == [("failed", task.id), ("recovered", task.id)]


def test_a_delivery_that_hangs_ends_the_tick_within_its_timeout_with_the_run_recorded(
    tmp_path: Path, hooks: Hooks
) -> None:
    (tmp_path / "taskcron.toml").write_text(
        f'[[alerts]]\nname = "ops"\nwebhook = "{hooks.url}/hang"\ntimeout = "1s"\n'
    )
    env = clean_env()
    run = [script()]
    subprocess.run([*run, "schedule", "jobs", "--", "false"], env=env, cwd=tmp_path, check=True)

    tick = subprocess.run(
        [*run, "tick"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    assert not hooks.release.is_set()  # the endpoint still holds the request
    assert tick.returncode == 1
    assert 'taskcron: warning: alert "ops" via webhook failed: no answer within 1s' in tick.stderr
    shown = subprocess.run(
        [*run, "show", "1", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert json.loads(shown.stdout)["state"] == "failed"
    home = tmp_path / ".taskcron"
    assert [rec["task"] for rec in records(home, "task.failed")] == [1]
    assert [rec["detail"] for rec in records(home, "alert.failed")] == ["no answer within 1s"]
