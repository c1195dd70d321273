"""`taskcron log -n 20` reads from the end: a large log costs what a small one does."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench.harness import Bench, Figures, Params, row


@row(
    name="log",
    title="log -n 20 on a {size_mb:,} MB log vs a 1 MB log",
    floor="taskcron log -n 20 --json on a 1 MB log",
    goal=1.25,
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


def write_log(home: Path, size: int) -> None:
    """A real log of at least `size` bytes of task output records in `home`."""
    directory = home / "log"
    directory.mkdir(parents=True)
    record = {
        "ts": "2026-01-01T00:00:00.000+00:00",
        "level": "info",
        "event": "task.output",
        "task": 1,
        "module": "bench",
        "message": "x" * 150,
        "stream": "stdout",
    }
    line = json.dumps(record).encode() + b"\n"
    block = line * ((1 << 20) // len(line) + 1)
    with (directory / "taskcron.jsonl").open("wb") as handle:
        written = 0
        while written < size:
            handle.write(block)
            written += len(block)
