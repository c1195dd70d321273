"""What `log` shows of a home: a filter read from what people typed, the last records
that pass it, and the records written after them as they come.

A home with a shared log (a PostgreSQL store) reads every host's records there; any
other reads this host's log store, across its rotated files.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from taskcron import inputs, logstore
from taskcron.logstore import LogFilter
from taskcron.model import Scope
from taskcron.outage import Say
from taskcron.store import SharedLog

if TYPE_CHECKING:
    from taskcron.home import Home

Records = list[dict[str, Any]]


class LogWhere(TypedDict, total=False):
    """Which records `log` shows; each is optional."""

    task: int | None  #: Only the records of this task.
    modules: Iterable[str]  #: Only these module ids and those under them.
    excepts: Iterable[str]  #: ... leaving out these and those under them.
    level: str | None  #: The lowest level: debug, info, warning or error.
    since: datetime | timedelta | str | None  #: Only records since then (`1h`, a time).


class LogFeed:
    """New records of the log store that a filter lets through (see `TaskCron.log_feed`)."""

    def __init__(self, follower: logstore.Follower, keep: LogFilter) -> None:
        self._follower = follower
        self._keep = keep

    def poll(self) -> Records:
        """The records written since the last poll, oldest first; never waits."""
        return [record for record in self._follower.poll() if self._keep(record)]

    def close(self) -> None:
        """Stop following."""
        self._follower.close()


def log_filter(
    home: Home,
    *,
    task: int | None = None,
    modules: Iterable[str] = (),
    excepts: Iterable[str] = (),
    level: str | None = None,
    since: datetime | timedelta | str | None = None,
) -> LogFilter:
    """The filter `log` applies, validated: module ids, level name, `since` time."""
    scope = Scope.parse(modules, excepts)
    if task is not None:
        inputs.int64("task id", task)
    since_at = inputs.parse_since(since, home.clock())
    return LogFilter(task=task, scope=scope, level=inputs.parse_level(level), since=since_at)


def tail(home: Home, count: int, wanted: LogFilter) -> Records:
    """The last `count` records that `wanted` lets through, oldest first."""
    home.require()
    shared = _readable_shared_log(home)
    if shared is not None:
        return shared.tail(count, keep=wanted)
    return home.logstore.tail(count, keep=wanted, stop=wanted.before_since)


def follow(
    home: Home, count: int, wanted: LogFilter, poll: float, say: Say | None = None
) -> Iterator[Records]:
    """`tail`, then each batch of new records as they are written (see `TaskCron.follow_log`)."""
    home.require()
    shared = _readable_shared_log(home)
    if shared is not None:
        yield from (batch for batch in shared.follow(count, keep=wanted, say=say) if batch)
        return
    follower = logstore.Follower(home.logstore)
    try:
        yield home.logstore.tail(
            count, keep=wanted, stop=wanted.before_since, end=follower.position
        )
        while True:
            batch = [r for r in follower.poll() if wanted(r)]
            if batch:
                yield batch
            time.sleep(poll)
    finally:
        follower.close()


def feed(home: Home, keep: LogFilter) -> LogFeed:
    """The records of this host's log store written from now on that `keep` lets through."""
    home.require()
    return LogFeed(logstore.Follower(home.logstore), keep)


def _readable_shared_log(home: Home) -> SharedLog | None:
    """The shared log, once its store is known to exist (and opened, so migrated)."""
    if home.shared_log is not None:
        home.existing_store()
    return home.shared_log
