"""A holder that cannot renew its lease kills its task before the lease ends.

The store is made to stop answering the way a network partition does, without a
network: the test holds the SQLite store's write lock, so the tick's renewal
waits inside the store call (for the busy timeout, longer than the lease). The
tick's loop is held up there; its lease guard must kill the task anyway, while
the lease it last renewed still holds: a task that ignores SIGTERM, killed
before the moment another tick could recover its run.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from taskcron import TaskCron
from taskcron.config import load
from taskcron.model import Outcome, State
from tests.conftest import clean_env, script, wait_for

LEASE = 10.0  #: Seconds; its margin (a second) is what the guard keeps.


def _dead(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie its parent has not reaped yet counts)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_a_tick_held_up_by_its_store_kills_its_task_while_the_lease_holds(tmp_path: Path) -> None:
    config = tmp_path / "taskcron.toml"
    config.write_text(f'store = "sqlite:///tasks.db"\nlease = "{LEASE:g}s"\nkill_grace = "30s"\n')
    app = TaskCron(config=load(config))
    pidfile = tmp_path / "pid"
    # It ignores SIGTERM: only the SIGKILL at the lease's margin stops it.
    loop = f"trap '' TERM; echo $$ > {pidfile}; while :; do sleep 0.05; done"
    task = app.schedule("m", command=["sh", "-c", loop])
    tick = subprocess.Popen(
        [script(), "--config", str(config), "tick"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip()))
        wait_for(lambda: app.get(task.id).runs[-1].child_pid is not None)
        # The lease as last renewed before the lock ends at `locked + LEASE` at the latest.
        locker = sqlite3.connect(tmp_path / "tasks.db", isolation_level=None, timeout=30)
        locker.execute("BEGIN EXCLUSIVE")
        locked = time.monotonic()
        try:
            wait_for(lambda: _dead(pid), timeout=LEASE * 3)
            died = time.monotonic()
            assert not tick.poll(), "the tick must go on while the store does not answer"
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        out, err = tick.communicate(timeout=60)
    finally:
        if tick.poll() is None:
            tick.kill()
            tick.wait()
        if pidfile.exists() and not _dead(int(pidfile.read_text().strip() or 0)):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
    assert died < locked + LEASE, f"killed {died - locked:.2f}s after the lock"
    run = app.get(task.id).runs[-1]
    assert run.outcome is Outcome.INTERRUPTED
    assert run.error is not None and "before its lease ran out" in run.error
    assert app.get(task.id).state is State.FAILED
    assert tick.returncode == 1, (out, err)
