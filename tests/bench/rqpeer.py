"""RQ's forking worker, the peer of `tick --drain` (rows/drain.py).

RQ's `Worker` forks a work horse per job, as our drain forks a child per
task. It runs the same no-op, `bench_jobs.noop`, queued beforehand (the
timing leaves enqueueing out), as a whole run that stops after N jobs, `rq
worker --burst --max-jobs N`, against a Redis of its own on a private port
(`redis-server`, not persisted). Not to be had without the `redis-server`
binary or the `bench` extra (rq, redis): `Skipped` says which.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.bench import project
from tests.bench.harness import Bench, Command, Skipped


@contextmanager
def worker(bench: Bench, tasks: int, count: int) -> Iterator[Command]:
    """`rq worker --burst --max-jobs N` over a Redis of its own holding `count` jobs of
    `bench_jobs.noop`, while in use; `Skipped` without redis-server or rq."""
    rq_script = Path(bench.python).parent / "rq"
    if shutil.which("redis-server") is None:
        raise Skipped("no redis-server on PATH (Debian: apt-get install redis-server)")
    try:
        from redis import Redis
        from rq import Queue
    except ImportError:
        raise Skipped("rq is not installed here: pip install '.[bench]'") from None
    jobs = project.make(bench.directory("rq"))
    with redis_server(bench.directory("redis")) as url:
        queue = Queue("bench", connection=Redis.from_url(url))
        queue.enqueue_many([Queue.prepare_data("bench_jobs.noop") for _ in range(count)])
        argv = ("worker", "--burst", "--max-jobs", str(tasks), "--url", url, "bench")
        yield bench.command(str(rq_script), *argv, "--path", str(jobs.directory), home=jobs.home)


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
