"""The process behind a run, named by pid and start time, and the killing of an orphan's group.

A pid alone may be reused; with its start time (or the run id in its
environment) it names one process, so a later tick kills only what its run left.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from taskcron.runner.child import ENV_RUN_ID


def process_start(pid: int) -> str | None:
    """When process `pid` started (field 22 of /proc/PID/stat), or None when unknown.

    Together with the pid it names one process: a pid reused later starts later.
    """
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        stat = os.read(fd, 4096).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name (field 2) is in parentheses and may hold spaces.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def kill_orphan(pid: int, run_id: int, start: str | None = None) -> bool:
    """Kill the process group of a run whose tick died, if it is still that run's.

    The group leader must be the process the run started: the same start time
    (`start`, when recorded) or an environment naming the run
    (`TASKCRON_RUN_ID`), so that a reused pid is never killed. Returns True
    when a group was killed.
    """
    if start is not None:
        if process_start(pid) != start:
            return False
    else:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            return False
        if f"{ENV_RUN_ID}={run_id}".encode() not in environ.split(b"\0"):
            return False
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True
