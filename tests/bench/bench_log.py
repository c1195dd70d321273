"""Benchmark: `taskcron log -n 20` on a small log and on a large one, as a ratio.

    python -m tests.bench.bench_log [--runs N] [--size-mb N]

The large log is a real file of JSON records (written once, `--size-mb`,
default 1024). `log -n 20` reads from the end, so both figures should be the
same within noise; the floor is the same command on a 1 MB log.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from tests.bench.timing import wall


def make_log(home: Path, size: int) -> None:
    directory = home / "log"
    directory.mkdir(parents=True)
    line = (
        json.dumps(
            {
                "ts": "2026-01-01T00:00:00.000+00:00",
                "level": "info",
                "event": "task.output",
                "task": 1,
                "module": "bench",
                "message": "x" * 150,
                "stream": "stdout",
            }
        ).encode()
        + b"\n"
    )
    block = line * ((1 << 20) // len(line) + 1)
    with (directory / "taskcron.jsonl").open("wb") as handle:
        written = 0
        while written < size:
            handle.write(block)
            written += len(block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args()
    script = str(Path(sys.executable).parent / "taskcron")
    base = {k: v for k, v in os.environ.items() if not k.startswith("TASKCRON_")}
    results = {}
    for label, size in (("1 MB", 1 << 20), (f"{args.size_mb} MB", args.size_mb << 20)):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            make_log(home, size)
            env = {**base, "TASKCRON_HOME": str(home)}
            results[label] = wall([script, "log", "-n", "20", "--json"], args.runs, env)
    (small_label, small), (large_label, large) = results.items()
    print(f"log -n 20, {small_label:>8} log  {small:8.1f} ms  (floor)")
    print(f"log -n 20, {large_label:>8} log  {large:8.1f} ms  ({large / small:.2f}x floor)")


if __name__ == "__main__":
    main()
