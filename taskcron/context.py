"""The `ctx` a callable handler receives, and `Continue`, which ends a step.

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


class Continue(Exception):
    """Raised by a handler to end this step and go on later, from the state in `ctx.state`.

    The task goes to the back of the line (due now, or after `delay`: seconds,
    a `timedelta` or a duration such as "1h") and the next tick that reaches it
    calls the handler again with the saved state.
    """

    def __init__(self, delay: float | timedelta | str | None = None) -> None:
        super().__init__("continue later" if delay is None else f"continue after {delay}")
        self.delay = delay

    def seconds(self) -> float:
        """The delay in seconds (0 when none); `DurationError` for one that cannot be read."""
        if self.delay is None:
            return 0.0
        if isinstance(self.delay, timedelta):
            return max(self.delay.total_seconds(), 0.0)
        from taskcron.inputs import parse_duration

        return parse_duration(self.delay).total_seconds()


class Context:
    """What a callable handler receives as `ctx`: who it is, how long it has, where it got to.

    `deadline` is when the tick's budget ends (None: no budget); it is advice,
    not a limit: the task's own `timeout` is what kills. `state` is a JSON
    object saved with the task when a step ends with `Continue` (`{}` on the
    first step); `step` counts the steps, 1 for the first.
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
        state: dict[str, Any] | None = None,
        step: int = 1,
    ) -> None:
        self.task_id = task_id
        self.owner = owner
        self.state: dict[str, Any] = {} if state is None else state
        self.step = step
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
        """Report progress: `done` units of `total`, and what is going on.

        The last report is kept with the task (in `list`, `show`, `status` and
        its JSON) while it runs and after; reports are also `task.progress`
        records in the log, about one a second at most. Cheap to call often.
        """
        self._report({"event": "progress", "done": done, "total": total, "message": message})

    def __repr__(self) -> str:
        return (
            f"<Context task {self.task_id} {self.module} step {self.step} attempt {self.attempt}>"
        )
