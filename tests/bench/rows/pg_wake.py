"""`taskcron work` on PostgreSQL starts a task scheduled while it waits at once, woken by
the store's notification, not at its next poll.

The latency is from the call to `schedule` to the run's `started_at` as the store
records it, the median over tasks scheduled at random points of a 5 s poll cycle
(the poll `work` keeps as its fallback); there is no natural floor, so the ratio
is latency / poll, and the goal is 0.02 (100 ms). It is counted from the call, not
from `schedule`'s return: `schedule` returns after writing its log record (to the
store's log table too), and by then `work` has usually started the task, so from
the return the figure is about zero or below; a note gives it. The store is a private server's
database, over its Unix socket. At the end `work` is stopped with SIGTERM and must
exit 0. Runs in the target's interpreter (it schedules through the API).
"""

from __future__ import annotations

import json
import random
import signal
import statistics
import subprocess
import time

from tests.bench import postgres, project
from tests.bench.harness import Bench, Figures, Params, Timing, clean_env, row
from tests.bench.rows.work import started


@row(
    name="pg-wake",
    title="work on PostgreSQL: schedule to started_at, poll {poll_ms:,} ms",
    floor="the poll interval",
    goal=0.02,
    unit="ms",
    quick={"runs": 5, "poll_ms": 5_000, "spread_ms": 1_000},
    full={"runs": 21, "poll_ms": 5_000, "spread_ms": 5_000},
    in_target=True,
)
def pg_wake(bench: Bench, params: Params) -> Figures:
    """Median time from `schedule`'s return to `started_at` of `runs` tasks under `work`,
    against `work`'s poll."""
    poll = params["poll_ms"] / 1000
    with postgres.server() as server:
        url = server.fresh_database()
        home = project.make(
            bench.directory("pg-wake"), poll=f'"{params["poll_ms"]}ms"', store=json.dumps(url)
        )
        out = home.directory / "work.err"
        with out.open("w") as err:
            worker = subprocess.Popen(
                [bench.script, "work"],
                cwd=home.home,
                env=clean_env(TASKCRON_HOME=str(home.home)),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        try:
            latencies = _latencies(bench, home, worker, params, poll)
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=30)
        if code != 0:
            raise RuntimeError(f"taskcron work exited {code} on SIGTERM:\n{out.read_text()}")
    timed = [called for called, _ in latencies[bench.warmup :]]
    returned = statistics.median(back for _, back in latencies[bench.warmup :])
    return Figures(
        value=Timing.of(timed, 1),
        floor=Timing(median=poll, min=poll, runs=len(timed)),
        notes=(
            f"from schedule's return to started_at: median {returned * 1e3:.1f} ms;"
            f" slowest from the call {max(timed) * 1e3:.1f} ms of {len(timed)}",
        ),
    )


def _latencies(
    bench: Bench,
    home: project.Project,
    worker: subprocess.Popen[bytes],
    params: Params,
    poll: float,
) -> list[tuple[float, float]]:
    """Schedule tasks one at a time, each once the one before has started; the seconds
    from each call to `schedule`, and from its return, to its run's `started_at`."""
    from taskcron import TaskCron

    choose = random.Random(0)
    spread = params["spread_ms"] / 1000
    latencies = []
    with TaskCron(config=home.config) as app:
        for i in range(bench.warmup + bench.runs):
            time.sleep(choose.uniform(0, spread))  # a random point of work's poll cycle
            stamp = home.directory / f"started-{i}"
            called = time.time()
            task = app.schedule("bench", call="bench_jobs:stamp", data={"path": str(stamp)})
            returned = time.time()
            started(stamp, worker, deadline=10 * poll + 10)
            at = app.get(task.id).runs[0].started_at.timestamp()
            latencies.append((at - called, at - returned))
    return latencies
