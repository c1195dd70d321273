"""Riding out a store that goes away: retries with backoff, and one word when it is
lost and one when it is back.

A process that lives long (`work`, a draining tick, `web`, `log -f`) meets a
database that restarts, fails over or drops its connection. It does not end:
it retries the call that failed at once, then after 0.1 s, doubling up to 2 s,
and says once that the store is lost and once that it is back. A command that
does one thing (`schedule`, `show`, a tick's claim) ends with its one line instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from taskcron import errors

#: The second retry waits this long; each one after, twice the one before.
FIRST_DELAY = 0.1
#: No retry waits longer.
MAX_DELAY = 2.0

#: How a process says the store is lost (True) or back (False), and a message: the
#: log's `store.lost` and `store.back` (`taskcron.lifecycle.Recorder.say`), stderr.
Say = Callable[[bool, str], None]


def delay(failures: int) -> float:
    """Seconds to wait before the next try after `failures` failures in a row: the first
    retry at once, then 0.1 s, doubling, capped at 2 s."""
    if failures <= 1:
        return 0.0
    return float(min(FIRST_DELAY * 2 ** (failures - 2), MAX_DELAY))


class Outage:
    """Whether the store is reachable, as one process sees it, and when to try it again.

    `lost` after a call fails with `StoreUnreachable`, `back` after a call
    succeeds: each says so once per outage, through `say`.
    """

    def __init__(self, say: Say, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._say = say
        self._clock = clock
        self.failures = 0  #: Failures in a row; 0 while the store is reachable.
        self.retry_at = 0.0  #: No call before this moment (the clock's seconds).
        self._lost_at = 0.0

    @property
    def down(self) -> bool:
        """True from a failure until the next success."""
        return self.failures > 0

    def due(self) -> bool:
        """Whether a call may be tried now (always, while the store is reachable)."""
        return self._clock() >= self.retry_at

    def wait(self) -> float:
        """Seconds until a call may be tried again (0: now)."""
        return max(self.retry_at - self._clock(), 0.0)

    def lost(self, exc: errors.StoreError) -> float:
        """A call failed for want of the store: says so at the first failure; the
        seconds to wait before the next try."""
        self.failures += 1
        if self.failures == 1:
            self._lost_at = self._clock()
            self._say(True, f"the store is unreachable; retrying: {exc}")
        pause = delay(self.failures)
        self.retry_at = self._clock() + pause
        return pause

    def back(self) -> None:
        """A call succeeded: says so if the store had been lost."""
        if self.failures:
            self.failures = 0
            self.retry_at = 0.0
            away = self._clock() - self._lost_at
            self._say(False, f"the store is reachable again, after {away:.1f}s")
