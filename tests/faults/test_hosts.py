"""Several hosts, one line of work: pools on different host names sharing one
PostgreSQL store, with and without a SIGKILL every 200 ms, and a host whose
clock runs an hour ahead.

Hosts are simulated honestly: each is a home of its own (its config names the
shared store and its `host`), and every pool is a real process of the installed
script. Every task appends its id to one file, so a task run twice shows twice.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from taskcron import TaskCron
from taskcron.config import load
from taskcron.model import Scope, State
from taskcron.schedule import RetryPolicy
from taskcron.store import Lease
from taskcron.store.postgres import PostgresStore
from tests.conftest import SERIAL, clean_env, script, taskcron_in, wait_for

pytestmark = SERIAL

HOSTS = 8
TASKS = 2000
MODULES = 64


def make_hosts(base: Path, url: str, count: int = HOSTS, extra: str = "") -> list[Path]:
    """`count` homes, each a host of its own sharing the store at `url`."""
    homes = []
    for n in range(count):
        home = base / f"host-{n}"
        home.mkdir()
        (home / "taskcron.toml").write_text(
            f'store = {json.dumps(url)}\nhost = "host-{n}"\n{extra}'
        )
        homes.append(home)
    return homes


def app(home: Path, **kwargs: object) -> TaskCron:
    return TaskCron(config=load(home / "taskcron.toml"), **kwargs)  # type: ignore[arg-type]


def schedule_appenders(home: Path, marks: Path, count: int = TASKS) -> list[int]:
    """`count` command tasks over MODULES module ids, each appending its number to `marks`."""
    with app(home) as tc:
        return [
            tc.schedule(
                f"load.m{i % MODULES:02d}",
                command=["sh", "-c", f'echo {i} >> "$0"', str(marks)],
                max_attempts=1000,
            ).id
            for i in range(count)
        ]


def pool(home: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [script(), "tick", "--workers", "2"],
        cwd=home,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def states(home: Path) -> Counter[str]:
    """How many tasks are in each state, across every module id."""
    with app(home) as tc:
        found: Counter[str] = Counter()
        for by_state in tc.store.counts(Scope()).values():
            found.update(by_state)
        return found


def drain_until_done(homes: list[Path], deadline: float) -> None:
    """Run a pool on every host, again and again, until no task is left to do."""
    while True:
        procs = [pool(home) for home in homes]
        for proc in procs:
            proc.wait(timeout=max(deadline - time.monotonic(), 1))
        left = states(homes[0])
        if left.get("queued", 0) + left.get("running", 0) == 0:
            return
        assert time.monotonic() < deadline, f"tasks left: {left}"


def check_each_ran_once_but_for_interrupted_runs(home: Path, marks: Path, ids: list[int]) -> None:
    """Every task done by exactly one run; any other run of it was recorded interrupted,
    and its id was written at most once a run."""
    seen = Counter(int(line) for line in marks.read_text().split())
    with app(home) as tc:
        assert tc.store.integrity() == []
        for number, task_id in enumerate(ids):
            task = tc.get(task_id)
            assert task.state is State.DONE, task
            outcomes = [run.outcome.value if run.outcome else None for run in task.runs]
            assert outcomes.count("done") == 1, outcomes
            assert set(outcomes) <= {"done", "interrupted"}, outcomes
            assert outcomes[-1] == "done", outcomes
            assert 1 <= seen[number] <= len(task.runs), (number, seen[number], outcomes)


def test_eight_pools_on_eight_hosts_run_every_task_exactly_once(
    tmp_path: Path, postgres_url: str
) -> None:
    homes = make_hosts(tmp_path, postgres_url)
    marks = tmp_path / "marks"
    ids = schedule_appenders(homes[0], marks)
    drain_until_done(homes, time.monotonic() + 300)
    assert Counter(int(line) for line in marks.read_text().split()) == Counter(range(TASKS))
    with app(homes[0]) as tc:
        hosts = Counter(tc.get(task_id).runs[0].host for task_id in ids[::50])
        runs = [len(tc.get(task_id).runs) for task_id in ids]
    assert runs == [1] * TASKS
    assert len(hosts) > 1, hosts  # the work really was shared
    check_each_ran_once_but_for_interrupted_runs(homes[0], marks, ids)


def test_pools_killed_every_200_ms_lose_nothing_and_repeat_only_interrupted_runs(
    tmp_path: Path, postgres_url: str
) -> None:
    homes = make_hosts(tmp_path, postgres_url, extra='lease = "2s"\n[retry]\nbackoff = "0s"\n')
    marks = tmp_path / "marks"
    ids = schedule_appenders(homes[0], marks)
    rng = random.Random(12)
    procs = {home: pool(home) for home in homes}
    kills = 0
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            left = states(homes[0])
            if left.get("queued", 0) + left.get("running", 0) == 0:
                break
            victim = rng.choice(homes)
            if procs[victim].poll() is None:
                procs[victim].send_signal(signal.SIGKILL)
                kills += 1
            procs[victim].wait(timeout=30)
            for home, proc in procs.items():
                if proc.poll() is not None:
                    procs[home] = pool(home)
            time.sleep(0.2)  # the storm's pace, not a wait for a result
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    assert kills > 10
    drain_until_done(homes, time.monotonic() + 300)
    check_each_ran_once_but_for_interrupted_runs(homes[0], marks, ids)
    with app(homes[0]) as tc:
        interrupted = sum(
            1
            for task_id in ids
            for run in tc.get(task_id).runs
            if run.outcome.value == "interrupted"
        )
    assert interrupted > 0  # the storm did interrupt runs, and every one was recovered
    repeats = sum(n - 1 for n in Counter(marks.read_text().split()).values())
    print(
        f"\nkill storm on {HOSTS} hosts: {TASKS} tasks, {kills} SIGKILLs, {interrupted}"
        f" interrupted runs recovered, {repeats} repeated outputs, 0 lost, 0 run twice unrecorded"
    )


@pytest.fixture
def held(tmp_path: Path) -> tuple[Path, Path]:
    """A task command that says it started, then waits until `release` exists."""
    return tmp_path / "started", tmp_path / "release"


def test_a_host_an_hour_ahead_neither_claims_early_nor_recovers_a_live_lease(
    tmp_path: Path, postgres_url: str, held: tuple[Path, Path]
) -> None:
    started, release = held
    here, ahead = make_hosts(tmp_path, postgres_url, count=2, extra='lease = "30s"\n')
    now = datetime.now(timezone.utc)
    with app(here) as tc:
        wait = ["sh", "-c", 'touch "$0"; while [ ! -e "$1" ]; do sleep 0.05; done']
        long_one = tc.schedule("jobs.long", command=[*wait, str(started), str(release)]).id
        later = tc.schedule("jobs.later", command=["true"], at=now + timedelta(minutes=30)).id
    tick = subprocess.Popen(
        [script(), "tick"], cwd=here, env=clean_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        wait_for(started.exists)
        hour_ahead = lambda: datetime.now(timezone.utc) + timedelta(hours=1)  # noqa: E731
        with app(ahead, clock=hour_ahead) as tc:
            busy = tc.tick(modules=["jobs.long"])
            assert busy.outcome == "busy"
            assert tc.get(long_one).state is State.RUNNING
            assert tc.get(long_one).runs[-1].outcome is None
            idle = tc.tick(modules=["jobs.later"])
            assert idle.outcome == "idle"
            assert tc.get(later).state is State.QUEUED
            # What it schedules "now" by its own clock is due now by the server's.
            soon = tc.schedule("jobs.soon", command=["true"]).id
        with app(here) as tc:
            assert tc.tick(modules=["jobs.soon"]).outcome == "ran"
            assert tc.get(soon).state is State.DONE
    finally:
        release.touch()
        tick.wait(timeout=60)
    assert tick.returncode == 0
    with app(here) as tc:
        assert [run.outcome.value for run in tc.get(long_one).runs] == ["done"]


def test_a_host_an_hour_behind_still_recovers_a_lease_that_expired(
    tmp_path: Path, postgres_url: str
) -> None:
    here, behind = make_hosts(tmp_path, postgres_url, count=2)
    with app(here) as tc:
        task_id = tc.schedule("jobs.lost", command=["true"], max_attempts=2).id
    # A tick on host-0 claimed it under a lease that ran out five seconds ago.
    now = datetime.now(timezone.utc)
    with PostgresStore(postgres_url, host="host-0") as store:
        lease = Lease(host="host-0", pid=1, expires_at=now - timedelta(seconds=5))
        claim = store.claim_next(
            scope=Scope(),
            now=now,
            lease=lease,
            decide=RetryPolicy(first=timedelta(0), cap=timedelta(0)).after_run,
        )
        assert claim.task is not None and claim.task.id == task_id
    hour_behind = lambda: datetime.now(timezone.utc) - timedelta(hours=1)  # noqa: E731
    with app(behind, clock=hour_behind) as tc:
        tc.tick(modules=["jobs.lost"])
        runs = tc.get(task_id).runs
    assert runs[0].outcome is not None and runs[0].outcome.value == "interrupted"
    assert "its lease expired (host host-0" in (runs[0].error or "")


def test_each_record_of_a_run_names_the_host_that_ran_it(tmp_path: Path, postgres_url: str) -> None:
    homes = make_hosts(tmp_path, postgres_url, count=2)
    for n, home in enumerate(homes):
        assert taskcron_in(home, "schedule", f"m{n}", "--", "true").returncode == 0
        assert taskcron_in(home, "tick", "--module", f"m{n}").returncode == 0
    with app(homes[0]) as tc:
        hosts = {task.module: task.runs[0].host for task in map(tc.get, (1, 2))}
    assert hosts == {"m0": "host-0", "m1": "host-1"}


def test_the_environment_names_the_host_over_the_config(tmp_path: Path, postgres_url: str) -> None:
    (home,) = make_hosts(tmp_path, postgres_url, count=1)
    env = {"TASKCRON_HOST": "from-env"}
    assert taskcron_in(home, "schedule", "m", "--", "true").returncode == 0
    assert taskcron_in(home, "tick", env=env).returncode == 0
    with app(home) as tc:
        assert tc.get(1).runs[0].host == "from-env"
    bad = taskcron_in(home, "list", env={"TASKCRON_HOST": "two words"})
    assert bad.returncode == 2
    assert bad.stderr.startswith("taskcron: error: invalid host 'two words' (TASKCRON_HOST)")
