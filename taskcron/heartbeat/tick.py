"""Which pings a tick sends, and when (`taskcron.heartbeat` sends each one).

A plain tick that runs a task pings `start` as the run begins, then `success`
or `fail` (with the run's exit code) once it has ended; one that finds nothing
due, or its scope busy, pings `success` alone. A draining tick (a pool) pings
`start` as its first run begins and once more at its end: `fail` when any of
its runs failed. A tick that stops on an error pings `fail`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from taskcron import heartbeat

if TYPE_CHECKING:
    from taskcron.home import Home
    from taskcron.lifecycle import TickResult, Watcher
    from taskcron.model import Task
    from taskcron.ticking import Ticks


class Heartbeat:
    """The pings of one tick command, to `url` (checked; None: the config's URL). Without
    a URL it sends nothing and changes nothing."""

    def __init__(self, home: Home, url: str | None = None) -> None:
        self.home = home
        self.url = home.config.heartbeat.url if url is None else heartbeat.check_url(url)
        self.started = False  #: Whether `start` was pinged.
        self._after: int | None = None  # ends once the `start` ping is done

    def send(self, ping: str, exit_code: int | None = None) -> None:
        """Ping `ping` from a detached process (see `taskcron.heartbeat.send`), after the
        tick's `start` ping if it sent one."""
        if self.url is None:
            return
        config = self.home.config
        after, self._after = self._after, None
        self._after = heartbeat.send(
            self.url,
            ping,
            home=self.home.path,
            exit_code=exit_code,
            style=config.heartbeat.style,
            timeout=config.heartbeat.timeout.total_seconds(),
            host=self.home.recorder.host,
            log={
                "level": config.log.level,
                "max_bytes": config.log.max_bytes,
                "backups": config.log.backups,
            },
            after=after,
        )

    def watch(self, watcher: Watcher | None) -> Watcher | None:
        """`watcher`, with a ping of `start` as the first run begins."""
        return watcher if self.url is None else _Starting(self, watcher)

    def around(self, ticks: Ticks) -> Ticks:
        """`ticks`, with one ping once the last result has come."""
        return ticks if self.url is None else _Ending(self, ticks)

    def fail(self) -> None:
        """Ping `fail`: the tick stopped on an error."""
        self.send(heartbeat.FAIL)

    def end(self, failed: TickResult | None, *, alone: bool = True) -> None:
        """Ping how the tick went: `success`, or `fail` when a run failed (`failed`, the
        first that did), with its exit code when it was the tick's only run (`alone`)."""
        if failed is None:
            self.send(heartbeat.SUCCESS)
            return
        run = failed.task.last_run if alone and failed.task is not None else None
        self.send(heartbeat.FAIL, None if run is None else run.exit_code)


class _Starting:
    """A `Watcher` that pings `start` when the first run begins, then tells `inner`."""

    def __init__(self, beat: Heartbeat, inner: Watcher | None) -> None:
        self.beat = beat
        self.inner = inner

    def started(self, task: Task) -> None:
        if not self.beat.started:
            self.beat.started = True
            self.beat.send(heartbeat.START)
        if self.inner is not None:
            self.inner.started(task)

    def output(self, task: Task, stream: str, lines: Sequence[str]) -> None:
        if self.inner is not None:
            self.inner.output(task, stream, lines)


class _Ending:
    """`Ticks` that ping how the tick went once the last result has come, or `fail`
    when an error stops them."""

    def __init__(self, beat: Heartbeat, ticks: Ticks) -> None:
        self.beat = beat
        self.ticks = ticks

    @property
    def signal(self) -> int | None:
        return self.ticks.signal

    def __iter__(self) -> Iterator[TickResult]:
        count, failed = 0, None
        try:
            for result in self.ticks:
                count += 1
                if failed is None and result.failed:
                    failed = result
                yield result
        except Exception:
            self.beat.fail()
            raise
        self.beat.end(failed, alone=count == 1)
