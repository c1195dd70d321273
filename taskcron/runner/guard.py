"""The lease's backstop: a thread that kills a task in time when the loop cannot.

The supervisor's loop stops a task whose lease could not be renewed (see
`Execution`), but the loop itself may be held up inside a call to a store that
does not answer (a link cut mid-call, a server frozen): then nothing would stop
the task before another host recovers its run. This thread does nothing else
than wait for the moment each watched task must be dead by (`Execution.kill_by`)
and send SIGKILL then, if the task is still running; the loop, once it runs
again, records the run as its lease ran out. It touches no store and no pipe.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskcron.runner.execution import Execution

#: The longest the thread sleeps between looks (seconds): a lease's end moves only
#: later, and a new task wakes it.
_NAP = 1.0


class LeaseGuard:
    """Watches running executions from a daemon thread, started with the first one."""

    def __init__(self) -> None:
        self._runs: list[Execution] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, run: Execution) -> None:
        """Guard `run` until `forget`."""
        with self._lock:
            self._runs.append(run)
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="taskcron-lease", daemon=True)
            self._thread.start()
        self._wake.set()

    def forget(self, run: Execution) -> None:
        """Stop guarding `run` (it has ended)."""
        with self._lock:
            if run in self._runs:
                self._runs.remove(run)

    def close(self) -> None:
        """Stop the thread (it is a daemon: it never holds the process up)."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=_NAP)

    def _serve(self) -> None:
        while not self._closed:
            with self._lock:
                runs = list(self._runs)
            nap = _NAP
            now = time.monotonic()
            for run in runs:
                left = run.kill_by - now
                if left <= 0:
                    run.kill_for_lease()
                else:
                    nap = min(nap, left)
            self._wake.wait(nap)
            self._wake.clear()
