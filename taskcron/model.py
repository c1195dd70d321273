"""The task model: states, outcomes, module ids, scopes, targets, tasks and runs.

Everything here is a value: no I/O, no clock. Datetimes are timezone-aware UTC;
durations are `timedelta`; JSON shows times as ISO 8601 with an offset and
durations as seconds.
"""

from __future__ import annotations

import enum
import json
import re
import shlex
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from taskcron import errors
from taskcron.inputs import (
    covers,
    in_scope,
    parse_module_list,
)
from taskcron.values import field, value


class State(str, enum.Enum):
    """Where a task stands. The values are the strings stored and printed."""

    QUEUED = "queued"  #: Waiting for its due time and a tick (delayed and recurring too).
    RUNNING = "running"  #: Claimed by a tick that holds its lease.
    DONE = "done"  #: A one-off task whose run succeeded.
    FAILED = "failed"  #: A one-off task whose attempts are spent.
    CANCELLED = "cancelled"  #: Withdrawn by hand before it ran.
    PAUSED = "paused"  #: Held by hand; `resume` puts it back in line.

    @classmethod
    def parse(cls, value: str) -> State:
        """The state named `value`, or `StateNameError`."""
        try:
            return cls(value)
        except ValueError:
            raise errors.StateNameError(value, [s.value for s in cls]) from None


#: The states `list` shows without `--all`.
ACTIVE_STATES = (State.QUEUED, State.RUNNING, State.PAUSED, State.FAILED)


class Outcome(str, enum.Enum):
    """How a run ended. The values are the strings stored and printed."""

    DONE = "done"  #: The handler returned, or the command exited 0.
    FAILED = "failed"  #: The handler raised, or the command exited non-zero or could not start.
    TIMEOUT = "timeout"  #: The run outlived the task's timeout and was killed.
    INTERRUPTED = "interrupted"  #: Its tick died or was stopped by a signal.
    CONTINUED = "continued"  #: A time-boxed step that asked to go on later.


# --- module ids and scopes -------------------------------------------------


@value
class Scope:
    """Which module ids a tick, list or log serves.

    No `modules` means every module id; `excepts` then removes some.
    """

    modules: tuple[str, ...] = ()
    excepts: tuple[str, ...] = ()

    @classmethod
    def parse(cls, modules: Iterable[str] = (), excepts: Iterable[str] = ()) -> Scope:
        """A scope from repeated and/or comma-separated module ids, validated and normalised."""
        return cls(modules=parse_module_list(modules), excepts=parse_module_list(excepts))

    def __contains__(self, module: object) -> bool:
        return isinstance(module, str) and in_scope(module, self.modules, self.excepts)

    def overlaps(self, other: Scope) -> bool:
        """True when some module id is in both scopes.

        Two included subtrees meet in the deeper of their roots (when one holds
        the other); they share a module id unless an exception of either scope
        covers that whole root.
        """
        excepts = (*self.excepts, *other.excepts)
        for mine in self.modules or ("",):
            for theirs in other.modules or ("",):
                if not mine or (theirs and covers(mine, theirs)):
                    root = theirs
                elif not theirs or covers(theirs, mine):
                    root = mine
                else:
                    continue
                if not any(covers(e, root) for e in excepts if root or not e):
                    return True
        return False

    def to_json(self) -> dict[str, list[str]]:
        """`{"modules": [...], "excepts": [...]}`."""
        return {"modules": list(self.modules), "excepts": list(self.excepts)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Scope:
        """The inverse of `to_json`."""
        return cls(modules=tuple(obj["modules"]), excepts=tuple(obj["excepts"]))


@value(kw_only=False)
class Lanes:
    """How many tasks of one module id may run at once: 1, unless a subtree is widened.

    `widths` maps a module id to the width of every lane in its subtree
    (config `[lanes]`, `"mail" = 8`); the most specific entry wins.
    """

    widths: Mapping[str, int] = field(default_factory=dict)

    def width(self, module: str) -> int:
        """The width of `module`'s lane."""
        best, found = 1, -1
        for prefix, width in self.widths.items():
            if covers(prefix, module) and len(prefix) > found:
                best, found = width, len(prefix)
        return best


# --- durations -------------------------------------------------------------


def format_duration(delta: timedelta) -> str:
    """A short human form such as `1h30m`, `90s` or `1.5s`."""
    seconds = delta.total_seconds()
    if seconds < 60:
        return f"{seconds:g}s"
    whole = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts)


# --- targets ---------------------------------------------------------------

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_CALL = re.compile(rf"{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*", re.ASCII)
_TASK_NAME = re.compile(r"[^\s\x00-\x1f\x7f]{1,255}")


class TargetKind(str, enum.Enum):
    """What kind of thing a task runs."""

    CALL = "call"  #: A Python callable by import path, `package.module:function`.
    TASK = "task"  #: A handler registered by name with `@taskcron.task`.
    COMMAND = "command"  #: An argv run without a shell.


@value
class Target:
    """What a task runs: a callable path, a registered name, or an argv."""

    kind: TargetKind
    value: str | tuple[str, ...]

    @classmethod
    def call(cls, path: str) -> Target:
        """A `package.module:function` target; its form is checked, not its import."""
        if not _CALL.fullmatch(path):
            raise errors.TargetError(
                f"invalid call target {path!r}: expected package.module:function"
            )
        return cls(kind=TargetKind.CALL, value=path)

    @classmethod
    def task(cls, name: str) -> Target:
        """A target naming a registered handler."""
        if not _TASK_NAME.fullmatch(name):
            raise errors.TargetError(
                f"invalid task name {name!r}: expected 1 to 255 characters, no spaces"
            )
        return cls(kind=TargetKind.TASK, value=name)

    @classmethod
    def command(cls, argv: Iterable[str]) -> Target:
        """A command target; the argv is run as given, without a shell."""
        args = tuple(argv)
        if not args or not args[0]:
            raise errors.TargetError("invalid command: it is empty")
        if any("\x00" in a for a in args):
            raise errors.TargetError("invalid command: an argument contains a NUL byte")
        return cls(kind=TargetKind.COMMAND, value=args)

    def to_json(self) -> dict[str, Any]:
        """`{"kind": ..., "value": ...}`; a command's value is a list."""
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"kind": self.kind.value, "value": value}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Target:
        """The inverse of `to_json`."""
        kind = TargetKind(obj["kind"])
        value = obj["value"]
        return cls(kind=kind, value=tuple(value) if kind is TargetKind.COMMAND else value)

    def __str__(self) -> str:
        if isinstance(self.value, tuple):
            return shlex.join(self.value)  # as a shell would read it back
        return self.value


# --- tasks and runs --------------------------------------------------------


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 with a UTC offset, or None."""
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()


def _require_aware(name: str, moment: datetime | None) -> None:
    if moment is not None and moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")


class Next(NamedTuple):
    """Where a task goes next: its state and due time, and whether its attempts start over."""

    state: State
    due_at: datetime
    reset_attempts: bool = False


@value
class Recurrence:
    """When a recurring task comes back: a cron expression in a time zone, or a period."""

    cron: str | None = None  #: Five fields or an @-word, Debian cron's meaning.
    every: timedelta | None = None
    tz: str = "UTC"  #: The IANA zone the cron expression is read in.

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every is None):
            raise ValueError("a recurrence has either cron or every")

    def to_json(self) -> dict[str, Any]:
        """`{"cron": ..., "tz": ...}` or `{"every": seconds}`."""
        if self.every is not None:
            return {"every": self.every.total_seconds()}
        return {"cron": self.cron, "tz": self.tz}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Recurrence:
        """The inverse of `to_json`."""
        if "every" in obj:
            return cls(every=timedelta(seconds=obj["every"]))
        return cls(cron=obj["cron"], tz=obj.get("tz", "UTC"))

    def __str__(self) -> str:
        if self.every is not None:
            return f"every {format_duration(self.every)}"
        return f"{self.cron} ({self.tz})"


@value
class Progress:
    """How far a task got, as its handler last reported: `done` of `total`, and a message."""

    done: float
    total: float | None = None
    message: str = ""
    updated_at: datetime

    def __post_init__(self) -> None:
        _require_aware("updated_at", self.updated_at)

    @property
    def percent(self) -> float | None:
        """`100 * done / total`, rounded to one decimal and clamped to 0-100; None without a
        total."""
        if not self.total:
            return None
        return round(min(max(100 * self.done / self.total, 0.0), 100.0), 1)

    def to_json(self) -> dict[str, Any]:
        """`{"done", "total", "percent", "message", "updated_at"}`."""
        return {
            "done": self.done,
            "total": self.total,
            "percent": self.percent,
            "message": self.message,
            "updated_at": iso(self.updated_at),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Progress:
        """The inverse of `to_json`."""
        return cls(
            done=obj["done"],
            total=obj.get("total"),
            message=obj.get("message") or "",
            updated_at=datetime.fromisoformat(obj["updated_at"]),
        )


@value
class Run:
    """One execution attempt of a task."""

    id: int
    task_id: int
    attempt: int
    started_at: datetime
    ended_at: datetime | None = None  #: None while the run is going on.
    elapsed: float | None = None  #: Seconds, from a monotonic clock.
    outcome: Outcome | None = None  #: None while the run is going on.
    exit_code: int | None = None  #: A command's exit status.
    error: str | None = None  #: One line saying why it failed.
    traceback: str | None = None
    output_tail: str = ""  #: The last part of its stdout and stderr, in arrival order.
    truncated: bool = False  #: True when `output_tail` is not the whole output.
    host: str = ""
    machine: str = ""  #: The machine id of the host (see `taskcron.store.machine_id`).
    pid: int = 0  #: The tick's pid.
    child_pid: int | None = None  #: The task's process (and process group) while it runs.
    child_start: str | None = None  #: That process's start time in /proc: tells a reused pid.

    def __post_init__(self) -> None:
        _require_aware("started_at", self.started_at)
        _require_aware("ended_at", self.ended_at)

    def to_json(self) -> dict[str, Any]:
        """The run as the JSON object `show --json` prints."""
        return {
            "id": self.id,
            "attempt": self.attempt,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "elapsed": self.elapsed,
            "outcome": None if self.outcome is None else self.outcome.value,
            "exit_code": self.exit_code,
            "error": self.error,
            "traceback": self.traceback,
            "output_tail": self.output_tail,
            "truncated": self.truncated,
            "host": self.host,
            "pid": self.pid,
            "child_pid": self.child_pid,
        }


class Renewal(enum.Enum):
    """What a lease renewal found."""

    HELD = "held"  #: Renewed: held for a whole lease from the call.
    LOST = "lost"  #: Another tick has taken the run over: stop the task now.
    UNSURE = "unsure"  #: The store could not be asked: held until `RunHooks.held_until`.


@value
class RunEnd:
    """How a run ended, as the runner measured it."""

    outcome: Outcome
    ended_at: datetime
    elapsed: float
    exit_code: int | None = None
    error: str | None = None
    traceback: str | None = None
    output_tail: str = ""
    truncated: bool = False
    result_json: str | None = None  #: What the handler returned, for a `done` run.
    signal: int | None = None  #: The signal that stopped the tick during the run, if one did.
    #: A `continued` step's state, saved for the next step (JSON text).
    state_json: str | None = None
    resume_at: datetime | None = None  #: A `continued` step's task is due again no sooner.
    progress: Progress | None = None  #: The last progress the run reported, if any.


#: The upper bounds, in seconds, of the duration buckets runs are counted in by module
#: and outcome; a run longer than the last falls in one more bucket.
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


def bucket_of(elapsed: float) -> int:
    """The index of the duration bucket a run of `elapsed` seconds is counted in."""
    for index, bound in enumerate(DURATION_BUCKETS):
        if elapsed <= bound:
            return index
    return len(DURATION_BUCKETS)


@value
class Retention:
    """Which runs of a task the store keeps (`[history]`), trimmed as runs finish.

    A run goes when it is beyond the newest `keep_runs` (0: no limit) or started
    more than `keep_for` ago (None: no limit), unless it is the task's current run
    or the newest run of its outcome. A finish deletes at most `batch` runs.
    """

    keep_runs: int = 100
    keep_for: timedelta | None = timedelta(days=30)
    batch: int = 50  #: At most this many runs deleted by one finish.

    def limit(self, task: Task) -> int:
        """The runs of `task` kept: its own `keep_runs`, else this one's (0: no limit)."""
        return self.keep_runs if task.keep_runs is None else task.keep_runs


@value
class Task:
    """A unit of work, its place in line, and its history of runs."""

    id: int
    module: str
    title: str
    target: Target
    data_json: str = "null"  #: The task's data as stored: JSON text.
    priority: int = 0
    state: State = State.QUEUED
    due_at: datetime
    attempts: int = 0  #: Runs started since it was scheduled or retried.
    max_attempts: int = 1
    timeout: timedelta | None = None
    created_at: datetime
    updated_at: datetime
    result_json: str | None = None  #: What the last successful run returned, as JSON text.
    recurrence: Recurrence | None = None  #: None for a one-off task.
    max_lateness: timedelta | None = None  #: Skip a run that is later than this.
    key: str | None = None  #: At most one queued or running task per module id and key.
    owner: str | None = None  #: Who the task belongs to: a web session, a user, a tenant.
    progress: Progress | None = None  #: What its handler last reported; kept once it is done.
    steps: int = 0  #: Steps of the current job that ended asking to continue.
    step_state_json: str | None = None  #: The state the last of them saved (JSON text).
    last_outcome: Outcome | None = None  #: How its newest run ended (None: never ran).
    #: Runs of it kept in the store (`--keep-runs`); None: the config's `history.keep_runs`.
    keep_runs: int | None = None
    #: How many runs of it ended with each outcome, trimmed ones too, as (outcome, runs)
    #: pairs in outcome order; None when not loaded (a list's tasks). Counts read with
    #: the task, left out of `==` as what was read of it varies.
    outcomes: tuple[tuple[str, int], ...] | None = field(default=None, compare=False)
    #: How many of its runs the store holds (`runs` may be the newest of them only);
    #: None when not counted.
    runs_kept: int | None = field(default=None, compare=False)
    runs: tuple[Run, ...] = field(default=())
    #: When the current job's first step started, for a running task as the store's
    #: `running` reads it (None elsewhere: the current run's start then).
    job_started_at: datetime | None = None
    #: How long past due a recurring task may wait for a run before it is missed (None:
    #: never; a recurring task gets the config's `missed_after` when scheduled).
    missed_after: timedelta | None = None
    #: Since when it fails: the end of its first run that failed for good since its
    #: last success (None: healthy).
    failing_since: datetime | None = None
    #: The due time it was found missed at (None: not missed); cleared once a job of
    #: it ends.
    missed_since: datetime | None = None
    #: When each alert rule last sent each event of it, as JSON text (`{"RULE:EVENT":
    #: ISO time}`), for the rules' `cooldown` and `repeat`; None: none yet.
    alerted_json: str | None = None
    #: The alert events (`ALERT_EVENTS`) the write that returned it decided, in its
    #: transaction: each is decided once, by one process. () when read.
    alerts: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        for name in ("due_at", "created_at", "updated_at"):
            _require_aware(name, getattr(self, name))

    @property
    def data(self) -> Any:
        """The task's data, decoded."""
        return json.loads(self.data_json)

    @property
    def result(self) -> Any:
        """What the last successful run returned, decoded (None if nothing)."""
        return None if self.result_json is None else json.loads(self.result_json)

    @property
    def last_run(self) -> Run | None:
        """The newest run, if any was loaded."""
        return self.runs[-1] if self.runs else None

    def elapsed(self, now: datetime) -> tuple[timedelta, timedelta] | None:
        """While it runs, at `now`: the current run's elapsed time (the step) and the wall
        time since its job's first step started (the job, the step's when it has no
        earlier steps). None when it is not running or its run was not loaded."""
        run = self.last_run
        if self.state is not State.RUNNING or run is None or run.ended_at is not None:
            return None
        started = run.started_at if self.job_started_at is None else self.job_started_at
        return now - run.started_at, now - min(started, run.started_at)

    def elapsed_json(self, now: datetime) -> dict[str, float | None]:
        """`{"step_elapsed", "job_elapsed"}`: `elapsed(now)` in seconds (null when not
        running), as `status --json` and the dashboard's events carry them."""
        times = self.elapsed(now)
        if times is None:
            return {"step_elapsed": None, "job_elapsed": None}
        step, job = (round(max(t.total_seconds(), 0.0), 3) for t in times)
        return {"step_elapsed": step, "job_elapsed": job}

    @property
    def alerted(self) -> dict[str, str]:
        """When each alert rule last sent each event of it: `"RULE:EVENT"` to ISO time."""
        return {} if self.alerted_json is None else json.loads(self.alerted_json)

    def missed_json(self, now: datetime | None = None) -> dict[str, Any] | None:
        """A missed task's `missed` object: the due time it missed, and how many fire
        times it has missed by `now` (default: the system clock); None when not missed."""
        if self.missed_since is None or self.recurrence is None:
            return None
        from taskcron.schedule import fire_times  # the cron reader, only when missed

        now = now or datetime.now(timezone.utc)
        return {
            "since": iso(self.missed_since),
            "fire_times": fire_times(self.recurrence, self.missed_since, now),
        }

    def to_json(self, *, runs: bool = True, now: datetime | None = None) -> dict[str, Any]:
        """The task as the JSON object the CLI prints (`missed` counted at `now`)."""
        obj: dict[str, Any] = {
            "id": self.id,
            "module": self.module,
            "title": self.title,
            "target": self.target.to_json(),
            "state": self.state.value,
            "priority": self.priority,
            "data": self.data,
            "due_at": iso(self.due_at),
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "timeout": None if self.timeout is None else self.timeout.total_seconds(),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "result": self.result,
            "owner": self.owner,
            "progress": None if self.progress is None else self.progress.to_json(),
            "steps": self.steps,
            "saved_state": None
            if self.step_state_json is None
            else json.loads(self.step_state_json),
            "schedule": None if self.recurrence is None else self.recurrence.to_json(),
            "max_lateness": None
            if self.max_lateness is None
            else self.max_lateness.total_seconds(),
            "key": self.key,
            "last_outcome": None if self.last_outcome is None else self.last_outcome.value,
            "keep_runs": self.keep_runs,
            "missed_after": None
            if self.missed_after is None
            else self.missed_after.total_seconds(),
            "failing_since": None if self.failing_since is None else iso(self.failing_since),
            "missed": self.missed_json(now),
        }
        if runs:
            counted = dict(self.outcomes or ())
            obj["runs_kept"] = self.runs_kept
            obj["runs_total"] = sum(counted.values())
            obj["outcomes"] = counted
            obj["runs"] = [run.to_json() for run in self.runs]
        return obj
