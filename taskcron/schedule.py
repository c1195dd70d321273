"""When a task is due next: after a run, after a failure, from an explicit `now`.

Pure functions of their arguments; the caller passes the clock's time and, for
jitter, a random source.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from taskcron.model import Outcome, State, Task

JITTER = 0.2


def backoff(
    attempts: int, *, first: timedelta, cap: timedelta, rng: random.Random | None = None
) -> timedelta:
    """The wait after the `attempts`-th failed attempt: `first` doubling per attempt, ±20%, capped.

    `attempts` counts from 1 (the wait after the first failure is about `first`).
    """
    # Past 2**64 the cap has long been reached; stop doubling before floats overflow.
    base = first.total_seconds() * 2.0 ** min(max(attempts - 1, 0), 64)
    factor = 1 + JITTER * (2 * (rng or random).random() - 1)
    return timedelta(seconds=min(base * factor, cap.total_seconds()))


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Where a task goes after a run: done, retried after a backoff, or failed."""

    first: timedelta = timedelta(seconds=10)
    cap: timedelta = timedelta(hours=1)
    rng: random.Random = field(default_factory=random.Random)

    def after_run(self, task: Task, outcome: Outcome, now: datetime) -> tuple[State, datetime]:
        """The task's new state and due time once a run ended with `outcome` at `now`.

        A success makes a one-off task `done`. A failure, timeout or
        interruption queues it again after the backoff while attempts are left,
        and makes it `failed` once they are spent. A step that asked to go on
        later goes to the back of the line at once.
        """
        if outcome is Outcome.DONE:
            return State.DONE, task.due_at
        if outcome is Outcome.CONTINUED:
            return State.QUEUED, now
        if task.attempts < task.max_attempts:
            wait = backoff(task.attempts, first=self.first, cap=self.cap, rng=self.rng)
            return State.QUEUED, now + wait
        return State.FAILED, task.due_at
