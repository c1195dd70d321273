"""A PostgreSQL server that goes away and comes back, under a tick and under `work`.

Each test has a private server of its own (the suite's shared one is never
stopped) and stops it mid-run: a tick whose task ends while the server is away
records the end once it is back, quietly; `work` goes on across a restart and
says so once on stderr when the store is lost and once when it is back.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from taskcron import TaskCron
from taskcron.config import load
from taskcron.model import Outcome, State
from tests.conftest import clean_env, script, wait_for
from tests.pgserver import PostgresServer


@pytest.fixture
def server(private_postgres: PostgresServer, private_cluster: object) -> PostgresServer:
    """The module's own server (tests/conftest.py), running again after each test."""
    return private_postgres


def _home(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "taskcron.toml"
    config.write_text(f'store = {json.dumps(url)}\nlease = "30s"\npoll = "0.2s"\n')
    return config


def _waiting(tmp_path: Path, name: str) -> tuple[list[str], Path, Path]:
    """A command that says it started, runs until told to stop, then says it ended."""
    started, stop, ended = (tmp_path / f"{name}.{s}" for s in ("started", "stop", "ended"))
    loop = f"touch {started}; while [ ! -e {stop} ]; do sleep 0.02; done; touch {ended}"
    return ["sh", "-c", loop], stop, ended


def _records(home: Path, event: str) -> list[dict[str, object]]:
    """This host's own log file's records of `event` (the shared log was away too)."""
    found = []
    for path in home.rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("event") == event:
                found.append(rec)
    return found


def test_a_tick_records_an_end_made_while_the_server_was_away(
    server: PostgresServer, tmp_path: Path
) -> None:
    assert server.cluster is not None
    config = _home(tmp_path, server.fresh_database())
    app = TaskCron(config=load(config))
    command, stop, ended = _waiting(tmp_path, "task")
    task = app.schedule("m", command=command)
    app.close()
    tick = subprocess.Popen(
        [script(), "--config", str(config), "tick"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for((tmp_path / "task.started").exists)
        server.cluster.halt()
        stop.touch()
        wait_for(ended.exists)
        assert tick.poll() is None, "the tick waits for the store to record the end"
        server.cluster.resume()
        out, err = tick.communicate(timeout=60)
    finally:
        if tick.poll() is None:
            tick.kill()
            tick.wait()
    assert (tick.returncode, out, err) == (0, "", "")  # quiet under cron
    app = TaskCron(config=load(config))
    done = app.get(task.id)
    assert done.state is State.DONE
    assert [run.outcome for run in done.runs] == [Outcome.DONE]
    home = tmp_path / ".taskcron"
    assert len(_records(home, "store.lost")) == 1
    assert len(_records(home, "store.back")) == 1
    app.close()


def test_work_rides_out_an_outage_and_says_so_once(server: PostgresServer, tmp_path: Path) -> None:
    assert server.cluster is not None
    config = _home(tmp_path, server.fresh_database())
    app = TaskCron(config=load(config))
    command, stop, ended = _waiting(tmp_path, "long")
    long = app.schedule("long", command=command)
    work = subprocess.Popen(
        [script(), "--config", str(config), "work", "--workers", "2"],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    said: list[str] = []
    assert work.stderr is not None
    reader = threading.Thread(target=lambda: said.extend(work.stderr or ()), daemon=True)
    reader.start()
    try:
        wait_for((tmp_path / "long.started").exists)
        server.cluster.halt()
        wait_for(lambda: any("the store is unreachable" in line for line in said))
        stop.touch()  # the task running across the outage ends during it
        wait_for(ended.exists)
        server.cluster.resume()
        later = app.schedule("later", command=["true"])  # the app reconnects too
        wait_for(lambda: app.get(later.id).state is State.DONE, timeout=30)
        wait_for(lambda: app.get(long.id).state is State.DONE, timeout=30)
        assert work.poll() is None, "work goes on"
        work.send_signal(signal.SIGTERM)
        work.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if work.poll() is None:
            work.kill()
            work.wait()
    err = "".join(said)
    assert work.returncode == 0, err
    assert len([line for line in said if "the store is unreachable" in line]) == 1, err
    assert len([line for line in said if "reachable again" in line]) == 1, err
    assert [run.outcome for run in app.get(long.id).runs] == [Outcome.DONE]
    app.close()


def test_a_restart_between_calls_costs_an_app_nothing(
    server: PostgresServer, tmp_path: Path
) -> None:
    assert server.cluster is not None
    app = TaskCron(config=load(_home(tmp_path, server.fresh_database())))
    first = app.schedule("m", command=["true"])
    server.cluster.restart()
    second = app.schedule("m", command=["true"])  # its connection was lost: replaced
    assert [task.id for task in app.list()] == [first.id, second.id]
    app.close()


def test_a_drain_whose_store_stays_away_ends_with_one_line_and_its_run_is_recovered(
    server: PostgresServer, tmp_path: Path
) -> None:
    assert server.cluster is not None
    config = tmp_path / "taskcron.toml"
    url = server.fresh_database()
    config.write_text(f'store = {json.dumps(url)}\nlease = "3s"\n[retry]\nbackoff = "0s"\n')
    app = TaskCron(config=load(config))
    command, stop, _ = _waiting(tmp_path, "task")
    task = app.schedule("m", command=command, max_attempts=2)
    app.close()
    drain = subprocess.Popen(
        [script(), "--config", str(config), "tick", "--drain", "--budget", "1s"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for((tmp_path / "task.started").exists)
        server.cluster.halt()
        stop.touch()  # it ends while the store is away, and stays away past its lease
        out, err = drain.communicate(timeout=60)
    finally:
        if drain.poll() is None:
            drain.kill()
            drain.wait()
        server.cluster.resume()
    assert drain.returncode == 1
    assert out == ""
    assert err.startswith("taskcron: error: ") and len(err.splitlines()) == 1, err
    app = TaskCron(config=load(config))
    assert app.tick().outcome == "ran"  # recovered, and run again
    runs = app.get(task.id).runs
    assert [run.outcome for run in runs] == [Outcome.INTERRUPTED, Outcome.DONE]
    app.close()
