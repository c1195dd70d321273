"""Output floods and stubborn process groups, through real ticks of the installed script.

- A command printing 10 MB on stdout and stderr interleaved (100 MB with
  TASKCRON_STRESS=1), three times: the tick never hangs, its peak memory does
  not grow with the output, and the run keeps only the configured tail, marked
  `truncated`.
- A command stopped by its `--timeout` hears SIGTERM (and may clean up).
- A command whose grandchildren ignore SIGTERM, run with `--timeout`: the whole
  process group is gone within `kill_grace` plus a second, no orphan left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import SERIAL, clean_env, script, taskcron_in

pytestmark = SERIAL

MB = 1024 * 1024
FLOOD_MB = 100 if os.environ.get("TASKCRON_STRESS") == "1" else 10
#: How much more a tick may hold at its peak for a flood than for a few lines.
MEMORY_SLACK_MB = 16

#: Writes `total` bytes, alternating 64 KiB chunks between stdout and stderr.
FLOOD = """
import os, sys
total, chunk = int(sys.argv[1]), b"o" * 65535 + b"\\n"
for n in range(total // len(chunk)):
    os.write(1 if n % 2 == 0 else 2, chunk)
"""

#: Reports the largest resident set among the processes it waited for (the tick,
#: and through it the task), in KiB, after running the command it is given.
PEAK = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def tick_peak(home: Path) -> tuple[int, int]:
    """Run one `taskcron tick` of `home`; its exit code and peak memory (KiB)."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK, script(), "tick"],
        env=clean_env(TASKCRON_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    code, peak = done.stdout.split()
    return int(code), int(peak)


def schedule(home: Path, *command: str) -> int:
    done = taskcron_in(home.parent, "--home", str(home), "schedule", "flood", "--", *command)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def show(home: Path, task_id: int) -> dict[str, object]:
    done = taskcron_in(home.parent, "--home", str(home), "show", str(task_id), "--json")
    shown: dict[str, object] = json.loads(done.stdout)
    return shown


def test_a_flood_of_output_never_hangs_a_tick_nor_grows_its_memory(tmp_path: Path) -> None:
    home = tmp_path / "home"
    schedule(home, sys.executable, "-c", FLOOD, str(64 * 1024))
    code, baseline = tick_peak(home)
    assert code == 0
    peaks = []
    for _ in range(3):
        task_id = schedule(home, sys.executable, "-c", FLOOD, str(FLOOD_MB * MB))
        code, peak = tick_peak(home)
        assert code == 0
        peaks.append(peak)
        run = show(home, task_id)["runs"][-1]  # type: ignore[index]
        assert run["outcome"] == "done"
        assert run["truncated"] is True
        tail = run["output_tail"]
        assert 0 < len(tail.encode()) <= 65536 and set(tail) <= {"o", "\n"}
    print(
        f"\noutput flood: 3 x {FLOOD_MB} MB, tick peak {max(peaks) // 1024} MB"
        f" against {baseline // 1024} MB for a few lines"
    )
    assert max(peaks) <= baseline + MEMORY_SLACK_MB * 1024


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_a_timeout_takes_the_whole_group_even_grandchildren_that_ignore_sigterm(
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    (tmp_path / "taskcron.toml").write_text('home = "home"\nkill_grace = "1s"\n')
    stubborn = "trap '' TERM; while :; do sleep 0.05; done"
    family = (
        f"trap '' TERM; sh -c \"{stubborn}\" & echo $! >> {pids};"
        f' sh -c "{stubborn}" & echo $! >> {pids}; echo $$ >> {pids}; wait'
    )
    done = taskcron_in(tmp_path, "schedule", "slow", "--timeout", "0.5s", "--", "sh", "-c", family)
    assert done.returncode == 0, done.stderr
    started = time.monotonic()
    tick = taskcron_in(tmp_path, "tick")
    assert tick.returncode == 1
    assert "timed out after 0.5s" in tick.stderr
    family_pids = [int(line) for line in pids.read_text().split()]
    assert len(family_pids) == 3
    deadline = started + 0.5 + 1 + 1  # the timeout, kill_grace, and a second
    while any(alive(pid) for pid in family_pids):
        assert time.monotonic() < deadline, [pid for pid in family_pids if alive(pid)]
        time.sleep(0.02)
    print(f"\ntimeout: a group of {len(family_pids)} ignoring SIGTERM gone, no orphan left")


def test_a_command_hears_sigterm_when_it_is_stopped_and_may_clean_up(tmp_path: Path) -> None:
    """The stop signals are blocked while a child starts; an exec'd command must not keep
    that mask, or SIGTERM never reaches it and every stop waits for SIGKILL."""
    (tmp_path / "taskcron.toml").write_text('home = "home"\nkill_grace = "30s"\n')
    cleanup = "trap 'echo cleaned up; exit 3' TERM; echo started; while :; do sleep 0.05; done"
    for command in (("sleep", "30"), ("sh", "-c", cleanup)):
        done = taskcron_in(tmp_path, "schedule", "stopped", "--timeout", "1s", "--", *command)
        assert done.returncode == 0, done.stderr
        assert taskcron_in(tmp_path, "tick").returncode == 1
    shown = [
        json.loads(taskcron_in(tmp_path, "show", str(task_id), "--json").stdout)["runs"][-1]
        for task_id in (1, 2)
    ]
    assert [(run["outcome"], run["exit_code"]) for run in shown] == [
        ("timeout", -15),  # killed by SIGTERM, not SIGKILL (-9) after the 30-second grace
        ("timeout", 3),  # its trap ran
    ]
    assert shown[1]["output_tail"].endswith("cleaned up\n")
