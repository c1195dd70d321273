"""The `ctx` a callable handler receives.

Kept in a module of its own, light to import: handlers import it for type
hints, and the tick imports the runner only when it has a task to run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any


def _wall_clock() -> datetime:
    return datetime.now(timezone.utc)


class Context:
    """What a callable handler receives as `ctx`: who it is and how long it has.

    `deadline` is when the tick's budget ends (None: no budget); it is advice,
    not a limit: the task's own `timeout` is what kills.
    """

    def __init__(
        self,
        *,
        task_id: int,
        module: str,
        data: Any,
        attempt: int,
        deadline: datetime | None,
        log: logging.Logger,
        clock: Callable[[], datetime] = _wall_clock,
        report: Callable[[dict[str, Any]], None] = lambda event: None,
        owner: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.owner = owner
        self.module = module
        self.data = data
        self.attempt = attempt
        self.deadline = deadline
        self.log = log
        self._clock = clock
        self._report = report

    def time_left(self) -> timedelta | None:
        """Time until the deadline (never negative), or None when there is none."""
        if self.deadline is None:
            return None
        return max(self.deadline - self._clock(), timedelta(0))

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Report progress: `done` units of `total` (or a percentage when `total` is None).

        Each report is a `task.progress` record in the log.
        """
        self._report({"event": "progress", "done": done, "total": total, "message": message})

    def __repr__(self) -> str:
        return f"<Context task {self.task_id} {self.module} attempt {self.attempt}>"
