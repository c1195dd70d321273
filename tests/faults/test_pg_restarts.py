"""PostgreSQL going away under the work: a restart, a 10-second stop, and every taskcron
connection terminated, while pools on four hosts drain 500 tasks, a plain tick runs
from cron and the dashboard serves; and a plain tick whose lease runs out while the
server is stopped.

The server is this module's own (never the session's, which other tests share), so
that it can be stopped and restarted. Hosts are homes of their own sharing its store,
and every pool, tick and dashboard is a real process of the installed script.

Every task is a small Python program that appends `TASK RUN start|beat|end TIME` lines
to one file, a beat every BEAT seconds while it runs: a run's interval is from its
start to its end, or, for a run that was stopped, to its last line plus one beat. Two
runs of one task whose intervals meet ran at once, which taskcron promises never
happens "whatever the network or the database does".

TASKCRON_STRESS=1 repeats each fault three times in one drain. Run with `-s` to see,
for each fault, how long the server was away, how soon the dashboard answered and the
pools finished tasks again, and how many runs were repeated.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import pytest

from taskcron import TaskCron
from taskcron.config import load
from taskcron.model import Scope, State, Task
from tests.conftest import SERIAL, clean_env, script, taskcron_in, wait_for
from tests.pgserver import PostgresServer

if TYPE_CHECKING:
    from tests.web.conftest import Server

#: Hundreds of processes, a server stopped for seconds, and a bound on how soon the
#: dashboard answers again: beside the other suites that try to break taskcron, not
#: beside tests that bound times.
pytestmark = SERIAL

STRESS = os.environ.get("TASKCRON_STRESS") == "1"
#: How often each fault strikes during one drain.
REPEATS = 3 if STRESS else 1
TASKS = 500
POOLS = 4
WORKERS = 4
#: Module ids the tasks are spread over (each is a lane: one task at a time).
MODULES = 50
#: Seconds each task of the drain runs.
TASK_SECONDS = 0.2
#: Seconds between the lines a running task writes.
BEAT = 0.05
#: Seconds the server stays stopped in the "stop" fault.
STOP_SECONDS = 10
#: Seconds the dashboard may take to answer again once the server is back.
WEB_BACK_WITHIN = 5
#: Each drain host's config: a recovered run goes again at once.
DRAIN_CONFIG = 'lease = "15s"\n[retry]\nbackoff = "0s"\n'
#: Seconds the whole drain may take before the test fails.
DRAIN_DEADLINE = 240 if STRESS else 120

#: The task program: argv is the marks file, then its seconds on the first attempt and
#: on later ones.
RECORDER = """\
import os, sys, time
path, first, later = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
seconds = first if os.environ["TASKCRON_ATTEMPT"] == "1" else later
key = os.environ["TASKCRON_TASK_ID"] + " " + os.environ["TASKCRON_RUN_ID"]
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
def say(word):
    os.write(fd, ("%s %s %.6f\\n" % (key, word, time.time())).encode())
say("start")
end = time.monotonic() + seconds
while True:
    left = end - time.monotonic()
    if left <= 0:
        break
    time.sleep(min(BEAT, left))
    say("beat")
say("end")
""".replace("BEAT", repr(BEAT))


def recorder(marks: Path, first: float, later: float | None = None) -> list[str]:
    """The command of a task that records its run in `marks` and runs `first` seconds
    (`later` seconds on attempts after the first)."""
    seconds = (first, first if later is None else later)
    return [sys.executable, "-S", "-c", RECORDER, str(marks), *map(str, seconds)]


# --- what the tasks wrote -----------------------------------------------------------


class Span(NamedTuple):
    """One run as its task's own lines tell it: wall-clock seconds."""

    task: int
    run: int
    start: float
    last: float  #: Its last line.
    ended: bool  #: Whether it wrote its "end" line.

    @property
    def stop(self) -> float:
        """The latest it can have been alive: its end, or a beat after its last line."""
        return self.last if self.ended else self.last + BEAT


def spans(marks: Path) -> list[Span]:
    """Every run that wrote a line, in order of start."""
    seen: dict[tuple[int, int], list[tuple[str, float]]] = {}
    if marks.exists():
        for line in marks.read_text().split("\n")[:-1]:  # not a line being written
            task_id, run_id, word, at = line.split()
            seen.setdefault((int(task_id), int(run_id)), []).append((word, float(at)))
    found = []
    for (task, run), lines in seen.items():
        times = [at for _, at in lines]
        starts = [at for word, at in lines if word == "start"]
        assert len(starts) == 1, (task, run, lines)
        ended = any(word == "end" for word, _ in lines)
        found.append(Span(task, run, starts[0], max(times), ended))
    return sorted(found, key=lambda span: span.start)


def overlaps(found: list[Span]) -> list[tuple[Span, Span]]:
    """Every pair of runs of one task that were alive at the same moment."""
    by_task: dict[int, list[Span]] = {}
    for span in found:
        by_task.setdefault(span.task, []).append(span)
    return [
        (first, second)
        for runs in by_task.values()
        for i, first in enumerate(runs)
        for second in runs[i + 1 :]
        if second.start < first.stop
    ]


# --- hosts, pools, a tick loop, the dashboard ----------------------------------------


@pytest.fixture(scope="module")
def pg(private_postgres: PostgresServer) -> PostgresServer:
    """The module's own server (tests/conftest.py): it is stopped and restarted on purpose."""
    return private_postgres


def make_hosts(base: Path, url: str, names: list[str], extra: str) -> list[Path]:
    """A home for each name, each a host of that name sharing the store at `url`."""
    homes = []
    for name in names:
        home = base / name
        home.mkdir()
        config = f"store = {json.dumps(url)}\nhost = {json.dumps(name)}\n{extra}"
        (home / "taskcron.toml").write_text(config)
        homes.append(home)
    return homes


def app(home: Path) -> TaskCron:
    return TaskCron(config=load(home / "taskcron.toml"))


def states(home: Path) -> Counter[str]:
    """How many tasks are in each state, across every module id."""
    with app(home) as tc:
        found: Counter[str] = Counter()
        for by_state in tc.store.counts(Scope()).values():
            found.update(by_state)
        return found


def all_tasks(home: Path, ids: list[int]) -> list[Task]:
    with app(home) as tc:
        return [tc.get(task_id) for task_id in ids]


@dataclass
class Pool:
    """A `taskcron work` process and the file its stderr goes to."""

    home: Path
    process: subprocess.Popen[bytes]
    stderr: Path

    @classmethod
    def start(cls, home: Path) -> Pool:
        stderr = home / "work.stderr"
        with stderr.open("wb") as err:
            process = subprocess.Popen(
                [script(), "work", "--workers", str(WORKERS)],
                cwd=home,
                env=clean_env(),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        return cls(home, process, stderr)

    def said(self) -> str:
        return self.stderr.read_text(errors="replace")[-2000:]


@dataclass
class TickLoop:
    """Runs `taskcron tick` in a home again and again, as cron would, counting exits."""

    home: Path
    codes: Counter[int] = field(default_factory=Counter)  #: -1: a tick that hung.
    complaints: list[str] = field(default_factory=list)  #: stderr of each tick that failed.
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> TickLoop:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=150)

    def _run(self) -> None:
        while not self._done.is_set():
            try:
                done = taskcron_in(self.home, "tick")
            except subprocess.TimeoutExpired as e:
                self.codes[-1] += 1
                self.complaints.append(f"a tick hung: {e}")
                continue
            self.codes[done.returncode] += 1
            if done.returncode != 0:
                self.complaints.append(done.stderr)
            self._done.wait(0.25)  # cron's pace, not a wait for a result


#: The dashboard's token.
WEB_TOKEN = "the-token-of-the-restarts-1"


@contextlib.contextmanager
def dashboard(home: Path) -> Iterator[Server]:
    """`taskcron web` on `home`'s store (skips the test without the web extra)."""
    from tests.web.conftest import start_server, stop

    server = start_server(home / "taskcron.toml", token=WEB_TOKEN)
    try:
        yield server
    finally:
        stop(server.process)


def get(base: str, path: str = "/") -> int:
    """The status of an authorized GET of `path` (0: no answer within 2 s)."""
    headers = {"Authorization": f"Bearer {WEB_TOKEN}"}
    request = urllib.request.Request(base + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0


# --- the faults --------------------------------------------------------------------


@dataclass
class Struck:
    """What one fault did: seconds the server was away, and how long after its return
    the dashboard answered and the pools finished tasks again."""

    away: float
    web_back: float = 0.0
    work_back: float = 0.0
    down_status: int | None = None  #: What the dashboard answered while the server was down.


def restart(pg: PostgresServer, web: str) -> Struck:
    """`pg_ctl restart -m fast`."""
    assert pg.cluster is not None
    began = time.monotonic()
    pg.cluster.restart("fast")
    return Struck(away=time.monotonic() - began)


def stop_for_a_while(pg: PostgresServer, web: str) -> Struck:
    """Stop the server for STOP_SECONDS, asking the dashboard for a page meanwhile."""
    assert pg.cluster is not None
    began = time.monotonic()
    pg.cluster.halt("fast")
    until = time.monotonic() + STOP_SECONDS
    statuses: list[int] = []

    def refused() -> bool:
        statuses.append(get(web))
        return statuses[-1] == 503 or time.monotonic() > until

    wait_for(refused, timeout=STOP_SECONDS + 5, interval=0.2)
    time.sleep(max(until - time.monotonic(), 0))  # the fault's length, not a wait for a result
    pg.cluster.resume()
    return Struck(away=time.monotonic() - began, down_status=statuses[-1])


def terminate_backends(pg: PostgresServer, web: str) -> Struck:
    """End every taskcron connection, from an admin connection."""
    import psycopg

    with psycopg.connect(pg.admin_url, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'taskcron'"
        ).fetchall()
    assert any(ended for (ended,) in rows), "no taskcron connection to terminate"
    return Struck(away=0.0)


#: Each fault, by the name its test is given.
FAULTS: dict[str, Callable[[PostgresServer, str], Struck]] = {
    "restart": restart,
    "stop-10s": stop_for_a_while,
    "terminate": terminate_backends,
}


def recovered(struck: Struck, home: Path, web: str, pools: list[Pool], done_before: int) -> None:
    """Wait (bounded) until the dashboard answers and the pools finish tasks again (two
    rounds of their workers' worth: more than the plain tick beside them finishes)."""
    back = time.monotonic()
    statuses: list[int] = []

    def answers() -> bool:
        statuses.append(get(web))
        return statuses[-1] == 200

    try:
        wait_for(answers, timeout=WEB_BACK_WITHIN, interval=0.1)
    except AssertionError:
        raise AssertionError(
            f"the dashboard did not answer 200 within {WEB_BACK_WITHIN}s of the server's"
            f" return; it answered {Counter(statuses)}"
        ) from None
    struck.web_back = time.monotonic() - back
    wait_until_done(home, done_before + 2 * POOLS * WORKERS, 60, pools)
    struck.work_back = time.monotonic() - back


# --- the drain under faults ---------------------------------------------------------


def schedule_drain(home: Path, marks: Path) -> list[int]:
    with app(home) as tc:
        return [
            tc.schedule(
                f"drain.m{i % MODULES:02d}", command=recorder(marks, TASK_SECONDS), max_attempts=3
            ).id
            for i in range(TASKS)
        ]


def wait_until_done(home: Path, count: int, timeout: float, pools: list[Pool]) -> None:
    """Wait (bounded) until at least `count` tasks are done; fail at once if a pool ended."""

    def done() -> bool:
        check_alive(pools)
        return states(home)["done"] >= count

    wait_for(done, timeout=timeout, interval=0.2)


def check_alive(pools: list[Pool]) -> None:
    """Every pool is still the process that was started."""
    gone = {
        pool.home.name: (pool.process.returncode, pool.said())
        for pool in pools
        if pool.process.poll() is not None
    }
    assert gone == {}, f"pools that ended (exit code, stderr): {gone}"


def check_every_task_done_once_but_for_interrupted_runs(
    home: Path, tasks: list[Task], found: list[Span]
) -> int:
    """The store whole; every task done, by one run; any run before it recorded
    interrupted; every run the tasks wrote one the store recorded. The number of repeats."""
    recorded = {run.id for task in tasks for run in task.runs}
    with app(home) as tc:
        assert tc.store.integrity() == []
    assert [task for task in tasks if task.state is not State.DONE] == []
    for task in tasks:
        outcomes = [run.outcome.value if run.outcome else None for run in task.runs]
        assert outcomes[-1:] == ["done"], (task.id, outcomes)
        assert set(outcomes[:-1]) <= {"interrupted"}, (task.id, outcomes)
    assert {span.run for span in found} <= recorded
    return sum(len(task.runs) - 1 for task in tasks)


def drain_under(
    fault: str, pg: PostgresServer, web: str, home: Path, pools: list[Pool]
) -> list[Struck]:
    """Strike with `fault` REPEATS times, evenly through the drain, each time once a share
    of the tasks is done; back when every task is done."""
    struck = []
    for k in range(REPEATS):
        wait_until_done(home, TASKS * (k + 1) // (REPEATS + 1), 120, pools)
        done_before = states(home)["done"]
        struck.append(FAULTS[fault](pg, web))
        recovered(struck[-1], home, web, pools, done_before)
    wait_until_done(home, TASKS, DRAIN_DEADLINE, pools)
    return struck


@pytest.mark.parametrize("fault", FAULTS)
def test_pools_ticks_and_the_dashboard_ride_out_the_server_going_away(
    tmp_path: Path, pg: PostgresServer, fault: str
) -> None:
    url = pg.fresh_database()
    names = [f"host-{n}" for n in range(POOLS)] + ["cron", "web"]
    *pool_homes, cron_home, web_home = make_hosts(tmp_path, url, names, DRAIN_CONFIG)
    marks = tmp_path / "marks"
    ids = schedule_drain(pool_homes[0], marks)
    with dashboard(web_home) as web:
        began = time.monotonic()
        pools = [Pool.start(home) for home in pool_homes]
        try:
            with TickLoop(cron_home) as ticks:
                struck = drain_under(fault, pg, web.base, cron_home, pools)
            drained = time.monotonic() - began
            check_alive(pools)
        finally:
            for pool in pools:
                if pool.process.poll() is None:
                    pool.process.send_signal(signal.SIGTERM)
            codes = [pool.process.wait(timeout=60) for pool in pools]

    assert codes == [0] * POOLS, [pool.said() for pool in pools]
    assert set(ticks.codes) <= {0, 1}, ticks.codes
    for complaint in ticks.complaints:  # taskcron's own lines, a warning or an error
        lines = complaint.splitlines()
        assert lines and all(line.startswith("taskcron: ") for line in lines), complaint
    if fault == "stop-10s":
        assert [s.down_status for s in struck] == [503] * REPEATS
    found = spans(marks)
    twice = overlaps(found)
    assert twice == [], f"{len(twice)} pairs of runs of one task ran at once: {twice[:5]}"
    repeats = check_every_task_done_once_but_for_interrupted_runs(
        cron_home, all_tasks(cron_home, ids), found
    )
    print(
        f"\n{fault} x{REPEATS}: {TASKS} tasks on {POOLS} pools in {drained:.1f}s;"
        + "".join(
            f" server away {s.away:.1f}s, web back {s.web_back:.1f}s,"
            f" work back {s.work_back:.1f}s after;"
            for s in struck
        )
        + f" {repeats} repeats, 0 overlapping, 0 lost; ticks {dict(ticks.codes)}"
    )


# --- a plain tick whose lease runs out ------------------------------------------------

#: Seconds the first run would take, and the later one.
LONG, SHORT = 15.0, 0.5
#: Seconds the server stays stopped: longer than the lease.
HOLD = 5.0


def test_a_tick_that_cannot_renew_its_lease_stops_its_task_before_another_host_runs_it(
    tmp_path: Path, pg: PostgresServer
) -> None:
    assert pg.cluster is not None
    url = pg.fresh_database()
    extra = 'lease = "3s"\nkill_grace = "1s"\n[retry]\nbackoff = "0s"\n'
    here, there = make_hosts(tmp_path, url, ["host-a", "host-b"], extra)
    marks = tmp_path / "marks"
    with app(here) as tc:
        command = recorder(marks, LONG, SHORT)
        task_id = tc.schedule("jobs.long", command=command, max_attempts=3).id
    with (here / "tick.stderr").open("wb") as stderr:
        tick = subprocess.Popen(
            [script(), "tick"], cwd=here, env=clean_env(), stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        wait_for(lambda: spans(marks), timeout=30)
        halted = time.monotonic()
        pg.cluster.halt("fast")
        time.sleep(max(halted + HOLD - time.monotonic(), 0))  # the outage's length
        back_at = time.time()
        pg.cluster.resume()
        tick_until_done(there, task_id)
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            tick.wait(timeout=60)
        if tick.poll() is None:
            tick.kill()
            tick.wait()
    found = spans(marks)
    first = found[0]
    twice = overlaps(found)
    assert twice == [], (
        f"the first run was alive {first.stop - twice[0][1].start:.1f}s after the second"
        f" started, {first.stop - back_at:.1f}s after the server came back"
    )
    assert first.stop < back_at, (
        f"the first run outlived its lease: alive {first.stop - first.start:.1f}s, until"
        f" {first.stop - back_at:.1f}s after the server came back"
    )
    runs = all_tasks(here, [task_id])[0].runs
    assert [(run.host, run.outcome.value if run.outcome else None) for run in runs] == [
        ("host-a", "interrupted"),
        ("host-b", "done"),
    ]


def tick_until_done(home: Path, task_id: int) -> None:
    """Run `taskcron tick` in `home`, as cron would, until task `task_id` is done."""

    def done() -> bool:
        taskcron_in(home, "tick")
        return all_tasks(home, [task_id])[0].state is State.DONE

    wait_for(done, timeout=60, interval=0.2)
