"""`taskcron log`: `-n 20` reads from the end, so a large log costs what a small one does;
`-f` shows a new record within a second of its writing."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.bench.harness import Bench, Figures, Params, Timing, clean_env, row

#: What `log -f`'s latency is held to: a person watching sees a record within it.
FOLLOW_GOAL = 1.0


@row(
    name="log",
    title="log -n 20 on a {size_mb:,} MB log vs a 1 MB log",
    floor="taskcron log -n 20 --json on a 1 MB log",
    goal=1.2,
    unit="ms",
    quick={"runs": 5, "size_mb": 32},
    full={"runs": 15, "size_mb": 1024},
)
def log(bench: Bench, params: Params) -> Figures:
    """`log -n 20 --json` on a log of `size_mb` MB against the same on a 1 MB log."""
    small, large = bench.directory("small"), bench.directory("large")
    write_log(small, 1 << 20)
    write_log(large, params["size_mb"] << 20)
    tail = (bench.script, "log", "-n", "20", "--json")
    return bench.time(bench.command(*tail, home=large), bench.command(*tail, home=small))


def record(message: str) -> bytes:
    """One task output record as the log store writes it, a line of JSON."""
    fields = {
        "ts": "2026-01-01T00:00:00.000+00:00",
        "level": "info",
        "event": "task.output",
        "host": "bench",
        "task": 1,
        "module": "bench",
        "message": message,
        "stream": "stdout",
    }
    return json.dumps(fields).encode() + b"\n"


def write_log(home: Path, size: int) -> None:
    """A real log of at least `size` bytes of task output records in `home`."""
    directory = home / "log"
    directory.mkdir(parents=True)
    line = record("x" * 150)
    block = line * ((1 << 20) // len(line) + 1)
    with (directory / "taskcron.jsonl").open("wb") as handle:
        written = 0
        while written < size:
            handle.write(block)
            written += len(block)


@row(
    name="log-follow",
    title="log -f: from a record's writing to its printing, median of {runs} records",
    floor="1 s",
    goal=1.0,
    unit="ms",
    quick={"runs": 5},
    full={"runs": 15},
)
def log_follow(bench: Bench, params: Params) -> Figures:
    """Median time from appending a record (as the log store does: one write, O_APPEND)
    to `log -f --json` printing it, the records written at random points of its poll."""
    home = bench.directory("home")
    write_log(home, 1 << 20)
    active = home / "log" / "taskcron.jsonl"
    follower = subprocess.Popen(
        [bench.script, "log", "-f", "-n", "0", "--json"],
        cwd=home,
        env=clean_env(TASKCRON_HOME=str(home)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    lines: queue.Queue[bytes] = queue.Queue()
    assert follower.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout or ()])
    reader.start()
    choose = random.Random(0)
    latencies = []
    try:
        started(active, lines, deadline=time.monotonic() + 30)
        for i in range(bench.warmup + bench.runs):
            time.sleep(choose.uniform(0, 0.25))
            marker = f"record {i}"
            written = append(active, marker)
            while json.loads(lines.get(timeout=30))["message"] != marker:
                pass
            latencies.append(time.perf_counter() - written)
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=30)
        reader.join(timeout=30)
    timed = latencies[bench.warmup :]
    return Figures(
        value=Timing.of(timed, 1),
        floor=Timing(median=FOLLOW_GOAL, min=FOLLOW_GOAL, runs=len(timed)),
    )


def append(path: Path, message: str) -> float:
    """Append a record of `message` in one write; when (`time.perf_counter`) it was written."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        written = time.perf_counter()
        os.write(fd, record(message))
    finally:
        os.close(fd)
    return written


def started(path: Path, lines: queue.Queue[bytes], *, deadline: float) -> None:
    """Wait until `log -f` prints what is appended: until then a record may fall before
    the place it follows from."""
    while time.monotonic() < deadline:
        append(path, "ready?")
        try:
            lines.get(timeout=0.5)
            return
        except queue.Empty:
            continue
    raise RuntimeError("log -f printed nothing appended within 30 s")
