"""Wake-ups on PostgreSQL: `work` starts a task scheduled while it waits at once, not at
its next poll, and still does once the server has restarted; SQLite keeps polling.

`work` runs as a real process of the installed script with `poll = "30s"` (and a
lease long enough that renewing its registration does not look sooner). A task is
scheduled once `work` has gone idle: every taskcron session of the database has
been idle for a second, its first look long done. It must start before the poll
could have started it.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from taskcron import TaskCron
from taskcron.config import load
from taskcron.model import State, Task
from taskcron.runner import Supervisor
from taskcron.store.sqlite import SqliteStore
from tests.conftest import clean_env, script, wait_for
from tests.pgserver import PostgresServer

#: Seconds: `work`'s poll here, far beyond how soon a scheduled task must start.
POLL = 30
#: Whether every taskcron session is idle for a second, and how many there are.
SESSIONS = (
    "SELECT count(*) FILTER (WHERE state <> 'idle' OR now() - state_change < interval '1s')"
    " AS busy, count(*) AS sessions FROM pg_stat_activity"
    " WHERE application_name = 'taskcron' AND datname = current_database()"
)


@pytest.fixture
def server(private_postgres: PostgresServer, private_cluster: object) -> PostgresServer:
    """The module's own server (tests/conftest.py), which a test may restart."""
    return private_postgres


def _config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "taskcron.toml"
    config.write_text(f'store = {json.dumps(url)}\npoll = "{POLL}s"\nlease = "5m"\n')
    return config


@contextlib.contextmanager
def _working(config: Path) -> Iterator[subprocess.Popen[str]]:
    """`taskcron work` on `config`'s store, stopped (and found to end well) after."""
    work = subprocess.Popen(
        [script(), "--config", str(config), "work"],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield work
        work.send_signal(signal.SIGTERM)
        _, err = work.communicate(timeout=60)
        assert work.returncode == 0, err
    finally:
        if work.poll() is None:
            work.kill()
            work.wait()


def _idle(url: str) -> None:
    """Wait until `work` has registered its pool and every taskcron session is idle."""
    import psycopg

    def idle() -> bool:
        with psycopg.connect(url, autocommit=True, application_name="watcher") as db:
            pools = db.execute("SELECT count(*) FROM taskcron.pools").fetchone()
            busy, sessions = db.execute(SESSIONS).fetchone() or (1, 0)
        return bool(pools and pools[0] and sessions and not busy)

    wait_for(idle, timeout=60, interval=0.1)


def _starts_before_the_poll(app: TaskCron, url: str) -> Task:
    """Schedule a task once `work` is idle; it must start before `work`'s poll."""
    _idle(url)
    task = app.schedule("m", command=["true"])
    done = wait_for(lambda: app.get(task.id).state is State.DONE, timeout=POLL - 10)
    assert done
    ran = app.get(task.id)
    assert ran.runs[0].started_at - task.created_at < timedelta(seconds=POLL)
    return ran


def test_work_starts_a_task_scheduled_while_it_waits_before_its_poll(
    postgres_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, postgres_url)
    app = TaskCron(config=load(config))
    app.schedule("first", command=["true"])  # creates the store before `work` opens it
    with _working(config):
        _starts_before_the_poll(app, postgres_url)
        _starts_before_the_poll(app, postgres_url)  # and again, once idle again
    app.close()


def test_work_still_wakes_after_the_server_restarts(server: PostgresServer, tmp_path: Path) -> None:
    assert server.cluster is not None
    url = server.fresh_database()
    config = _config(tmp_path, url)
    app = TaskCron(config=load(config))
    app.schedule("first", command=["true"])
    with _working(config):
        _idle(url)
        server.cluster.restart()
        _starts_before_the_poll(app, url)
    app.close()


def test_a_sqlite_store_tells_of_no_wake_ups(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "tasks.db") as store:
        assert store.wake_source() is None


def test_a_watched_descriptor_ends_the_supervisors_wait_when_its_callback_says_so() -> None:
    import os

    read, write = os.pipe()
    heard: list[bytes] = []

    def ready(wanted: bool) -> bool:
        heard.append(os.read(read, 100))
        return wanted

    with Supervisor(lambda: None) as supervisor:  # type: ignore[arg-type, return-value]
        supervisor.watch(read, lambda: ready(False))
        os.write(write, b"not yet")
        started = time.monotonic()
        assert supervisor.wait(0.3) == []
        assert time.monotonic() - started >= 0.3  # a callback that says False: waits on
        supervisor.unwatch(read)
        supervisor.watch(read, lambda: ready(True))
        os.write(write, b"now")
        started = time.monotonic()
        assert supervisor.wait(60) == []  # ends at once, long before its timeout
        assert time.monotonic() - started < 60
        supervisor.unwatch(read)
    os.close(read)
    os.close(write)
    assert heard == [b"not yet", b"now"]
