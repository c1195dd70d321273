"""TaskCron: the public Python API. The CLI is a thin layer over it.

    from taskcron import TaskCron

    tc = TaskCron("/var/lib/myapp/taskcron")
    task = tc.schedule("billing.invoices", call="myapp.billing:send_invoices", data={"day": 1})
    tc.tick()                       # what `taskcron tick` does

Every method validates its input before it touches the store, so bad input
changes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from taskcron import config as config_module
from taskcron import configfile, doctor, errors, inputs, logstore, ticking
from taskcron import schedule as schedule_module
from taskcron.actions import ACTIONS, Action, allowed_in
from taskcron.config import Config
from taskcron.configfile import ENV_DEBUG
from taskcron.doctor import Check, CheckReport, broken_config_report
from taskcron.home import Clock, Home, load_config, utc_now
from taskcron.inputs import (
    INT64,
    check_owner,
    check_utf8,
    int64,
    optional_duration,
    parse_data,
    parse_module_id,
)
from taskcron.lifecycle import (
    Event,
    TickResult,
    Watcher,
)
from taskcron.logstore import LogFilter, LogStore
from taskcron.model import (
    ACTIVE_STATES,
    Recurrence,
    Scope,
    State,
    Target,
    Task,
    format_duration,
    iso,
)
from taskcron.store import (
    NewTask,
    SharedLog,
    Store,
    Tasks,
    open_store,
    redact,
    resolve_url,
    same_store,
)

if TYPE_CHECKING:
    from taskcron.pool import Pool

log = logging.getLogger(__name__)

Records = list[dict[str, Any]]
Upcoming = list[tuple[datetime, Task]]
Checks = list["Check"]
#: What others import from here; the CLI imports only the API, render and errors, so
#: the few names it needs of lower modules are passed on here.
__all__ = [
    "ACTIONS",
    "ENV_DEBUG",
    "Action",
    "Check",
    "CheckReport",
    "CronEdit",
    "InitResult",
    "LogFeed",
    "MigrateResult",
    "Pruned",
    "Scheduled",
    "State",
    "Status",
    "Task",
    "TaskCron",
    "TickResult",
    "allowed_in",
    "broken_config_report",
    "owner_signature",
    "parse_module_id",
    "utc_now",
]

CRONTAB_LOCK = "crontab.lock"  #: In the home: held while a crontab is read and rewritten.
STATUS_COUNT = 5  #: How many next due tasks, and how many failures, `status` shows.
MAX_UPCOMING = 10_000  #: The most due times `upcoming` (`next -n`) lists: each is held in memory.
PAST_AT = timedelta(seconds=60)  #: An `at` further in the past than this gets a warning.


def _target(call: str | None, task: str | None, command: Sequence[str] | None) -> Target:
    """The one target given, read (its form only)."""
    if sum(t is not None for t in (call, task, command)) != 1:
        raise errors.TargetError("give exactly one target: call, task or command")
    if call is not None:
        return Target.call(call)
    if task is not None:
        return Target.task(task)
    assert command is not None
    return Target.command(command)


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """What `taskcron status` shows of a scope, read at `read_at`.

    `modules` counts tasks by module id and state (module ids and states
    that have tasks); `running` are the running tasks, each with its current
    run as its only run (its start and host), the oldest first; `next` the
    first queued tasks by due time; `failures` the most recently updated
    tasks that are `failed`, or waiting to run again after a run that failed
    or timed out.
    """

    read_at: datetime  #: When it was read: a running task's elapsed time runs to it.
    modules: Mapping[str, Mapping[str, int]]
    running: tuple[Task, ...] = ()
    next: tuple[Task, ...] = ()
    failures: tuple[Task, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """`{"modules": {MODULE: {STATE: COUNT}}, "running", "next", "failures": [TASK]}`,
        each task as `show --json` prints it, without its runs; a running task with its
        `step_elapsed` and `job_elapsed` at `read_at` too (see `Task.elapsed`)."""
        return {
            "modules": {module: dict(counts) for module, counts in self.modules.items()},
            "running": [
                {**task.to_json(runs=False), **task.elapsed_json(self.read_at)}
                for task in self.running
            ],
            "next": [task.to_json(runs=False) for task in self.next],
            "failures": [task.to_json(runs=False) for task in self.failures],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CronEdit:
    """What `generate_cron` or `uninstall_cron` made, and did to a crontab."""

    where: str  #: The crontab, in words ("your crontab", a file's path).
    scope: str  #: The scope, in words.
    job: str | None = None  #: The marker and job lines, for `generate_cron`.
    text: str | None = None  #: The crontab's whole text as left (or, on a dry run, as it would be).
    removed: int = 0  #: Jobs of this home and scope taken out (replaced, on install).
    written: bool = False  #: Whether the crontab was written.


class Pruned(NamedTuple):
    """What `prune` removed (or, on a dry run, would remove)."""

    tasks: int
    files: int  #: Rotated log files of this host.
    records: int | None = None  #: Records of the shared log; None when the store keeps none.
    runs: int = 0  #: The runs of the tasks.


@dataclass(frozen=True, slots=True, kw_only=True)
class Scheduled:
    """What `schedule_or_find` did: the task, and whether a keyed one was there already."""

    task: Task
    existing: bool = False  #: A task of the same module id and key was returned, unchanged.
    #: The fields (of `KEPT_FIELDS`) in which that task differs from the request.
    differs: tuple[str, ...] = ()


#: The fields a keyed request is compared on with the task it finds, in the order they
#: are named. The due time is not: a request's `at`/`delay` is read from its own now.
KEPT_FIELDS = (
    "target",
    "schedule",
    "data",
    "priority",
    "title",
    "max_attempts",
    "timeout",
    "max_lateness",
    "owner",
)


def _differences(found: Task, new: NewTask, *, title_given: bool) -> tuple[str, ...]:
    """The `KEPT_FIELDS` in which the task `found` differs from the request `new`; the
    title only when the request gave one (else it is the target's, already compared)."""
    seen = {
        "target": found.target != new.target,
        "schedule": found.recurrence != new.recurrence,
        "data": json.loads(found.data_json) != json.loads(new.data_json),
        "priority": found.priority != new.priority,
        "title": title_given and found.title != new.title,
        "max_attempts": found.max_attempts != new.max_attempts,
        "timeout": found.timeout != new.timeout,
        "max_lateness": found.max_lateness != new.max_lateness,
        "owner": found.owner != new.owner,
    }
    return tuple(name for name in KEPT_FIELDS if seen[name])


@dataclass(frozen=True, slots=True, kw_only=True)
class InitResult:
    """What `init` found and made."""

    home: Path
    store: str  #: The store's URL, without any password.
    config: Path | None  #: The config file in effect before `init`, kept as it was.
    written: Path | None  #: The starter config file `init` wrote, if it wrote one.


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrateResult:
    """What `migrate_store` copied, from where to where (URLs without any password)."""

    source: str
    target: str
    tasks: int
    runs: int
    password_left_out: bool = False  #: The target URL had a password, which `target` leaves out.

    @property
    def config_line(self) -> str:
        """The config line that points taskcron at the target: `store = "URL"`."""
        return f"store = {json.dumps(self.target)}"  # a JSON string is a TOML basic string

    def to_json(self) -> dict[str, Any]:
        """`{"source", "target", "tasks", "runs", "config"}`; `config` is `config_line`."""
        return {
            "source": self.source,
            "target": self.target,
            "tasks": self.tasks,
            "runs": self.runs,
            "config": self.config_line,
        }


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


def owner_signature(token: str, owner: str) -> str:
    """The `sig` of the owner link of `owner`, made with the dashboard's token (see
    `taskcron.web.auth`: a key derived from the token for owner links only)."""
    from taskcron.web.auth import owner_signature as signature  # standard library only

    return signature(token, owner)


class TaskCron:
    """A taskcron home: its store, its settings, and the operations on tasks.

    `home`, `config` and `store` mean what `--home`, `--config` and `--store`
    mean on the command line (None: the environment, then the config file,
    then the default). Pass a `Config` to skip reading files. `clock` returns
    aware UTC datetimes.

    Reading (`list`, `get`, `upcoming`, `log`) never creates a home or a
    store; `schedule`, `tick`, `init` and `prune` create them when missing.
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        config: Config | str | os.PathLike[str] | None = None,
        store: str | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._home = Home(load_config(home, config, store), clock)
        self.config = self._home.config
        self.clock = clock
        self.policy = self._home.policy
        self.recorder = self._home.recorder

    @property
    def home(self) -> Path:
        """The directory that holds the config's log store, lock files and default store."""
        return self._home.path

    @property
    def store_url(self) -> str:
        """Where the tasks live: the configured URL, else `tasks.db` in the home."""
        return self._home.store_url

    @property
    def store(self) -> Store:
        """The task store, opened (and the home and store created) on first use."""
        return self._home.store

    @property
    def logstore(self) -> LogStore:
        """The log store in `<home>/log/`."""
        return self._home.logstore

    @property
    def shared_log(self) -> SharedLog | None:
        """The log of every host sharing the store (a PostgreSQL store's `log` table); None
        for a store that keeps none (SQLite). Every record goes there too."""
        return self._home.shared_log

    def close(self) -> None:
        """Close the store and the shared log."""
        self._home.close()

    def __enter__(self) -> TaskCron:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- tasks -------------------------------------------------------------

    def schedule(
        self,
        module: str,
        *,
        call: str | None = None,
        task: str | None = None,
        command: Sequence[str] | None = None,
        data: Any = None,
        data_json: str | None = None,
        priority: int = 0,
        title: str | None = None,
        max_attempts: int = 1,
        timeout: timedelta | str | float | None = None,
        cron: str | None = None,
        every: timedelta | str | float | None = None,
        tz: str | None = None,
        at: datetime | str | None = None,
        delay: timedelta | str | float | None = None,
        max_lateness: timedelta | str | float | None = None,
        key: str | None = None,
        owner: str | None = None,
        check: bool = False,
        check_task: bool = True,
    ) -> Task:
        """Add a task to the queue and return it.

        Exactly one of `call` (`package.module:function`), `task` (a registered
        name) or `command` (an argv) says what it runs. A `task` name must be
        registered by the config's `modules` or an entry point (a `TargetError`
        saying which name it probably meant if not; a warning, and the task is
        added, when a module cannot be imported); `check_task=False` skips
        that. With `check`, any target must resolve here and now (a
        `TargetError` if it does not). `data` is any JSON-serialisable value
        (`{}` when neither it nor `data_json` is given); `data_json` passes
        JSON text as it is.

        A one-off task is due now, or at `at`, or after `delay`. With `cron`
        (read in `tz`: default the config's `timezone`, else the system's) or
        `every`, the task recurs: first due at its next fire time after now
        (`every`: now + the period) unless `at`/`delay` says otherwise, then
        again after each run ends. `max_lateness` skips a run that is later
        than that. With `key`, a task of the same module id and key that is
        queued, running or paused is returned, unchanged, instead of adding
        another; a warning names the fields (`KEPT_FIELDS`) in which it differs
        from this request. `owner` binds the task to whoever created it (a web
        session, a user, a tenant).
        """
        return self.schedule_or_find(
            module,
            call=call,
            task=task,
            command=command,
            data=data,
            data_json=data_json,
            priority=priority,
            title=title,
            max_attempts=max_attempts,
            timeout=timeout,
            cron=cron,
            every=every,
            tz=tz,
            at=at,
            delay=delay,
            max_lateness=max_lateness,
            key=key,
            owner=owner,
            check=check,
            check_task=check_task,
        ).task

    def schedule_or_find(
        self,
        module: str,
        *,
        call: str | None = None,
        task: str | None = None,
        command: Sequence[str] | None = None,
        data: Any = None,
        data_json: str | None = None,
        priority: int = 0,
        title: str | None = None,
        max_attempts: int = 1,
        timeout: timedelta | str | float | None = None,
        cron: str | None = None,
        every: timedelta | str | float | None = None,
        tz: str | None = None,
        at: datetime | str | None = None,
        delay: timedelta | str | float | None = None,
        max_lateness: timedelta | str | float | None = None,
        key: str | None = None,
        owner: str | None = None,
        check: bool = False,
        check_task: bool = True,
    ) -> Scheduled:
        """`schedule`, saying whether a keyed task was there already and how it differs."""
        module = parse_module_id(module)
        target = _target(call, task, command)
        if data_json is not None:
            if data is not None:
                raise errors.DataError("give data or data_json, not both")
            text = parse_data(data_json)
        elif data is None:
            text = "{}"
        else:
            try:
                text = json.dumps(data, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise errors.DataError(f"task data is not JSON-serialisable: {exc}") from None
        check_utf8("title", title)
        if title == "":
            raise errors.InputError(
                f"invalid title {title!r}: empty; leave the title out to use the target"
            )
        check_utf8("task data", text)
        for part in (target.value,) if isinstance(target.value, str) else target.value:
            check_utf8("target", part)
        int64("priority", priority)
        if int64("max attempts", max_attempts) < 1:
            raise errors.InputError(f"invalid max attempts {max_attempts}: must be at least 1")
        limit = optional_duration(timeout)
        if limit is not None and limit <= timedelta(0):
            raise errors.DurationError(str(timeout), "a timeout must be more than zero")
        recurrence = self._recurrence(cron, every, tz)
        lateness = optional_duration(max_lateness)
        if lateness is not None and lateness <= timedelta(0):
            raise errors.DurationError(str(max_lateness), "a max lateness must be more than zero")
        check_utf8("key", key)
        if key is not None and not inputs.is_key(key):
            raise errors.InputError(
                f"invalid key {key!r}: expected 1 to 255 characters, no control"
            )
        check_owner(owner)
        if check:
            self._resolve(target)
        elif check_task and task is not None:
            self._check_task(task)
        now = self.clock()
        due_at = self._first_due(now, recurrence, at, delay, tz)
        new = NewTask(
            module=module,
            title=str(target) if title is None else title,
            target=target,
            data_json=text,
            priority=priority,
            due_at=due_at,
            max_attempts=max_attempts,
            timeout=limit,
            recurrence=recurrence,
            max_lateness=lateness,
            key=key,
            owner=owner,
        )
        created, existing = self.store.schedule_or_find(new, now=now)
        if existing:
            differs = _differences(created, new, title_given=title is not None)
            if differs:
                log.warning(
                    "task %s (key %s) exists and differs in %s: kept as it was",
                    created.id,
                    key,
                    ", ".join(differs),
                )
            return Scheduled(task=created, existing=True, differs=differs)
        self.recorder.emit(
            Event.TASK_SCHEDULED,
            task=created,
            message=f"scheduled {created.title}",
            title=created.title,
            target=created.target.to_json(),
            priority=created.priority,
            due_at=iso(created.due_at),
            schedule=None if recurrence is None else recurrence.to_json(),
            key=key,
            owner=owner,
        )
        return Scheduled(task=created)

    def _check_task(self, name: str) -> None:
        """Refuse a task name that no configured module or entry point registers; warn
        when a module cannot be imported, as the name may be one of its own."""
        from taskcron import handlers

        handlers.add_import_paths(self.config.import_paths)
        try:
            found, unimportable = handlers.check_name(name, self.config.modules)
        except errors.HandlerError as exc:
            raise errors.TargetError(str(exc)) from exc
        for problem in unimportable:
            log.warning(
                "%s; task %r %s",
                problem,
                name,
                "is registered by another module" if found else "could not be checked",
            )

    def _resolve(self, target: Target) -> None:
        from taskcron import handlers

        handlers.add_import_paths(self.config.import_paths)
        try:
            handlers.resolve(target, modules=self.config.modules, cwd=self.config.directory)
        except errors.HandlerError as exc:
            raise errors.TargetError(f"target {str(target)!r} does not resolve: {exc}") from exc

    def _recurrence(
        self, cron: str | None, every: timedelta | str | float | None, tz: str | None
    ) -> Recurrence | None:
        if cron is not None and every is not None:
            raise errors.InputError("give --cron or --every, not both")
        if tz is not None:
            inputs.zone(tz)
        if cron is not None:
            schedule_module.validate_cron(cron)
            return Recurrence(cron=cron.strip(), tz=tz or self.timezone)
        if every is not None:
            period = optional_duration(every)
            assert period is not None
            if period <= timedelta(0):
                raise errors.DurationError(str(every), "a period must be more than zero")
            return Recurrence(every=period)
        return None

    @property
    def timezone(self) -> str:
        """The zone cron expressions are read in by default: the config's, else the system's."""
        return self.config.timezone or config_module.system_timezone()

    def _first_due(
        self,
        now: datetime,
        recurrence: Recurrence | None,
        at: datetime | str | None,
        delay: timedelta | str | float | None,
        tz: str | None,
    ) -> datetime:
        if at is not None and delay is not None:
            raise errors.InputError("give --at or --in, not both")
        if delay is not None:
            wait = optional_duration(delay)
            assert wait is not None
            return now + wait
        if at is not None:
            due = inputs.parse_time(at, tz or self.timezone)
            if now - due > PAST_AT:
                late = format_duration(timedelta(seconds=round((now - due).total_seconds())))
                log.warning("--at %s is %s in the past: the task is due at once", at, late)
            return due
        if recurrence is not None:
            return schedule_module.next_due(recurrence, now)
        return now

    def get(self, task_id: int) -> Task:
        """The task with its runs; `TaskNotFoundError` if there is none."""
        return self._home.stored(task_id).get(task_id)

    def list(
        self,
        *,
        modules: Iterable[str] = (),
        excepts: Iterable[str] = (),
        state: State | str | None = None,
        all: bool = False,
        owner: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Task]:
        """Tasks in scope, in line order: active ones, all of them, or those in one state;
        only `owner`'s when given.

        With `limit`, one page: at most `limit` tasks from the `offset`-th on,
        read along the store's indexes (without their runs either way).
        """
        scope = Scope.parse(modules, excepts)
        if state is not None:
            states: Iterable[State] = (State.parse(state) if isinstance(state, str) else state,)
        else:
            states = tuple(State) if all else ACTIVE_STATES
        if limit is not None and int64("limit", limit) < 1:
            raise errors.InputError(f"invalid limit {limit}: must be at least 1")
        if int64("offset", offset) < 0:
            raise errors.InputError(f"invalid offset {offset}: must be 0 or more")
        if limit is not None and offset > INT64[1] - limit:  # a page's end no store can count to
            raise errors.InputError(f"invalid offset {offset}: out of range")
        check_owner(owner)
        store = self._home.existing_store()
        if store is None:
            return []
        if limit is None:
            return store.list(scope=scope, states=states, owner=owner)[offset:]
        return store.page(scope=scope, states=states, owner=owner, limit=limit, offset=offset)

    def upcoming(
        self, *, modules: Iterable[str] = (), excepts: Iterable[str] = (), count: int = 10
    ) -> Upcoming:
        """The next `count` (at most `MAX_UPCOMING`) due times of queued tasks in scope,
        soonest first.

        A recurring task appears at each of its fire times, as if every run
        ended the moment it started.
        """
        if not 0 <= int64("count", count) <= MAX_UPCOMING:
            raise errors.InputError(f"invalid count {count}: expected 0 to {MAX_UPCOMING}")
        queued = self.list(modules=modules, excepts=excepts, state=State.QUEUED)
        heap = [(task.due_at, task.id, task) for task in queued]
        heapq.heapify(heap)
        found: Upcoming = []
        while heap and len(found) < count:
            due, _, task = heapq.heappop(heap)
            found.append((due, task))
            if task.recurrence is not None:
                later = schedule_module.next_due(task.recurrence, due)
                heapq.heappush(heap, (later, task.id, task))
        return found

    def status(
        self,
        *,
        modules: Iterable[str] = (),
        excepts: Iterable[str] = (),
        count: int = STATUS_COUNT,
    ) -> Status:
        """The tasks in scope at a glance, as `taskcron status` shows them.

        Counts by module id and state, the running tasks with their current
        runs, the next `count` queued tasks and the `count` latest failures
        (see `Status`). Each part is one cheap read of the store, none loads
        every task. Reads only: never creates a home or a store.
        """
        scope = Scope.parse(modules, excepts)
        if int64("count", count) < 0:
            raise errors.InputError(f"invalid count {count}: must be 0 or more")
        store = self._home.existing_store()
        now = self.clock()
        if store is None:
            return Status(read_at=now, modules={})
        return Status(
            read_at=now,
            modules=store.counts(scope),
            running=tuple(store.running(scope)),
            next=tuple(store.next_due(scope, count=count)),
            failures=tuple(store.failures(scope, count=count)),
        )

    def running(self, *, modules: Iterable[str] = (), excepts: Iterable[str] = ()) -> Tasks:
        """The running tasks in scope, each with its current run as its only run (its start,
        host and progress so far), the oldest run first. One indexed read; creates nothing."""
        scope = Scope.parse(modules, excepts)
        store = self._home.existing_store()
        return [] if store is None else store.running(scope)

    def cancel(self, task_id: int) -> Task:
        """Withdraw a queued or paused task."""
        return self._act(ACTIONS["cancel"], task_id)

    def cancel_owned(self, owner: str) -> Tasks:
        """Withdraw every queued or paused task of `owner`; return them."""
        check_owner(owner)
        store = self._home.existing_store()
        if store is None:
            return []
        cancelled = store.cancel_owned(owner, now=self.clock())
        for task in cancelled:
            self.recorder.emit(
                ACTIONS["cancel"].event, task=task, message="cancel: now cancelled", owner=owner
            )
        return cancelled

    def retry(self, task_id: int) -> Task:
        """Put a failed or cancelled task at the back of the line, due now, attempts reset."""
        return self._act(ACTIONS["retry"], task_id)

    def pause(self, task_id: int) -> Task:
        """Hold a queued task until `resume`."""
        return self._act(ACTIONS["pause"], task_id)

    def resume(self, task_id: int) -> Task:
        """Put a paused task back in line."""
        return self._act(ACTIONS["resume"], task_id)

    def run_now(self, task_id: int) -> Task:
        """Make a queued task due now: it joins the back of the line of due tasks.

        A task that is already due keeps its place (it is never moved back); a
        recurring task runs now, and then again by its schedule.
        """
        return self._act(ACTIONS["run-now"], task_id)

    def remove(self, task_id: int) -> Task:
        """Delete a task that is not running, and its runs; return it as it was."""
        task = self._home.stored(task_id).remove(task_id)
        self.recorder.emit(
            ACTIONS["remove"].event, task=task, message=f"removed ({task.state.value})"
        )
        return task

    def act(self, name: str, task_id: int) -> Task:
        """Take the action `name` (a key of `taskcron.actions.ACTIONS`) on task `task_id`."""
        action = ACTIONS[name]
        return self.remove(task_id) if action.to is None else self._act(action, task_id)

    def _act(self, action: Action, task_id: int) -> Task:
        """Move the task as `action` says, if its state allows it, and record it."""
        assert action.to is not None
        now = self.clock()
        task = self._home.stored(task_id).transition(
            task_id,
            action=action.words,
            allowed=action.allowed,
            to=action.to,
            now=now,
            reset_attempts=action.reset,
            due_at=now if action.due else None,
            sooner_only=action.sooner,
        )
        message = f"{action.words}: now {task.state.value}"
        self.recorder.emit(action.event, task=task, message=message)
        return task

    # --- ticking -------------------------------------------------------------

    def tick(
        self,
        *,
        modules: Iterable[str] = (),
        excepts: Iterable[str] = (),
        budget: timedelta | str | float | None = None,
        watcher: Watcher | None = None,
    ) -> TickResult:
        """Run at most one due task in scope, by the order rule, and say what happened.

        `budget` (default: the config's) sets the deadline the task sees; it
        never kills. A scope with a task running is `busy`; nothing due is
        `idle`. A `watcher` hears of the run's start and output as they come.
        """
        return ticking.tick(self._home, Scope.parse(modules, excepts), budget, watcher)

    def drain(
        self,
        *,
        modules: Iterable[str] = (),
        excepts: Iterable[str] = (),
        budget: timedelta | str | float | None = None,
        workers: int | None = None,
        max_tasks: int = 0,
        watcher: Watcher | None = None,
    ) -> Pool:
        """A draining tick: run due tasks in scope until none is due, or the budget or
        `max_tasks` is spent, or a stop signal arrives; up to `workers` at once (default:
        the config's), in lanes when more than one.

        Iterate over the returned `Pool` for each run's `TickResult` as it ends
        (one `idle` or `busy` result when it ran nothing); its `signal` then
        says whether a signal stopped it.
        """
        settings = ticking.drain_settings(self._home, budget, workers, max_tasks)
        return ticking.make_pool(self._home, Scope.parse(modules, excepts), settings, watcher)

    def work(
        self,
        *,
        modules: Iterable[str] = (),
        excepts: Iterable[str] = (),
        workers: int | None = None,
        budget: timedelta | str | float | None = None,
        watcher: Watcher | None = None,
    ) -> Pool:
        """The pool as a long-running process: it waits for due tasks (checking every
        `poll`) until a stop signal, then lets running tasks finish for up to the kill grace.

        `budget` (default: the config's) gives each task a deadline of its start
        plus the budget, so that stepwise jobs yield there too.

        Iterating raises `PoolBusyError` when another pool serves an
        overlapping scope on this host.
        """
        settings = ticking.work_settings(self._home, budget, workers)
        return ticking.make_pool(self._home, Scope.parse(modules, excepts), settings, watcher)

    # --- the log and housekeeping --------------------------------------------

    def log(
        self,
        count: int = 20,
        *,
        task: int | None = None,
        modules: Iterable[str] = (),
        excepts: Iterable[str] = (),
        level: str | None = None,
        since: datetime | timedelta | str | None = None,
    ) -> Records:
        """The last `count` log records that match, oldest first (see `taskcron log`).

        With a shared log (a PostgreSQL store), every host's records, in the
        order they reached it.
        """
        wanted = self.log_filter(
            task=task, modules=modules, excepts=excepts, level=level, since=since
        )
        self._home.require()
        shared = self._readable_shared_log()
        if shared is not None:
            return shared.tail(count, keep=wanted)
        return self.logstore.tail(count, keep=wanted, stop=wanted.before_since)

    def _readable_shared_log(self) -> SharedLog | None:
        """The shared log, once its store is known to exist (and opened, so migrated)."""
        if self.shared_log is not None:
            self._home.existing_store()
        return self.shared_log

    def log_filter(
        self,
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
            int64("task id", task)
        since_at = inputs.parse_since(since, self.clock())
        return LogFilter(task=task, scope=scope, level=inputs.parse_level(level), since=since_at)

    def prune(self, older_than: timedelta | str | None = None, *, dry_run: bool = False) -> Pruned:
        """Remove finished one-off tasks (with their runs), rotated logs and shared log
        records older than `older_than`; with `dry_run`, only count them.

        The default is the config's `log.retention`. A bare number (`"30"`) is
        refused as a `DurationError`: 30 what? Queued, running and paused tasks
        are never touched. A dry run creates nothing: with no home it is a
        `HomeMissingError`, as for `list`.
        """
        if older_than is None:
            age = self.config.log.retention
        elif isinstance(older_than, timedelta):
            age = older_than
        else:
            age = inputs.parse_age(older_than)
        before = self.clock() - age
        store = self._home.existing_store() if dry_run else self.store
        tasks, runs = (0, 0) if store is None else store.prune(before=before, dry_run=dry_run)
        files = logstore.prune_rotated(self.logstore, before, dry_run=dry_run)
        shared = self.shared_log
        records = None if shared is None else shared.prune(before=before, dry_run=dry_run)
        pruned = Pruned(tasks=tasks, files=files, records=records, runs=runs)
        if not dry_run:
            self._record_pruned(pruned, before)
        return pruned

    def _record_pruned(self, pruned: Pruned, before: datetime) -> None:
        counts: dict[str, Any] = {"tasks": pruned.tasks, "runs": pruned.runs, "files": pruned.files}
        removed = f"{pruned.tasks} tasks and {pruned.files} log files"
        if pruned.records is not None:
            counts["records"] = pruned.records
            removed = (
                f"{pruned.tasks} tasks, {pruned.files} log files and {pruned.records} log records"
            )
        self.recorder.emit(
            Event.STORE_PRUNED, message=f"removed {removed} older than {iso(before)}", **counts
        )

    def log_feed(self, keep: LogFilter | None = None) -> LogFeed:
        """The log records written from now on that `keep` lets through, as they come:
        each `poll()` of the returned feed gives the new ones without waiting."""
        self._home.require()
        return LogFeed(logstore.Follower(self.logstore), keep or self.log_filter())

    def owner_link(self, owner: str) -> str:
        """The dashboard's read-only page of `owner`'s tasks: `/owner/OWNER?sig=SIGNATURE`.

        Signed (HMAC-SHA256) with a key derived from the dashboard's token for owner
        links only, so it stays valid while the token does and opens nothing else;
        a `ConfigError` when no token is configured.
        """
        check_owner(owner)
        token = self.config.web.token
        configfile.check_tokens(token, None)
        if token is None:
            raise errors.ConfigError(
                "an owner link is signed with the dashboard's token, and none is configured:"
                f" set web.token in the config or {configfile.ENV_WEB_TOKEN}"
            )
        from urllib.parse import quote

        return f"/owner/{quote(owner, safe='')}?sig={owner_signature(token, owner)}"

    def follow_log(
        self, count: int = 20, *, keep: LogFilter | None = None, poll: float = 0.2
    ) -> Iterator[Records]:
        """The last `count` records that `keep` (from `log_filter`) lets through, then each
        batch of new ones as they are written.

        Follows the active file across rotations, checking every `poll`
        seconds; with a shared log (a PostgreSQL store), the records of every
        host, as the store announces them. It ends only when the caller stops
        iterating.
        """
        wanted = keep or self.log_filter()
        self._home.require()
        shared = self._readable_shared_log()
        if shared is not None:
            yield from (batch for batch in shared.follow(count, keep=wanted) if batch)
            return
        follower = logstore.Follower(self.logstore)
        try:
            yield self.logstore.tail(
                count, keep=wanted, stop=wanted.before_since, end=follower.position
            )
            while True:
                batch = [r for r in follower.poll() if wanted(r)]
                if batch:
                    yield batch
                time.sleep(poll)
        finally:
            follower.close()

    def init(self) -> InitResult:
        """Create the home and the store, and a starter `./taskcron.toml` when no config is found.

        Safe to repeat: an existing config file is kept as it is.
        """
        written = None
        if self.config.path is None:
            target = Path(configfile.CONFIG_FILE).absolute()
            try:
                with target.open("x", encoding="utf-8") as handle:
                    handle.write(config_module.STARTER)
            except FileExistsError:
                pass
            except OSError as exc:
                raise errors.StoreError(f"cannot write {target}: {exc.strerror}") from exc
            else:
                written = target
        self._home.make(asked=True)
        self.store  # noqa: B018 - opening the store creates the store
        return InitResult(
            home=self.home, store=redact(self.store_url), config=self.config.path, written=written
        )

    def migrate_store(self, to: str) -> MigrateResult:
        """Copy every task and run of this store into the empty store at URL `to`.

        The current store is read on one snapshot and left untouched; the
        target (of any backend, created if missing) is written in one
        transaction, keeping task and run ids, and ids handed out there later
        follow them. Refused, writing nothing, when a task is running here
        (`TasksRunningError`: stop the ticks first) or the target holds tasks
        (`StoreNotEmptyError`). Pools are not copied: they register again.
        """
        url = resolve_url(to, base=Path.cwd(), where="--to")
        source = self._home.existing_store()
        if source is None:
            raise errors.StoreMissingError(redact(self.store_url))
        if same_store(url, source.url):
            raise errors.StoreURLError(
                f"invalid --to {redact(url)!r}: it is the current store; name another one"
            )
        running = source.running(Scope())
        if running:
            raise errors.TasksRunningError(tuple(sorted(task.id for task in running)))
        target = open_store(url, host=self.config.host)
        try:
            with contextlib.closing(source.dump()) as tasks:
                copied, runs = target.restore(tasks)
        finally:
            target.close()
        result = MigrateResult(
            source=source.url,
            target=target.url,
            tasks=copied,
            runs=runs,
            password_left_out=redact(url) != url,
        )
        self.recorder.emit(
            Event.STORE_COPIED,
            message=f"copied {copied} tasks and {runs} runs to {target.url}",
            target=target.url,
            tasks=copied,
            runs=runs,
        )
        return result

    def check(self) -> CheckReport:
        """Check that this home can work, and say what is broken; never creates anything.

        See `taskcron.doctor.check`.
        """
        return doctor.check(self._home)

    def generate_cron(
        self,
        *,
        modules: Iterable[str] = (),
        excepts: Iterable[str] = (),
        every: str | None = None,
        cron: str | None = None,
        budget: str | None = None,
        mail: bool = False,
        drain: bool = False,
        install: bool = False,
        crontab_file: str | None = None,
        user: str | None = None,
        dry_run: bool = False,
    ) -> CronEdit:
        """The crontab job that runs `taskcron tick` for this home and scope; installed on ask.

        `every` (a period such as `5m`) or `cron` (an expression) says when.
        With `install`, the job replaces this home and scope's job in the
        user's crontab (or `crontab_file`); with `dry_run`, nothing is written
        and the crontab's text as it would be left is returned. With `drain`, each
        tick runs due tasks one after another until its budget ends. A store
        named by `--store` or TASKCRON_STORE rather than the config file is
        refused: the job names only the config file.
        """
        from taskcron import cronline, crontab

        self._store_in_config_file()
        scope = Scope.parse(modules, excepts)
        cronline.check_text("home", str(self.home))
        tab = crontab.open_crontab(file=crontab_file, user=user)
        job = cronline.build(
            drain=drain,
            home=self.home,
            scope=scope,
            every=every,
            cron=cron,
            budget=budget,
            config=self.config.path,
            mail=mail,
            user=user if crontab_file is not None else None,
            now=self.clock(),
            tz=inputs.zone(config_module.system_timezone()),
        )
        edit = CronEdit(where=tab.describe(), scope=cronline.describe_scope(scope), job=job.block)
        if dry_run:
            change = crontab.install(job, tab, lock=None, dry_run=True)
            return dataclasses.replace(edit, text=change.text, removed=change.removed)
        self._home.make()  # the job appends to <home>/cron.log: the directory must exist
        if not install:
            return edit
        change = crontab.install(job, tab, lock=self.home / CRONTAB_LOCK)
        return dataclasses.replace(edit, text=change.text, removed=change.removed, written=True)

    def uninstall_cron(
        self,
        *,
        modules: Iterable[str] = (),
        excepts: Iterable[str] = (),
        crontab_file: str | None = None,
        user: str | None = None,
        dry_run: bool = False,
    ) -> CronEdit:
        """Take this home and scope's job out of the user's crontab (or `crontab_file`).

        A user's crontab left blank is removed. With `dry_run`, nothing is
        written and the crontab's text as it would be left is returned.
        """
        from taskcron import cronline, crontab

        scope = Scope.parse(modules, excepts)
        cronline.check_text("home", str(self.home))
        tab = crontab.open_crontab(file=crontab_file, user=user)
        if not dry_run:
            self._home.make()
        lock = self.home / CRONTAB_LOCK
        change = crontab.uninstall(self.home, scope, tab, lock=lock, dry_run=dry_run)
        return CronEdit(
            where=tab.describe(),
            scope=cronline.describe_scope(scope),
            text=change.text,
            removed=change.removed,
            written=change.written,
        )

    def _store_in_config_file(self) -> None:
        """Refuse a store named outside the config file: a crontab line names only that file.

        A store URL is never written into a crontab line, where every local user
        may read it (with its password) in `ps`.
        """
        origin, url = self.config.store_origin, self.config.store
        if origin is None or url is None:
            return
        shown = redact(url)
        where = self.config.path or "the config file (taskcron.toml)"
        if shown != url:
            raise errors.InputError(
                f"the store URL from {origin} holds a password, which a crontab line must"
                f" not: put store = {json.dumps(shown)} in {where} and the password in"
                " ~/.pgpass (or PGPASSWORD in the crontab)"
            )
        raise errors.InputError(
            f"the store from {origin} is not the config file's, and a crontab line names only"
            f" the config file: put store = {json.dumps(url)} in {where}"
        )
