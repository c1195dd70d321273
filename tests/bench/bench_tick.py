"""Benchmarks of the tick path, as ratios against floors measured in the same run.

    python -m tests.bench.bench_tick [--runs N] [--tasks N]

Prints:
- the wall time of an idle `taskcron tick` against the floor of starting
  Python with click and sqlite3 imported (the cost cron pays every minute);
- the cost of choosing and claiming the next task with a small store and with
  a store holding many more tasks (done, failed, future and queued, across
  module ids): the ratio shows that choosing never scans.

Not part of the test run: these machines are shared and noisy, so only the
ratios mean anything.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from taskcron.model import Outcome, RunEnd, Scope, State, Target
from taskcron.schedule import RetryPolicy
from taskcron.store import Lease, NewTask
from taskcron.store.sqlite import SqliteStore
from tests.bench.timing import wall


def fill(store: SqliteStore, count: int, now: datetime) -> None:
    """`count` tasks: mostly finished or future ones, some queued, across 20 module ids."""
    db = store._db
    rows = []
    states = ["done", "failed", "cancelled", "queued"]
    for i in range(count):
        state = states[i % 4]
        due = now + timedelta(days=1) if i % 8 == 3 else now - timedelta(seconds=count - i)
        micros = int(due.timestamp() * 1_000_000)
        rows.append(
            (
                f"mod{i % 20}.sub",
                "t",
                '{"kind":"command","value":["true"]}',
                "null",
                i % 5,
                state,
                micros,
                0,
                1,
                micros,
                micros,
            )
        )
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO tasks (module, title, target, data, priority, state, due_at, attempts,"
        " max_attempts, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    db.execute("COMMIT")


def claim_cost(count: int, rounds: int) -> float:
    """Mean microseconds to claim and finish one task with `count` tasks stored."""
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    policy = RetryPolicy()
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "tasks.db")
        fill(store, count, now)
        for _ in range(rounds):
            store.schedule(
                NewTask(module="bench", title="b", target=Target.command(["true"]), due_at=now),
                now=now,
            )
        lease = Lease(host="bench", pid=os.getpid(), expires_at=now + timedelta(hours=1))
        start = time.perf_counter()
        for _ in range(rounds):
            claim = store.claim_next(scope=Scope(), now=now, lease=lease, decide=policy.after_run)
            assert claim.run is not None
            end = RunEnd(outcome=Outcome.DONE, ended_at=now, elapsed=0.0)
            store.finish_run(claim.run.id, end, decide=policy.after_run)
        elapsed = time.perf_counter() - start
        assert store.list(scope=Scope(), states=[State.RUNNING]) == []
        store.close()
    return elapsed / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="process starts per figure")
    parser.add_argument("--tasks", type=int, default=200_000, help="tasks in the large store")
    args = parser.parse_args()

    script = str(Path(sys.executable).parent / "taskcron")
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCRON_")}
        env["TASKCRON_HOME"] = home
        subprocess.run([script, "init"], env=env, cwd=home, check=True, stdout=subprocess.DEVNULL)
        floor = wall([sys.executable, "-c", "import click, sqlite3"], args.runs, env)
        idle = wall([script, "tick"], args.runs, env)
    print(f"python + click + sqlite3 start  {floor:8.1f} ms  (floor)")
    print(f"idle `taskcron tick`            {idle:8.1f} ms  ({idle / floor:.2f}x floor)")

    small = claim_cost(1_000, 300)
    large = claim_cost(args.tasks, 300)
    print(f"claim + finish, 1,000 stored    {small:8.0f} us")
    print(f"claim + finish, {args.tasks:,} stored {large:8.0f} us  ({large / small:.2f}x)")


if __name__ == "__main__":
    main()
