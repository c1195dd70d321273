"""`taskcron work` picks a task up within one `poll` of its scheduling.

The latency is from just before `schedule` to the task's first line (its
`time.time()`), the median over tasks scheduled at random points of the
poll cycle; there is no natural floor, so the ratio is latency / poll. The
full run polls every 1 s, the default and so what users get; --quick every
100 ms, to stay short. At the end `work` is stopped with SIGTERM and must exit 0. Runs
in the target's interpreter (it schedules through the API).
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

from tests.bench import project
from tests.bench.harness import Bench, Figures, Params, Timing, clean_env, row


@row(
    name="work",
    title="work: schedule-to-start latency, poll {poll_ms:,} ms",
    floor="the poll interval",
    goal=1.0,
    unit="ms",
    quick={"runs": 3, "poll_ms": 100},
    full={"runs": 15, "poll_ms": 1_000},
    in_target=True,
)
def work(bench: Bench, params: Params) -> Figures:
    """Median schedule-to-start latency of `runs` tasks against the poll interval."""
    from taskcron import TaskCron

    poll = params["poll_ms"] / 1000
    home = project.make(bench.directory("work"), poll=f'"{params["poll_ms"]}ms"')
    out = home.directory / "work.err"
    with out.open("w") as err:
        worker = subprocess.Popen(
            [bench.script, "work"],
            cwd=home.home,
            env=clean_env(TASKCRON_HOME=str(home.home)),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    choose = random.Random(0)
    latencies = []
    try:
        with TaskCron(config=home.config) as app:
            for i in range(bench.warmup + bench.runs):
                time.sleep(choose.uniform(0, poll))  # a random point of work's poll cycle
                stamp = home.directory / f"started-{i}"
                scheduled = time.time()
                app.schedule("bench", call="bench_jobs:stamp", data={"path": str(stamp)})
                latencies.append(started(stamp, worker, deadline=10 * poll + 10) - scheduled)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
    if code != 0:
        raise RuntimeError(f"taskcron work exited {code} on SIGTERM:\n{out.read_text()}")
    timed = latencies[bench.warmup :]
    return Figures(value=Timing.of(timed, 1), floor=Timing(median=poll, min=poll, runs=len(timed)))


def started(stamp: Path, worker: subprocess.Popen[bytes], *, deadline: float) -> float:
    """The time the task wrote to `stamp`, once it appears (waiting at most `deadline` s)."""
    end = time.monotonic() + deadline
    while not stamp.exists():
        if worker.poll() is not None:
            raise RuntimeError(f"taskcron work exited {worker.returncode} before the task ran")
        if time.monotonic() > end:
            raise RuntimeError(f"no task started within {deadline:.0f} s")
        time.sleep(0.001)
    return float(stamp.read_text())
