"""`taskcron log` and `taskcron prune` through the installed console script."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from taskcron.logstore import LogStore, record
from tests.conftest import clean_env, script, wait_for

Run = Callable[..., subprocess.CompletedProcess[Any]]


def test_log_prints_the_last_records_oldest_first_as_json_lines(run_cli: Run) -> None:
    for n in range(3):
        run_cli("schedule", f"m{n}", "--", "true")
    result = run_cli("log", "-n", "2", "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["event"], r["module"]) for r in lines] == [
        ("task.scheduled", "m1"),
        ("task.scheduled", "m2"),
    ]


def test_text_from_tasks_is_printed_literally(run_cli: Run) -> None:
    title = "[bold]x[/] [/]"
    command = "printf '[red]markup[/] \\033[31mred\\n'"
    assert run_cli("schedule", "m", "--title", title, "--", "sh", "-c", command).returncode == 0
    assert run_cli("tick").returncode == 0
    out = run_cli("log", env={"NO_COLOR": "1"}).stdout
    assert "scheduled [bold]x[/] [/]" in out
    assert "stdout> [red]markup[/] \\x1b[31mred" in out
    assert "\x1b" not in out
    listing = run_cli("list", "--all").stdout
    assert "[bold]x[/] [/]" in listing
    shown = run_cli("show", "1").stdout
    assert "[red]markup[/] \\x1b[31mred" in shown


def test_every_record_names_its_host(run_cli: Run, home: Path) -> None:
    env = {"TASKCRON_HOST": "worker-7"}
    assert run_cli("schedule", "m", "--", "echo", "hi", env=env).returncode == 0
    assert run_cli("tick", env=env).returncode == 0
    written = [
        json.loads(line) for line in (home / "log" / "taskcron.jsonl").read_text().splitlines()
    ]
    assert [(r["event"], r["host"]) for r in written] == [
        ("task.scheduled", "worker-7"),
        ("task.started", "worker-7"),
        ("task.output", "worker-7"),
        ("task.done", "worker-7"),
    ]
    assert list(written[0])[:3] == ["ts", "host", "level"]


def test_log_filters_by_task_module_level_and_time(run_cli: Run) -> None:
    run_cli("schedule", "billing.eu", "--", "false")
    run_cli("schedule", "shop", "--", "true")
    run_cli("tick")
    run_cli("tick")

    def events(*args: str) -> list[tuple[str, int]]:
        result = run_cli("log", "--json", *args)
        assert result.returncode == 0, result.stderr
        return [(json.loads(x)["event"], json.loads(x)["task"]) for x in result.stdout.splitlines()]

    assert events("--level", "error") == [("task.failed", 1)]
    assert events("--task", "2") == [
        ("task.scheduled", 2),
        ("task.started", 2),
        ("task.done", 2),
    ]
    assert {t for _, t in events("--module", "billing")} == {1}
    assert {t for _, t in events("--except", "billing")} == {2}
    assert events("--since", "2000-01-01T00:00:00+00:00")[0] == ("task.scheduled", 1)
    assert events("--since", "0s") == []


def test_bad_log_options_are_one_line_errors(run_cli: Run) -> None:
    for args, message in [
        (("--level", "loud"), "invalid level 'loud': expected one of debug, info, warning, error"),
        (("--since", "yesterday"), "invalid time 'yesterday': expected a duration"),
        (("--module", "a..b"), "invalid module id 'a..b': empty segment"),
    ]:
        result = run_cli("log", *args)
        assert result.returncode == 2
        assert result.stderr.startswith(f"taskcron: error: {message}")
        assert result.stderr.count("\n") == 1


def test_log_follow_sees_other_processes_and_rotations(run_cli: Run, home: Path) -> None:
    run_cli("schedule", "m", "--", "true")
    follower = subprocess.Popen(
        [script(), "log", "-f", "--json", "-n", "1"],
        env=clean_env(TASKCRON_HOME=str(home)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[dict[str, Any]] = []

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            seen.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: [r for r in seen if r["event"] == "task.scheduled"])
        assert run_cli("tick").returncode == 0  # another process writes
        wait_for(lambda: [r for r in seen if r["event"] == "task.done"])
        now = datetime.now(timezone.utc)
        rotating = LogStore(home / "log", max_bytes=1, backups=3)
        rotating.append(record("test.before", at=now))  # this write rotates the file
        assert (home / "log" / "taskcron.jsonl.1").exists()
        assert not (home / "log" / "taskcron.jsonl").exists()
        LogStore(home / "log").append(record("test.after", at=now))
        wait_for(lambda: [r for r in seen if r["event"] == "test.after"])
        assert [r["event"] for r in seen].count("test.before") == 1
    finally:
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=20)
    assert follower.returncode == 0
    assert err == ""


def test_prune_reports_what_it_removed(run_cli: Run) -> None:
    run_cli("schedule", "m", "--", "true")
    run_cli("schedule", "m", "--", "true")
    run_cli("tick")
    result = run_cli("prune", "--older-than", "0s")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "removed 1 task, 1 run and 0 log files\n",
        "",
    )
    states = [t["state"] for t in json.loads(run_cli("list", "--all", "--json").stdout)]
    assert states == ["queued"]
    bad = run_cli("prune", "--older-than", "-1d")
    assert bad.returncode == 2
    assert bad.stderr == "taskcron: error: invalid duration '-1d': must not be negative\n"


def test_prune_trims_the_runs_of_every_task_to_the_history_limits(
    run_cli: Run, home: Path, tmp_path: Path
) -> None:
    (tmp_path / "taskcron.toml").write_text("[history]\nkeep_runs = 10\n")
    task_id = int(run_cli("schedule", "m", "--every", "1h", "--", "true").stdout)
    with sqlite3.connect(home / "tasks.db") as con:  # 300 runs, the 5th failed
        con.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)"
            " INSERT INTO runs (task_id, attempt, started_at, ended_at, elapsed, outcome,"
            " host, pid) SELECT ?, 1, ?, ?, 0.0, CASE i WHEN 5 THEN 'failed' ELSE 'done' END,"
            " 'h', 1 FROM n",
            (task_id, int(time.time() * 1e6), int(time.time() * 1e6)),
        )
    con.close()

    dry = run_cli("prune", "--dry-run")
    assert dry.stdout == "would remove 0 tasks, 289 runs and 0 log files\n"
    assert json.loads(run_cli("prune", "--json").stdout)["runs"] == 289
    shown = json.loads(run_cli("show", str(task_id), "--json", "--runs", "all").stdout)
    assert [run["outcome"] for run in shown["runs"]] == ["failed"] + ["done"] * 10
    assert run_cli("prune").stdout == "removed 0 tasks, 0 runs and 0 log files\n"


def finished_task_and_old_rotated_log(run_cli: Run, home: Path) -> Path:
    """A home with one done task (one run), one queued task and one rotated log file a
    day old; the rotated file."""
    run_cli("schedule", "m", "--", "true")
    assert run_cli("tick").returncode == 0
    run_cli("schedule", "m", "--in", "1h", "--", "true")
    rotated = home / "log" / "taskcron.jsonl.1"
    rotated.write_text('{"event": "old"}\n')
    stamp = time.time() - 86400
    os.utime(rotated, (stamp, stamp))
    return rotated


def snapshot(home: Path) -> dict[str, bytes]:
    """Every file of the home, byte for byte (SQLite's -wal and -shm files aside)."""
    return {
        str(path.relative_to(home)): path.read_bytes()
        for path in sorted(home.rglob("*"))
        if path.is_file() and not path.name.endswith(("-wal", "-shm"))
    }


@pytest.mark.parametrize("age", ["30", "0", "1.5", " 30 "])
def test_prune_refuses_a_bare_number_as_older_than(run_cli: Run, age: str) -> None:
    run_cli("schedule", "m", "--", "true")
    assert run_cli("tick").returncode == 0
    bad = run_cli("prune", "--older-than", age)
    number = age.strip()
    assert (bad.returncode, bad.stdout, bad.stderr) == (
        2,
        "",
        f"taskcron: error: invalid duration {age!r}: {number} what? e.g. {number}d\n",
    )
    assert [t["state"] for t in json.loads(run_cli("list", "--all", "--json").stdout)] == ["done"]


@pytest.mark.parametrize("retention", ["30", '"30"'])
def test_prune_refuses_a_log_retention_without_a_unit(
    run_cli: Run, tmp_path: Path, retention: str
) -> None:
    (tmp_path / "taskcron.toml").write_text(f"[log]\nretention = {retention}\n")
    bad = run_cli("prune")
    assert (bad.returncode, bad.stdout, bad.stderr) == (
        2,
        "",
        "taskcron: error: config key 'log.retention': invalid duration '30': 30 what? e.g. 30d\n",
    )
    (tmp_path / "taskcron.toml").write_text('[log]\nretention = "30d"\n')
    assert run_cli("prune").stdout == "removed 0 tasks, 0 runs and 0 log files\n"


def test_prune_dry_run_says_what_would_go_and_changes_nothing(run_cli: Run, home: Path) -> None:
    rotated = finished_task_and_old_rotated_log(run_cli, home)
    before = snapshot(home)
    dry = run_cli("prune", "--older-than", "0s", "--dry-run")
    assert (dry.returncode, dry.stdout, dry.stderr) == (
        0,
        "would remove 1 task, 1 run and 1 log file\n",
        "",
    )
    assert snapshot(home) == before
    assert json.loads(run_cli("prune", "--older-than", "0s", "--dry-run", "--json").stdout) == {
        "tasks": 1, "runs": 1, "log_files": 1, "log_records": None,
    }  # fmt: skip
    assert snapshot(home) == before
    done = run_cli("prune", "--older-than", "0s")
    assert (done.returncode, done.stdout) == (0, "removed 1 task, 1 run and 1 log file\n")
    assert not rotated.exists()


def test_prune_dry_run_without_a_home_creates_nothing(run_cli: Run, home: Path) -> None:
    dry = run_cli("prune", "--dry-run")
    assert (dry.returncode, dry.stdout) == (1, "")
    assert dry.stderr.startswith(f"taskcron: error: no taskcron home at {home} ")
    assert not home.exists()


def test_prune_json_counts_tasks_runs_log_files_and_log_records(run_cli: Run, home: Path) -> None:
    finished_task_and_old_rotated_log(run_cli, home)
    result = run_cli("prune", "--older-than", "0s", "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"tasks": 1, "runs": 1, "log_files": 1, "log_records": None}
    again = run_cli("prune", "--older-than", "0s", "--json")
    assert json.loads(again.stdout) == {"tasks": 0, "runs": 0, "log_files": 0, "log_records": None}
