"""One execution: a child of any kind, with its pipes, limits and end.

It reads the child's output (keeping a tail, passing whole lines on), writes
what its stdin is owed, renews the lease, stops the child on a timeout, a lost
lease or the tick's signal (SIGTERM, then SIGKILL after the kill grace), reaps
it and says how the run ended. What differs by kind is behind `Child`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from taskcron.model import Outcome, Renewal, RunEnd, Task
from taskcron.outage import delay
from taskcron.runner.child import (
    Child,
    Clock,
    NotStarted,
    RunHooks,
    RunSettings,
    signal_name,
)
from taskcron.runner.process import process_start
from taskcron.values import field, value

_CHUNK = 65536
_LINE_MAX = 65536  #: A line longer than this is passed on in pieces.
_EXIT_DRAIN = 1.0  #: How long to keep reading pipes held open by a finished task's children.


@value(kw_only=False, frozen=False)
class _Tail:
    """The last `limit` bytes of merged output, and whether anything was cut."""

    limit: int
    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]
            self.truncated = True

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class Execution:
    """One task's child process: its pipes, its limits, and how it ended."""

    def __init__(
        self,
        task: Task,
        settings: RunSettings,
        hooks: RunHooks,
        clock: Clock,
        child: Child,
        *,
        unwatch: Callable[[int], None] = lambda fd: None,
    ) -> None:
        self.task = task
        self.settings = settings
        self.hooks = hooks
        self.clock = clock
        self.child = child
        self._unwatch = unwatch
        self.tail = _Tail(settings.output_tail)
        self.pid = 0
        self.returncode: int | None = None
        self.streams: dict[int, str] = {}
        self.partial: dict[str, bytearray] = {}
        self.started = time.monotonic()
        self.exited_at: float | None = None
        self.stop_at: float | None = None
        self.kill_at: float | None = None
        self.timed_out = False
        self.lease_lost = False  #: Another tick took the run over.
        #: The lease could not be renewed and was running out: the task was stopped.
        self.lease_expiring = False
        self._killed = False
        self._unrenewed = 0  #: Renewals in a row that could not reach the store.
        self.stopped_by: int | None = None  #: The signal that had the tick stop this child.
        self._stop_why: int | None = None
        self.failure: str | None = None  #: Why the child could not start, if it could not.
        self._next_renewal = self.started + self._renew_every
        self._stdin: int | None = None  #: The child's standard input, while data is left for it.
        self._pending = memoryview(b"")

    @property
    def _renew_every(self) -> float:
        return max(self.settings.renew_every.total_seconds(), 0.05)

    @property
    def finished(self) -> bool:
        """True once the child has exited and its pipes are read (or given up on)."""
        if self.failure is not None:
            return True
        if self.returncode is None:
            return False
        assert self.exited_at is not None
        return not self.streams or time.monotonic() - self.exited_at > _EXIT_DRAIN

    def spawn(self, loop_fds: list[int]) -> list[int]:
        """Start the child; the pipes to watch (none when it could not start).

        A forked child closes `loop_fds` (a command's child closes everything).
        """
        try:
            started = self.child.start(loop_fds)
        except NotStarted as exc:
            self.failure = str(exc)
            return []
        self.pid = started.pid
        for fd, stream in started.streams.items():
            os.set_blocking(fd, False)
            if stream == "stdin":
                self._stdin = fd
        self._pending = memoryview(started.input)
        self.streams = dict(started.streams)
        self.hooks.started(self.pid, process_start(self.pid))
        return list(self.streams)

    # The loop's side: read pipes, renew the lease, enforce limits.

    def ready(self, fd: int) -> None:
        """Serve pipe `fd`: read what it has, or write the data it takes; close it at its end."""
        if fd == self._stdin:
            self._write_input(fd)
            return
        try:
            chunk = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        stream = self.streams[fd]
        if stream == "channel":
            self.child.channel(chunk)
        else:
            self._output(stream, chunk)
        if not chunk:
            self._close(fd)

    def _close(self, fd: int) -> None:
        """Stop watching pipe `fd` and close it (in that order: the number may be reused)."""
        if self.streams.pop(fd, None) is not None:
            self._unwatch(fd)
            os.close(fd)
        if fd == self._stdin:
            self._stdin = None

    def close(self) -> None:
        """Close every pipe still open."""
        for fd in list(self.streams):
            self._close(fd)

    def _write_input(self, fd: int) -> None:
        try:
            written = os.write(fd, self._pending[: 1 << 20]) if self._pending else 0
        except BlockingIOError:
            return
        except OSError:  # the task does not read its input: that is its business
            written = len(self._pending)
        self._pending = self._pending[written:]
        if not self._pending:
            self._close(fd)

    def step(self, now: float) -> float:
        """Reap, renew, time out and kill as due at `now`; seconds until it next needs a look."""
        if self.failure is not None:
            return 0.0
        self._reap(now)
        if self.returncode is not None:
            if self._stdin is not None:
                self._close(self._stdin)
            return 0.02 if self.streams else 0.0
        timeout = self.task.timeout
        if (
            self.stop_at is None
            and timeout is not None
            and now - self.started >= timeout.total_seconds()
        ):
            self.timed_out = True
            self.stop_at = now
        if now >= self._next_renewal:
            now = self._renew()
        self._guard_lease(now)
        self._escalate(now)
        waits = [self._next_renewal - now, 0.5]
        if timeout is not None and self.stop_at is None:
            waits.append(self.started + timeout.total_seconds() - now)
        kill_by = self.kill_by
        moments = [self.stop_at, None if self._killed else self.kill_at]
        moments += [kill_by - self.settings.lease_grace, kill_by]
        for moment in moments:
            if moment is not None and moment > now:
                waits.append(moment - now)
        return max(min(waits), 0.0)

    def _renew(self) -> float:
        """Renew the lease; when the store cannot be reached, try again soon (at once,
        then after 0.1 s, doubling up to 2 s). The time after the call."""
        renewal = self.hooks.renew()
        now = time.monotonic()  # the call may have waited on the store
        if renewal is Renewal.LOST and self.stop_at is None:
            self.lease_lost = True
            self.stop_at = now
        if renewal is Renewal.UNSURE:
            self._unrenewed += 1
            self._next_renewal = now + delay(self._unrenewed)
        else:
            self._unrenewed = 0
            self._next_renewal = now + self._renew_every
        return now

    @property
    def kill_by(self) -> float:
        """When the task must be dead if its lease is not renewed meanwhile (monotonic)."""
        return self.hooks.held_until - self.settings.lease_margin

    def kill_for_lease(self) -> None:
        """SIGKILL the task, still running at `kill_by`, from the lease's guard thread:
        the loop, held up, could not. The loop records the run when it runs again."""
        if self.pid and self.returncode is None and not self._killed:
            self.lease_expiring = True
            self._killed = True
            self._signal(signal.SIGKILL)

    def _guard_lease(self, now: float) -> None:
        """Stop the task while the lease that could not be renewed still holds: SIGTERM
        a grace before `_lease_kill_at` (`_escalate` sends the SIGKILL by then)."""
        if self.lease_expiring or now < self.kill_by - self.settings.lease_grace:
            return
        self.lease_expiring = True
        self.stop_at = now if self.stop_at is None else min(self.stop_at, now)

    def _escalate(self, now: float) -> None:
        """SIGTERM once the stop is due, SIGKILL once the kill grace has passed after it,
        and never later than the lease allows."""
        if self.stop_at is not None and self.kill_at is None and now >= self.stop_at:
            if not (self.timed_out or self.lease_lost or self.lease_expiring):
                self.stopped_by = self._stop_why
            self._signal(signal.SIGTERM)
            self.kill_at = now + self.settings.kill_grace.total_seconds()
        if self.kill_at is not None and not self._killed:
            self.kill_at = min(self.kill_at, self.kill_by)
            if now >= self.kill_at:
                self._signal(signal.SIGKILL)
                self._killed = True

    def stop(self, *, after: float, why: int | None) -> None:
        """Stop the child `after` seconds from now, because of signal `why`.

        A child that ends by itself before then ends as it would have.
        """
        if self.returncode is not None or self.failure is not None:
            return
        self._stop_why = why
        moment = time.monotonic() + after
        self.stop_at = moment if self.stop_at is None else min(self.stop_at, moment)

    def abandon(self) -> None:
        """Kill the child and reap it: the loop is going away."""
        if self.pid and self.returncode is None:
            self._signal(signal.SIGKILL)
            self._reap(time.monotonic(), block=True)
        self.close()

    def _reap(self, now: float, *, block: bool = False) -> None:
        if self.returncode is not None or not self.pid:
            return
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 0
        if pid == 0:
            return
        self.returncode = os.waitstatus_to_exitcode(status)
        self.exited_at = now
        self.child.exited(self.returncode)

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def _output(self, stream: str, chunk: bytes) -> None:
        """Keep `chunk` of "stdout" or "stderr" in the tail; pass its whole lines on."""
        parsed = stream == self.child.parsed
        if not parsed:
            self.tail.add(chunk)
        lines, unterminated = self._lines(stream, chunk)
        if parsed:
            lines = self._parse(lines, unterminated=unterminated)
        if lines:
            self.hooks.output(stream, [line.decode("utf-8", errors="replace") for line in lines])

    def _lines(self, stream: str, chunk: bytes) -> tuple[list[bytes], bool]:
        """The lines `chunk` completes (pieces of very long ones), and whether the last one is
        the stream's unterminated end."""
        buffer = self.partial.setdefault(stream, bytearray())
        buffer += chunk
        lines = []
        start = 0
        cut = buffer.find(b"\n")
        while cut >= 0:
            lines.append(bytes(buffer[start:cut]))
            start = cut + 1
            cut = buffer.find(b"\n", start)
        del buffer[:start]
        while len(buffer) >= _LINE_MAX:
            lines.append(bytes(buffer[:_LINE_MAX]))
            del buffer[:_LINE_MAX]
        unterminated = not chunk and bool(buffer)
        if unterminated:
            lines.append(bytes(buffer))
            buffer.clear()
        return lines, unterminated

    def _parse(self, lines: list[bytes], *, unterminated: bool) -> list[bytes]:
        """The lines the child's kind does not take (its directives), kept in the tail too.

        The last line has no line break when `unterminated` (the output's end).
        """
        kept = []
        for index, line in enumerate(lines):
            if self.child.take_line(line):
                continue
            kept.append(line)
            last = unterminated and index == len(lines) - 1
            self.tail.add(line if last else line + b"\n")
        return kept

    # How it ended.

    def end(self) -> RunEnd:
        """How the run ended; call once `finished`."""
        if self.failure is not None:
            return self._end(Outcome.FAILED, error=self.failure)
        code = self.returncode
        assert code is not None
        if self.stopped_by is not None:
            return self._end(
                Outcome.INTERRUPTED,
                exit_code=code,
                error=f"{self.settings.runner} received {signal_name(self.stopped_by)}",
                signal=self.stopped_by,
            )
        if self.lease_lost:
            return self._end(
                Outcome.INTERRUPTED, exit_code=code, error="the lease was lost to another tick"
            )
        if self.lease_expiring:
            return self._end(
                Outcome.INTERRUPTED,
                exit_code=code,
                error="stopped before its lease ran out: the store could not be reached to renew"
                " it",
            )
        if self.timed_out:
            assert self.task.timeout is not None
            limit = self.task.timeout.total_seconds()
            return self._end(Outcome.TIMEOUT, exit_code=code, error=f"timed out after {limit:g}s")
        return self.child.end(code, self._end)

    def _end(self, outcome: Outcome, **fields: Any) -> RunEnd:
        return RunEnd(
            outcome=outcome,
            ended_at=self.clock(),
            elapsed=round(time.monotonic() - self.started, 6),
            output_tail=self.tail.text(),
            truncated=self.tail.truncated,
            **fields,
        )
