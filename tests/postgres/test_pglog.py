"""The log across hosts: a PostgreSQL store's `log` table, through the installed console script.

Two hosts are two homes with their own TASKCRON_HOST and one TASKCRON_STORE,
the test's fresh database on the private server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from taskcron.logstore import record
from taskcron.store.postgres_log import WAIT, PostgresLog, unbatched
from tests.conftest import clean_env, script, taskcron_in, wait_for

PRINT_THREE = "printf 'one\\ntwo\\nthree\\n'"


@dataclass(frozen=True)
class Host:
    """One host: its name, its home, and the shared store's URL."""

    name: str
    home: Path
    store: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "TASKCRON_HOME": str(self.home),
            "TASKCRON_HOST": self.name,
            "TASKCRON_STORE": self.store,
        }

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Any:
        """Run `taskcron ARGS` on this host."""
        return taskcron_in(self.home.parent, *args, env={**self.env, **(env or {})})

    def ok(self, *args: str) -> str:
        """Run `taskcron ARGS` on this host; it must succeed silently on stderr. Its stdout."""
        result = self(*args)
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
        return str(result.stdout)

    def local(self) -> list[dict[str, Any]]:
        """The records in this host's own log file."""
        lines = (self.home / "log" / "taskcron.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]


@pytest.fixture
def hosts(tmp_path: Path, postgres_url: str) -> tuple[Host, Host]:
    made = []
    for name in ("web-1", "worker-2"):
        (tmp_path / name).mkdir()
        made.append(Host(name, tmp_path / name / "home", postgres_url))
    return made[0], made[1]


def table(url: str) -> list[dict[str, Any]]:
    """The rows of the store's log table, in id order."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as db:
        return list(db.execute("SELECT * FROM taskcron.log ORDER BY id"))


def execute(url: str, sql: str, *params: Any) -> None:
    """Run one statement in the store's database, as its superuser."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(sql, params or None)


def test_every_record_reaches_the_table_and_output_lines_written_at_once_share_a_row(
    hosts: tuple[Host, Host],
) -> None:
    a, _ = hosts
    a.ok("schedule", "a.job", "--", "sh", "-c", PRINT_THREE)
    a.ok("tick")
    rows = table(a.store)
    assert [(r["host"], r["event"], r["task_id"], r["module"]) for r in rows] == [
        ("web-1", "task.scheduled", 1, "a.job"),
        ("web-1", "task.started", 1, "a.job"),
        ("web-1", "task.output", 1, "a.job"),
        ("web-1", "task.done", 1, "a.job"),
    ]
    assert json.loads(rows[2]["record"])["lines"] == ["one", "two", "three"]
    copied = [rec for row in rows for rec in unbatched(json.loads(row["record"]))]
    assert copied == a.local()
    assert [r["message"] for r in copied if r["event"] == "task.output"] == ["one", "two", "three"]


def test_a_failing_table_write_keeps_the_local_records_and_the_run(
    hosts: tuple[Host, Host],
) -> None:
    a, _ = hosts
    a.ok("schedule", "a.job", "--", "sh", "-c", PRINT_THREE)
    execute(a.store, "DROP TABLE taskcron.log")
    a.ok("tick")
    events = [(r["event"], r["level"]) for r in a.local()]
    assert events == [
        ("task.scheduled", "info"),
        ("task.started", "info"),
        ("log.unshared", "warning"),
        ("task.output", "info"),
        ("task.output", "info"),
        ("task.output", "info"),
        ("task.done", "info"),
    ]
    warning = a.local()[2]
    assert warning["host"] == "web-1"
    assert warning["message"].startswith(
        "records are in this host's log but cannot be copied to the store's log: store "
    )
    assert 'relation "log" does not exist' in warning["message"]
    [task] = json.loads(a.ok("list", "--all", "--json"))
    assert task["state"] == "done"


IMPORTS_AFTER_TICK = """
import atexit, sys
atexit.register(lambda: print(sorted(
    m for m in sys.modules if m.split(".")[0] == "psycopg" or m.startswith("taskcron.store.post")
)))
sys.argv = ["taskcron", "tick"]
from taskcron.cli import main
main()
"""


def test_a_sqlite_tick_imports_nothing_of_postgresql(tmp_path: Path) -> None:
    env = {"TASKCRON_HOME": str(tmp_path / "home")}
    assert taskcron_in(tmp_path, "schedule", "m", "--", "echo", "hi", env=env).returncode == 0
    ran = subprocess.run(
        [sys.executable, "-c", IMPORTS_AFTER_TICK],
        cwd=tmp_path,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "[]\n", "")
    listed = taskcron_in(tmp_path, "list", "--all", "--json", env=env)
    assert json.loads(listed.stdout)[0]["state"] == "done"


def run_one_task_on_each(a: Host, b: Host) -> None:
    """web-1 runs task 1 (a.job: three lines), worker-2 task 2 (b.job: fails)."""
    a.ok("schedule", "a.job", "--title", "print three", "--", "sh", "-c", PRINT_THREE)
    b.ok("schedule", "b.job", "--title", "fail", "--", "false")
    a.ok("tick", "--module", "a")
    failed = b("tick", "--module", "b")
    assert failed.returncode == 1, failed.stderr


def test_log_on_either_host_shows_both_hosts_runs_naming_their_hosts(
    hosts: tuple[Host, Host],
) -> None:
    a, b = hosts
    run_one_task_on_each(a, b)
    text = a.ok("log", "-n", "100")
    assert b.ok("log", "-n", "100") == text
    lines = [line[24:].split(None, 5) for line in text.splitlines()]  # after the time
    assert [line[:5] for line in lines] == [
        ["web-1", "INFO", "task.scheduled", "#1", "a.job"],
        ["worker-2", "INFO", "task.scheduled", "#2", "b.job"],
        ["web-1", "INFO", "task.started", "#1", "a.job"],
        ["web-1", "INFO", "task.output", "#1", "a.job"],
        ["web-1", "INFO", "task.output", "#1", "a.job"],
        ["web-1", "INFO", "task.output", "#1", "a.job"],
        ["web-1", "INFO", "task.done", "#1", "a.job"],
        ["worker-2", "INFO", "task.started", "#2", "b.job"],
        ["worker-2", "ERROR", "task.failed", "#2", "b.job"],
    ]
    assert [line[5] for line in lines[:6]] == [
        "scheduled print three",
        "scheduled fail",
        "started print three",
        "stdout> one",
        "stdout> two",
        "stdout> three",
    ]
    assert text.splitlines()[0][23:39] == " web-1    INFO  "  # hosts in a column


def test_log_json_on_either_host_gives_every_host_s_records_one_line_each(
    hosts: tuple[Host, Host],
) -> None:
    a, b = hosts
    run_one_task_on_each(a, b)
    printed = a.ok("log", "--json", "-n", "100")
    assert b.ok("log", "--json", "-n", "100") == printed
    records = [json.loads(line) for line in printed.splitlines()]
    mine, theirs = a.local(), b.local()
    assert records == [mine[0], theirs[0], *mine[1:], *theirs[1:]]
    assert [r["message"] for r in records if r["event"] == "task.output"] == ["one", "two", "three"]


def test_log_filters_the_table_as_it_filters_a_file(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    run_one_task_on_each(a, b)

    def found(*args: str) -> list[tuple[str, str, Any]]:
        printed = b.ok("log", "--json", *args)
        records = [json.loads(line) for line in printed.splitlines()]
        return [(r["host"], r["event"], r["task"]) for r in records]

    a_run = [("web-1", event, 1) for event in ("task.scheduled", "task.started")]
    a_run += [("web-1", "task.output", 1)] * 3 + [("web-1", "task.done", 1)]
    b_run = [("worker-2", e, 2) for e in ("task.scheduled", "task.started", "task.failed")]
    assert found("--task", "1") == a_run
    assert found("--task", "1", "-n", "3") == a_run[-3:]  # inside a row of output lines
    assert found("--module", "b") == b_run
    assert found("--except", "b") == a_run
    assert found("--level", "warning") == [("worker-2", "task.failed", 2)]
    assert found("--level", "debug", "-n", "2") == b_run[-2:]
    assert found("--since", "2000-01-01T00:00:00+00:00", "-n", "1") == [b_run[-1]]
    assert found("--since", "0s") == []
    assert found("-n", "0") == []


def test_log_follow_on_one_host_shows_what_another_host_writes(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    a.ok("schedule", "a.job", "--", "true")
    follower = subprocess.Popen(
        [script(), "log", "-f", "--json", "-n", "1"],
        cwd=a.home.parent,
        env=clean_env(**a.env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[dict[str, Any]] = []

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            seen.append(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_for(lambda: seen)  # the last record: it listens now
        assert [(r["host"], r["event"]) for r in seen] == [("web-1", "task.scheduled")]
        b.ok("schedule", "b.job", "--", "echo", "from b")
        b.ok("tick", "--module", "b")
        wait_for(lambda: [r for r in seen if r["event"] == "task.done"])
    finally:
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=20)
    assert (follower.returncode, err) == (0, "")
    assert [(r["host"], r["event"], r["message"]) for r in seen[1:]] == [
        ("worker-2", "task.scheduled", "scheduled echo 'from b'"),
        ("worker-2", "task.started", "started echo 'from b'"),
        ("worker-2", "task.output", "from b"),
        ("worker-2", "task.done", seen[-1]["message"]),
    ]


def test_log_follow_goes_on_following_after_a_quiet_wait(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    a.ok("schedule", "a.job", "--", "true")
    follower = subprocess.Popen(
        [script(), "log", "-f", "--json", "-n", "1"],
        cwd=a.home.parent,
        env=clean_env(**a.env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[dict[str, Any]] = []

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            seen.append(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_for(lambda: seen)  # the last record: it listens now
        listening = time.monotonic()
        # Past its first wait of WAIT seconds without a record (it used to die there).
        wait_for(lambda: follower.poll() is not None or time.monotonic() - listening > 3 * WAIT)
        b.ok("schedule", "b.job", "--", "true")
        wait_for(lambda: follower.poll() is not None or len(seen) > 1)
    finally:
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=20)
    assert (follower.returncode, err) == (0, "")
    assert [(r["host"], r["event"]) for r in seen] == [
        ("web-1", "task.scheduled"),
        ("worker-2", "task.scheduled"),
    ]


def test_prune_removes_old_records_from_the_table_and_old_files_of_its_host(
    hosts: tuple[Host, Host],
) -> None:
    a, b = hosts
    run_one_task_on_each(a, b)
    old = datetime.now(timezone.utc) - timedelta(days=2)
    shared = PostgresLog(a.store, host="gone")
    shared.append([record("test.old", at=old, host="gone", message="old")])
    lines = [record("task.output", at=old, host="gone", task=9, message=m) for m in ("x", "y")]
    shared.append(lines)
    shared.close()
    for host in hosts:
        rotated = host.home / "log" / "taskcron.jsonl.1"
        rotated.write_text(json.dumps(record("test.rotated", at=old)) + "\n")
        os.utime(rotated, (old.timestamp(), old.timestamp()))
    assert len(table(a.store)) == 9
    assert (
        a.ok("prune", "--older-than", "1d")
        == "removed 0 tasks, 0 runs, 1 log file and 3 log records\n"
    )
    left = [(row["host"], row["event"]) for row in table(a.store)]
    assert left[-1] == ("web-1", "store.pruned")
    assert {host for host, _ in left} == {"web-1", "worker-2"}
    assert len(left) == 8
    assert not (a.home / "log" / "taskcron.jsonl.1").exists()
    assert (b.home / "log" / "taskcron.jsonl.1").exists()  # another host's files are its own
    [pruned] = [json.loads(line) for line in b.ok("log", "--json", "-n", "1").splitlines()]
    assert (pruned["event"], pruned["host"], pruned["records"]) == ("store.pruned", "web-1", 3)
    assert (
        a.ok("prune", "--older-than", "1d")
        == "removed 0 tasks, 0 runs, 0 log files and 0 log records\n"
    )


#: A server that is not there: its socket directory does not exist.
NOWHERE = "postgresql://taskcron@/nowhere?host=/nonexistent-taskcron-socket"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("log", "--level", "loud"), 2, "invalid level 'loud': expected one of debug, info,"),
        (("log", "-f", "--since", "yesterday"), 2, "invalid time 'yesterday': expected a"),
        (("log", "--module", "a..b"), 2, "invalid module id 'a..b': empty segment"),
        (("prune", "--older-than", "-1d"), 2, "invalid duration '-1d': must not be negative"),
        (("log",), 1, f"cannot connect to store {NOWHERE}: connection"),
        (("log", "-f"), 1, f"cannot connect to store {NOWHERE}: connection"),
    ],
)
def test_bad_input_and_an_unreachable_store_are_one_line_errors(
    hosts: tuple[Host, Host], args: tuple[str, ...], code: int, message: str
) -> None:
    a, _ = hosts
    a.ok("schedule", "a.job", "--", "true")
    env = {"TASKCRON_STORE": NOWHERE} if code == 1 else {}
    result = a(*args, env=env)
    assert result.returncode == code
    assert result.stderr.startswith(f"taskcron: error: {message}"), result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""
    if code == 1:
        assert result.stderr.endswith("failed: No such file or directory\n")
