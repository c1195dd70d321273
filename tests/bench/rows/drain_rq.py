"""`taskcron tick --drain` against RQ's forking worker, job for job (full run only).

RQ's `Worker` forks a work horse per job, as our drain forks a child per
task. Both run the same no-op, `bench_jobs.noop`, queued beforehand (the
timing leaves enqueueing out), as whole runs that stop after N: `tick --drain
--max-tasks N` and `rq worker --burst --max-jobs N`, against a Redis of its
own on a private port (`redis-server`, not persisted). Reported as time per
task, so the goal of 1x means at least RQ's rate. Skipped without the
`redis-server` binary or the `bench` extra (rq, redis).
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.bench import project
from tests.bench.harness import Bench, Figures, Params, Skipped, row
from tests.bench.rows.drain import drain_tick


@row(
    name="drain-rq",
    title="tick --drain vs RQ, {tasks:,} no-op jobs, time per job (1x = RQ's rate)",
    floor="rq worker --burst (forking Worker, local Redis)",
    goal=1.0,
    unit="us",
    quick=None,
    full={"runs": 3, "tasks": 2_000},
    in_target=True,
)
def drain_rq(bench: Bench, params: Params) -> Figures:
    """`tick --drain --max-tasks N` against `rq worker --burst --max-jobs N`, per task."""
    tasks = params["tasks"]
    rq_script = Path(bench.python).parent / "rq"
    if shutil.which("redis-server") is None:
        raise Skipped("no redis-server on PATH (Debian: apt-get install redis-server)")
    try:
        from redis import Redis
        from rq import Queue
    except ImportError:
        raise Skipped("rq is not installed here: pip install '.[bench]'") from None
    # A long run warms itself, and the median of three sets a slow first one aside.
    bench = dataclasses.replace(bench, warmup=0)
    jobs = project.make(bench.directory("rq"))
    with redis_server(bench.directory("redis")) as url:
        queue = Queue("bench", connection=Redis.from_url(url))
        count = tasks * (bench.warmup + bench.runs)
        queue.enqueue_many([Queue.prepare_data("bench_jobs.noop") for _ in range(count)])
        argv = ("worker", "--burst", "--max-jobs", str(tasks), "--url", url, "bench")
        worker = bench.command(str(rq_script), *argv, "--path", str(jobs.directory), home=jobs.home)
        return bench.time(drain_tick(bench, tasks), worker, per=tasks)


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A Redis on a free loopback port, persisting nothing; its URL while in use."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(directory)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > end:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)
