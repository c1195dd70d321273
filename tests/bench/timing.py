"""What the benchmarks share: timing whole commands."""

from __future__ import annotations

import statistics
import subprocess
import time


def wall(argv: list[str], runs: int, env: dict[str, str]) -> float:
    """Median wall time of `argv` over `runs` runs, in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
