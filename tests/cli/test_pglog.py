"""The log across hosts: a PostgreSQL store's `log` table, through the installed console script.

Two hosts are two homes with their own TASKCRON_HOST and one TASKCRON_STORE,
the test's fresh database on the private server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from taskcron.store.postgres_log import unbatched
from tests.conftest import clean_env, taskcron_in

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
    for name in ("host-a", "host-b"):
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
        ("host-a", "task.scheduled", 1, "a.job"),
        ("host-a", "task.started", 1, "a.job"),
        ("host-a", "task.output", 1, "a.job"),
        ("host-a", "task.done", 1, "a.job"),
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
    assert warning["host"] == "host-a"
    assert warning["message"].startswith(
        "records stay in this host's log only: cannot copy them to the store's log: store "
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
