"""The shared log across a restart of its PostgreSQL server: writes kept and written in
order once it answers, and `log -f` going on where it was. The server is this module's
own (`private_postgres`): the session's is never stopped."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskcron import errors
from taskcron.logstore import LogFilter, record
from taskcron.store import postgres_log
from taskcron.store.postgres import PostgresStore
from taskcron.store.postgres_log import PostgresLog
from tests.conftest import T0, clean_env, script, taskcron_in, wait_for
from tests.pgserver import Cluster, PostgresServer

LOST = "taskcron: warning: the store is unreachable; retrying: "
BACK = "taskcron: the store is reachable again, after "


def event(name: str, message: str = "") -> dict[str, Any]:
    return record(name, at=T0, host="h", message=message)


def output(message: str) -> dict[str, Any]:
    return record("task.output", at=T0, host="h", task=1, module="m", message=message)


@pytest.fixture
def url(private_postgres: PostgresServer) -> str:
    """A new store on this module's server."""
    made = private_postgres.fresh_database()
    PostgresStore(made).close()  # makes the schema and its log table
    return made


@pytest.fixture
def shared(url: str) -> Iterator[PostgresLog]:
    opened = PostgresLog(url, host="h")
    yield opened
    opened.close()


def written_once_back(shared: PostgresLog) -> list[dict[str, Any]]:
    """Append a new record until a write succeeds (bounded); the records appended."""
    tried: list[dict[str, Any]] = []

    def write() -> bool:
        tried.append(event("test.after", str(len(tried))))
        try:
            shared.append([tried[-1]])
        except errors.StoreUnreachable:
            return False
        return True

    wait_for(write, timeout=10, interval=0.05)
    return tried


def messages(shared: PostgresLog) -> list[tuple[str, str]]:
    return [(r["event"], r["message"]) for r in shared.tail(10_000, keep=LogFilter())]


def test_records_written_while_the_server_is_away_reach_the_table_once_and_in_order(
    shared: PostgresLog, private_cluster: Cluster
) -> None:
    shared.append([event("test.before")])
    private_cluster.halt()
    with pytest.raises(errors.StoreUnreachable, match=r"; 3 records kept to write when it"):
        shared.append([output("one"), output("two"), event("test.away", "1")])
    with pytest.raises(errors.StoreUnreachable, match=r"; 4 records kept to write when it"):
        shared.append([event("test.away", "2")])
    private_cluster.resume()

    after = written_once_back(shared)
    assert messages(shared) == [
        ("test.before", ""),
        ("task.output", "one"),
        ("task.output", "two"),
        ("test.away", "1"),
        ("test.away", "2"),
        *((r["event"], r["message"]) for r in after),
    ]


def test_a_full_backlog_lets_the_oldest_go_and_says_how_many_where_they_were(
    shared: PostgresLog, private_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_log, "BACKLOG", 3)
    monkeypatch.setattr(postgres_log, "delay", lambda failures: 0.0)  # every write tries
    shared.append([event("test.before")])
    private_cluster.halt()
    for n in range(5):
        with pytest.raises(errors.StoreUnreachable) as raised:
            shared.append([event("test.away", str(n))])
    assert str(raised.value).endswith(
        "; 3 records kept to write when it answers, and the 2 before them dropped"
        " (at most 3 are kept)"
    )
    private_cluster.resume()

    shared.append([event("test.after")])  # kept too: one more goes
    found = messages(shared)
    assert found[0] == ("test.before", "")
    assert found[1][0] == "log.unshared"
    assert found[1][1].startswith("3 records of this host are missing here: ")
    assert found[2:] == [
        ("test.away", "3"),
        ("test.away", "4"),
        ("test.after", ""),
    ]


# --- log -f, a real process --------------------------------------------------------------


class Follower:
    """`taskcron log -f --json` in a home on the store: what it printed, as it prints it."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [script(), "log", "-f", "--json", "-n", "100"],
            cwd=home.parent,
            env=clean_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.seen.append(json.loads(line))

    def titles(self) -> list[str]:
        return [r["title"] for r in self.seen if r["event"] == "task.scheduled"]

    def stop(self) -> str:
        """Interrupt it, as Ctrl-C does; what it said on stderr."""
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=20)
        return err


def test_log_follow_goes_on_after_a_restart_showing_every_record_once(
    tmp_path: Path, url: str, private_cluster: Cluster
) -> None:
    home = tmp_path / "home"
    env = {"TASKCRON_HOME": str(home), "TASKCRON_STORE": url}

    def schedule(title: str) -> None:
        done = taskcron_in(tmp_path, "schedule", "a.job", "--title", title, "--", "true", env=env)
        assert done.returncode == 0, done.stderr

    schedule("first")
    follower = Follower(home, env)
    try:
        wait_for(lambda: follower.titles() == ["first"])
        schedule("before")
        wait_for(lambda: "before" in follower.titles())
        private_cluster.restart()
        schedule("after 1")
        schedule("after 2")
        wait_for(lambda: "after 2" in follower.titles())
        assert follower.process.poll() is None
    finally:
        err = follower.stop()
    assert follower.titles() == ["first", "before", "after 1", "after 2"]
    said = err.splitlines()
    assert len(said) == 2 and said[0].startswith(LOST) and said[1].startswith(BACK), err
