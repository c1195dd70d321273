"""What every kind of child shares, and the one interface an execution drives.

A run is given `RunSettings` and `RunHooks`; its child is one `Child` (a forked
callable, an exec'd command, later others), so that the execution around it
(pipes, limits, renewal, kill escalation) never asks which kind it runs.
The values a child is given are `@value` classes and named tuples: frozen, typed and
cheap to define on the path of every tick that runs a task.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from taskcron.model import Outcome, Renewal, RunEnd, Task
from taskcron.values import value

ENV_RUN_ID = "TASKCRON_RUN_ID"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

Clock = Callable[[], datetime]
Handler = Callable[..., Any]


@value
class RunSettings:
    """How to run a task: where its code is, and the limits that apply (from the config)."""

    run_id: int
    import_paths: tuple[Path, ...]
    modules: tuple[str, ...]
    cwd: Path | None
    deadline: datetime | None
    kill_grace: timedelta
    renew_every: timedelta
    output_tail: int
    log_level: str
    #: How long the run's lease lasts from a renewal (the config's `lease`).
    lease: timedelta = timedelta(seconds=30)
    #: Import a callable's code in the tick before forking, so that later forks start warm.
    preload: bool = False
    #: What runs it, as a run stopped by a signal names it: the tick, or `taskcron work`.
    runner: str = "the tick"

    # A holder that cannot renew its lease stops its task itself, so that the task is
    # dead before another host may recover the run: SIGTERM at expiry - margin - grace,
    # SIGKILL at expiry - margin, counted from the last renewal that succeeded. A lease
    # under 10 s (tests, demos) has no room for a second's margin after a renewal every
    # third of it: its margin and grace are each a tenth of it.

    @property
    def lease_margin(self) -> float:
        """Seconds before its lease ends by which a task that could not renew it is
        killed: max(1 s, lease / 10); a tenth of a lease under 10 s."""
        lease = self.lease.total_seconds()
        return lease / 10 if lease < SHORT_LEASE else max(1.0, lease / 10)

    @property
    def lease_grace(self) -> float:
        """Seconds between the SIGTERM and the SIGKILL of a task whose lease is running
        out: min(kill grace, lease / 3); at most a tenth of a lease under 10 s."""
        lease = self.lease.total_seconds()
        share = 10 if lease < SHORT_LEASE else 3
        return min(self.kill_grace.total_seconds(), lease / share)


#: A lease shorter than this (seconds) leaves its holder no room for a second's margin.
SHORT_LEASE = 10.0


class RunHooks(Protocol):
    """What the tick wants to hear while a task runs (see `taskcron.lifecycle.RunLife`)."""

    #: Until when the lease surely holds, on the monotonic clock: a lease's length from
    #: the moment the claim, or the last renewal that succeeded, was sent.
    held_until: float

    def renew(self) -> Renewal:
        """Extend the lease, and say whether it is held, lost, or could not be renewed."""
        ...

    def started(self, pid: int, start: str | None) -> None:
        """The task's process has this pid (and this start time in /proc)."""
        ...

    def output(self, stream: str, lines: list[str]) -> None:
        """Whole lines the task printed on "stdout" or "stderr", a read's worth at a time."""
        ...

    def event(self, reported: dict[str, Any]) -> None:
        """What a callable reported: `{"event": "log", ...}` or `{"event": "progress", ...}`."""
        ...


def environment(task: Task, settings: RunSettings) -> dict[str, str]:
    """The variables a task's process finds in its environment, whatever its kind."""
    deadline = settings.deadline
    return {
        "TASKCRON_TASK_ID": str(task.id),
        ENV_RUN_ID: str(settings.run_id),
        "TASKCRON_MODULE": task.module,
        "TASKCRON_ATTEMPT": str(task.attempts),
        "TASKCRON_DEADLINE": "" if deadline is None else deadline.isoformat(),
        "TASKCRON_OWNER": task.owner or "",
        "TASKCRON_STEP": str(task.steps + 1),
    }


class NotStarted(Exception):
    """The child could not start; the message says why, and the run fails with it."""


class Started(NamedTuple):
    """A started child: its pid, its pipes by stream name, and the bytes its stdin is owed.

    Streams are "stdin", "stdout" and "stderr", which the execution serves,
    and "channel", whose bytes go to `Child.channel`.
    """

    pid: int
    streams: dict[int, str]
    input: bytes = b""


class Finish(Protocol):
    """Builds the run's end, with the output and timing the execution measured."""

    def __call__(self, outcome: Outcome, **fields: Any) -> RunEnd: ...


class Child:
    """One kind of child process, as the execution that watches it sees it.

    A kind says how it starts and how its end reads; the rest it may leave as is.
    """

    #: The stream whose lines the kind reads before they are output (None: no such stream).
    parsed: str | None = None
    #: Whether the stop signals stay blocked while it starts: a forked child runs the
    #: tick's Python, with its handlers, until it sets its own and unblocks them; an
    #: exec'd program would keep the mask, and never hear SIGTERM.
    starts_blocked: bool = True

    def start(self, loop_fds: list[int]) -> Started:
        """Start the process (`NotStarted` when it cannot); it closes `loop_fds` if it forks."""
        raise NotImplementedError

    def take_line(self, line: bytes) -> bool:
        """Read a line of the `parsed` stream; True when the kind took it (it is not output)."""
        return False

    def channel(self, chunk: bytes) -> None:
        """Bytes read from the "channel" stream; an empty chunk is its end."""

    def exited(self, code: int) -> None:
        """The process was reaped with this exit code (negative: killed by that signal)."""

    def end(self, code: int, finish: Finish) -> RunEnd:
        """How a child that ended by itself with exit `code` ended."""
        raise NotImplementedError


def signal_name(number: int) -> str:
    """`SIGTERM` for 15; `signal 99` for a number that names no signal."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
