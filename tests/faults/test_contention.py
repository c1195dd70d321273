"""Contention: many processes claiming and scheduling on one store at once.

Pool-style claims (lanes, one task per module id at a time) from many processes
on one SQLite home and on one PostgreSQL store, and many processes scheduling
through the API while the installed script schedules too: no "database is
locked" (or any other error) reaches a caller, every task is claimed exactly
once, every scheduled task exists once.

By default each process does 100 claims or schedules and the script 60;
TASKCRON_STRESS=1 runs the full counts (16 processes x 500 claims, 16 x 500
schedules, 300 schedules through the script).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from taskcron import TaskCron
from taskcron.config import Config
from taskcron.model import Lanes, Outcome, RunEnd, Scope, State
from taskcron.store import ClaimOutcome, Lease
from tests.conftest import SERIAL, clean_env, script

pytestmark = SERIAL

STRESS = os.environ.get("TASKCRON_STRESS") == "1"
PROCESSES = 16
PER_PROCESS = 500 if STRESS else 100
THROUGH_THE_SCRIPT = 300 if STRESS else 60
MODULES = 64  #: Lanes the claimed tasks are spread over, so that claims can run side by side.
DEADLINE = 600 if STRESS else 120  #: Seconds a process may take before the test fails.


def _app(home: str, url: str | None) -> TaskCron:
    return TaskCron(config=Config(home=Path(home), store=url))


def claimer(home: str, url: str | None, out: str) -> None:
    """Claim and finish tasks, pool-style, until none is queued; write what was claimed."""
    claimed: list[int] = []
    failures: list[str] = []
    idle = 0
    with _app(home, url) as app:
        store, scope, lanes = app.store, Scope(), Lanes()
        give_up = time.monotonic() + DEADLINE
        while time.monotonic() < give_up:
            now = app.clock()
            lease = Lease(host="test", pid=os.getpid(), expires_at=now + timedelta(minutes=10))
            try:
                claim = store.claim_next(
                    scope=scope, now=now, lease=lease, decide=app.policy.after_run, lanes=lanes
                )
                if claim.outcome is ClaimOutcome.CLAIMED:
                    assert claim.task is not None and claim.run is not None
                    claimed.append(claim.task.id)
                    end = RunEnd(outcome=Outcome.DONE, ended_at=app.clock(), elapsed=0.0)
                    store.finish_run(claim.run.id, end, decide=app.policy.after_run)
                    continue
                idle += 1
                counts = store.counts(scope)
                if not any(c.get(State.QUEUED.value) for c in counts.values()):
                    break
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
    Path(out).write_text(json.dumps({"claimed": claimed, "failures": failures, "idle": idle}))


def scheduler(home: str, url: str | None, worker: int, count: int, out: str) -> None:
    """Schedule `count` tasks titled WORKER-N; write the ids given and any failure."""
    ids: list[int] = []
    failures: list[str] = []
    with _app(home, url) as app:
        for n in range(count):
            try:
                ids.append(app.schedule(f"w{worker}", command=["true"], title=f"{worker}-{n}").id)
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
    Path(out).write_text(json.dumps({"ids": ids, "failures": failures}))


def run_processes(target: Any, argsets: list[tuple[Any, ...]]) -> None:
    """Start a process per argument set (fresh interpreters), then wait for all of them."""
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=target, args=args) for args in argsets]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(DEADLINE + 60)
        if proc.is_alive():
            proc.kill()
            proc.join()
        assert proc.exitcode == 0, proc.exitcode


def claims_on(home: Path, url: str | None, tmp_path: Path, record_property: Any, name: str) -> None:
    total = PROCESSES * PER_PROCESS
    with _app(str(home), url) as app:
        for n in range(total):
            app.schedule(f"lane{n % MODULES}", command=["true"], title=str(n))
    outs = [tmp_path / f"claims-{i}.json" for i in range(PROCESSES)]
    started = time.monotonic()
    run_processes(claimer, [(str(home), url, str(out)) for out in outs])
    elapsed = time.monotonic() - started
    results = [json.loads(out.read_text()) for out in outs]
    failures = [f for r in results for f in r["failures"]]
    claimed = Counter(task_id for r in results for task_id in r["claimed"])
    with _app(str(home), url) as app:
        tasks = app.list(all=True)
    figures = (
        f"{PROCESSES} processes, {sum(claimed.values())} claims of {total} tasks in "
        f"{elapsed:.1f}s, {sum(n - 1 for n in claimed.values())} claimed twice, "
        f"{total - len(claimed)} never claimed, {len(failures)} errors "
        f"({sum('locked' in f for f in failures)} 'database is locked')"
    )
    record_property(f"contention_claims_{name}", figures)
    print(f"\nsuite 4, claims on {name}: {figures}")
    assert failures == []
    assert all(n == 1 for n in claimed.values())
    assert set(claimed) == {t.id for t in tasks}
    assert Counter(t.state for t in tasks) == {State.DONE: total}


def test_many_processes_claim_every_task_of_a_sqlite_home_once(
    tmp_path: Path, record_property: Any
) -> None:
    claims_on(tmp_path / "home", None, tmp_path, record_property, "SQLite")


def test_many_processes_claim_every_task_of_a_postgresql_store_once(
    tmp_path: Path, postgres_url: str, record_property: Any
) -> None:
    claims_on(tmp_path / "home", postgres_url, tmp_path, record_property, "PostgreSQL")


def test_many_processes_and_the_script_schedule_every_task_once(
    tmp_path: Path, record_property: Any
) -> None:
    home = tmp_path / "home"
    with _app(str(home), None) as app:
        app.init()
    outs = [tmp_path / f"schedule-{i}.json" for i in range(PROCESSES)]
    env = clean_env(TASKCRON_HOME=str(home))

    def through_the_script(n: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script(), "schedule", "cli", "--title", f"cli-{n}", "--", "true"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=DEADLINE,
            check=False,
        )

    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        scripted = pool.map(through_the_script, range(THROUGH_THE_SCRIPT))
        run_processes(
            scheduler, [(str(home), None, i, PER_PROCESS, str(out)) for i, out in enumerate(outs)]
        )
        results = list(scripted)
    elapsed = time.monotonic() - started
    api = [json.loads(out.read_text()) for out in outs]
    failures = [f for r in api for f in r["failures"]]
    failures += [r.stderr for r in results if r.returncode != 0 or r.stderr]
    ids = [i for r in api for i in r["ids"]] + [int(r.stdout) for r in results if r.returncode == 0]
    with _app(str(home), None) as app:
        titles = Counter(t.title for t in app.list(all=True))
    wanted = {f"{w}-{n}" for w in range(PROCESSES) for n in range(PER_PROCESS)}
    wanted |= {f"cli-{n}" for n in range(THROUGH_THE_SCRIPT)}
    figures = (
        f"{PROCESSES} processes x {PER_PROCESS} through the API and {THROUGH_THE_SCRIPT} "
        f"through the script in {elapsed:.1f}s: {sum(titles.values())} tasks of "
        f"{len(wanted)}, {sum(n - 1 for n in titles.values())} twice, {len(failures)} errors "
        f"({sum('locked' in f for f in failures)} 'database is locked')"
    )
    record_property("contention_schedules", figures)
    print(f"\nsuite 4, schedules on SQLite: {figures}")
    assert failures == []
    assert set(titles) == wanted and all(n == 1 for n in titles.values())
    assert len(set(ids)) == len(ids) == len(wanted)
