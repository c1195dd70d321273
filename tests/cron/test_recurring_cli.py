"""Recurring and delayed tasks through the installed console script."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

Run = Callable[..., subprocess.CompletedProcess[Any]]


def test_a_recurring_task_comes_back_after_its_run(run_cli: Run) -> None:
    created = run_cli("schedule", "m", "--every", "1h", "--at", "2000-01-01T00:00Z", "--json",
                      "--", "true")  # fmt: skip
    task = json.loads(created.stdout)
    assert task["schedule"] == {"every": 3600.0}
    assert task["due_at"] == "2000-01-01T00:00:00+00:00"
    tick = run_cli("tick")
    assert (tick.returncode, tick.stdout, tick.stderr) == (0, "", "")
    shown = json.loads(run_cli("show", "1", "--json").stdout)
    assert shown["state"] == "queued"
    assert shown["last_outcome"] == "done"
    due = datetime.fromisoformat(shown["due_at"])
    ended = datetime.fromisoformat(shown["runs"][0]["ended_at"])
    assert due == ended + timedelta(hours=1)
    assert run_cli("tick", "--json").stdout == '{"outcome": "idle", "task": null}\n'


def test_list_and_next_show_schedules(run_cli: Run) -> None:
    run_cli("schedule", "reports", "--cron", "0 6 * * mon", "--tz", "Europe/Berlin", "--", "true")
    run_cli("schedule", "mail", "--in", "10m", "--", "true")
    listing = run_cli("list", env={"COLUMNS": "200"}).stdout.splitlines()
    assert listing[0].split() == [
        "id", "module", "title", "state", "priority", "due", "attempts", "schedule", "last",
    ]  # fmt: skip
    assert "0 6 * * mon (Europe/Berlin)" in listing[1] + listing[2]
    upcoming = json.loads(run_cli("next", "-n", "3", "--json").stdout)
    assert [u["id"] for u in upcoming] == [2, 1, 1]
    dues = [datetime.fromisoformat(u["due_at"]) for u in upcoming]
    assert dues == sorted(dues)
    assert dues[2] - dues[1] == timedelta(days=7)
    berlin = dues[1].astimezone(timezone(timedelta(hours=1)))  # Berlin in winter or summer
    assert berlin.minute == 0 and berlin.hour in (5, 6)


def test_a_key_returns_the_same_task_id(run_cli: Run) -> None:
    first = run_cli("schedule", "mail", "--key", "welcome-42", "--", "true").stdout
    again = run_cli("schedule", "mail", "--key", "welcome-42", "--", "true").stdout
    assert first == again == "1\n"


def test_a_key_keeps_the_task_and_warns_in_which_fields_the_request_differs(
    run_cli: Run,
) -> None:
    first = run_cli("schedule", "reports", "--key", "nightly", "--cron", "0 6 * * *",
                    "--tz", "UTC", "--", "report.sh")  # fmt: skip
    assert (first.returncode, first.stdout, first.stderr) == (0, "1\n", "")
    changed = run_cli("schedule", "reports", "--key", "nightly", "--cron", "0 7 * * *",
                      "--tz", "UTC", "--data", '{"full": true}', "--priority", "5",
                      "--", "report.sh", "--full")  # fmt: skip
    assert (changed.returncode, changed.stdout, changed.stderr) == (
        0,
        "1\n",
        "taskcron: warning: task 1 (key nightly) exists and differs in target, schedule, data,"
        " priority: kept as it was\n",
    )
    kept = json.loads(run_cli("show", "1", "--json").stdout)
    assert (kept["schedule"], kept["data"], kept["priority"]) == (
        {"cron": "0 6 * * *", "tz": "UTC"}, {}, 0,
    )  # fmt: skip
    same = run_cli("schedule", "reports", "--key", "nightly", "--cron", "0 6 * * *",
                   "--tz", "UTC", "--", "report.sh")  # fmt: skip
    assert (same.returncode, same.stdout, same.stderr) == (0, "1\n", "")
    assert len(json.loads(run_cli("list", "--all", "--json").stdout)) == 1


def test_schedule_json_says_whether_the_keyed_task_existed(run_cli: Run) -> None:
    def scheduled(*args: str) -> tuple[int, bool]:
        task = json.loads(run_cli("schedule", "mail", *args, "--json", "--", "true").stdout)
        return task["id"], task["existing"]

    assert scheduled("--key", "welcome-42") == (1, False)
    assert scheduled("--key", "welcome-42") == (1, True)
    assert scheduled() == (2, False)


def test_a_key_matches_a_paused_task_instead_of_adding_another(run_cli: Run) -> None:
    assert run_cli("schedule", "mail", "--key", "welcome-42", "--", "true").stdout == "1\n"
    assert run_cli("pause", "1").returncode == 0
    again = run_cli("schedule", "mail", "--key", "welcome-42", "--", "true")
    assert (again.returncode, again.stdout, again.stderr) == (0, "1\n", "")
    assert [t["state"] for t in json.loads(run_cli("list", "--all", "--json").stdout)] == ["paused"]


def test_bad_cron_input_is_one_line_and_exit_2(run_cli: Run) -> None:
    assert run_cli("init").returncode == 0
    for args, message in [
        (("--cron", "0 0 L * *"), "invalid cron expression '0 0 L * *': "),
        (("--cron", "* * * * * *"), "invalid cron expression '* * * * * *': expected 5 fields"),
        (("--every", "-5m"), "invalid duration '-5m': must not be negative"),
        (("--cron", "@daily", "--tz", "Nowhere/City"), "unknown time zone 'Nowhere/City'"),
        (("--at", "next week"), "invalid time 'next week': expected ISO 8601"),
    ]:
        result = run_cli("schedule", "m", *args, "--", "true")
        assert result.returncode == 2, result
        assert result.stderr.startswith(f"taskcron: error: {message}")
        assert result.stderr.count("\n") == 1
    assert json.loads(run_cli("list", "--all", "--json").stdout) == []
