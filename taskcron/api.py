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
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from taskcron import config as config_module
from taskcron import configfile, errors, logstore, syntax
from taskcron import schedule as schedule_module
from taskcron.config import Config
from taskcron.configfile import default_url
from taskcron.lifecycle import (
    ACTION_EVENTS,
    Event,
    Recorder,
    RunLife,
    TickResult,
    Watcher,
    after_claim,
)
from taskcron.logstore import LogFilter, LogStore
from taskcron.model import (
    ACTIVE_STATES,
    Lanes,
    Recurrence,
    Scope,
    State,
    Target,
    Task,
    format_duration,
    iso,
)
from taskcron.schedule import RetryPolicy
from taskcron.store import (
    Claim,
    ClaimOutcome,
    Lease,
    NewTask,
    SharedLog,
    Store,
    Tasks,
    open_shared_log,
    open_store,
    redact,
    resolve_url,
    same_store,
)
from taskcron.syntax import LEVEL_ALIASES, LOG_LEVELS, parse_duration, parse_module_id

if TYPE_CHECKING:
    from taskcron.pool import Pool, PoolSettings
    from taskcron.runner import RunSettings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Records = list[dict[str, Any]]
Upcoming = list[tuple[datetime, Task]]
Checks = list["Check"]
INT64 = (-(2**63), 2**63 - 1)
_KEY = re.compile(r"[^\x00-\x1f\x7f]{1,255}")
CRONTAB_LOCK = "crontab.lock"  #: In the home: held while a crontab is read and rewritten.
STATUS_COUNT = 5  #: How many next due tasks, and how many failures, `status` shows.
MAX_UPCOMING = 10_000  #: The most due times `upcoming` (`next -n`) lists: each is held in memory.
PAST_AT = timedelta(seconds=60)  #: An `at` further in the past than this gets a warning.


def utc_now() -> datetime:
    """The wall clock, timezone-aware UTC: `TaskCron`'s default clock."""
    return datetime.now(timezone.utc)


def ensure_home(path: Path) -> bool:
    """Create the home (mode 0700) if it does not exist; safe when racing other processes.

    True when this call created it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if not path.is_dir():
            raise errors.StoreError(f"home {path} exists and is not a directory") from None
        return False
    except OSError as exc:
        raise errors.StoreError(f"cannot create home {path}: {exc.strerror}") from exc
    path.chmod(0o700)  # mkdir's mode is filtered by the umask
    return True


def parse_data(text: str) -> str:
    """Check that `text` is strict JSON (no NaN or Infinity) and return it unchanged."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not valid JSON")

    try:
        json.loads(text, parse_constant=refuse)
    except RecursionError:
        raise errors.DataError("invalid JSON data: nested too deeply") from None
    except ValueError as exc:
        raise errors.DataError(f"invalid JSON data: {exc}") from None
    return text


def _duration(value: timedelta | str | float | None) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    return parse_duration(value)


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


def _utf8(name: str, value: str | None) -> None:
    """Refuse text that cannot be stored: a byte of argv that was not UTF-8 arrives as a
    lone surrogate."""
    if value is None:
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start : exc.end].encode("utf-8", "surrogateescape")
        raise errors.InputError(
            f"invalid {name}: byte {bad!r} at {exc.start} is not UTF-8 text"
        ) from None


def _int64(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.InputError(f"invalid {name} {value!r}: expected an integer")
    if not INT64[0] <= value <= INT64[1]:
        raise errors.InputError(f"invalid {name} {value}: out of range")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One item of `taskcron check`."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckReport:
    """What `taskcron check` found."""

    config: Path | None
    home: Path
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True when nothing is broken."""
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        """`{"ok", "config", "home", "checks": [{"name", "ok", "detail"}]}`."""
        return {
            "ok": self.ok,
            "config": None if self.config is None else str(self.config),
            "home": str(self.home),
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }


def broken_config_report(error: errors.TaskcronError) -> CheckReport:
    """What `taskcron check` reports when the config itself cannot be read."""
    check = Check(name="config", ok=False, detail=str(error))
    return CheckReport(config=None, home=Path(configfile.DEFAULT_HOME).absolute(), checks=(check,))


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
        if isinstance(config, Config):
            self.config = config
            if home is not None:
                self.config = dataclasses.replace(
                    config, home=Path(home).expanduser().absolute(), home_by_default=False
                )
            if store is not None and store != config.store:
                url = resolve_url(store, base=Path.cwd(), where="--store")
                self.config = dataclasses.replace(self.config, store=url, store_origin="--store")
        else:
            self.config = config_module.load(config, home=home, store=store)
        if "\0" in str(self.config.home):
            raise errors.InputError(
                f"invalid home {str(self.config.home)!r}: it contains a NUL byte"
            )
        self.clock = clock
        self.policy = RetryPolicy(
            first=self.config.retry.backoff, cap=self.config.retry.max_backoff
        )
        self.recorder = Recorder(
            lambda: self.logstore,
            clock,
            host=self.config.host or os.uname().nodename,
            shared=lambda: self.shared_log,
        )
        self._store: Store | None = None
        self._logstore: LogStore | None = None
        self._shared_log: SharedLog | None = None
        self._shared_log_opened = False

    @property
    def home(self) -> Path:
        """The directory that holds the config's log store, lock files and default store."""
        return self.config.home

    @property
    def store_url(self) -> str:
        """Where the tasks live: the configured URL, else `tasks.db` in the home."""
        return self.config.store or default_url(self.home)

    @property
    def store(self) -> Store:
        """The task store, opened (and the home and store created) on first use."""
        if self._store is None:
            self._make_home()
            self._store = self._open(create=True)
        return self._store

    def _make_home(self, *, asked: bool = False) -> None:
        """Create the home if missing. One nothing named (the last fallback, `./.taskcron`,
        holding the store) is created with a warning, unless `asked` (by `init`): a cron
        line that lacks its `--config` would otherwise make a new, empty store in the wrong
        place and succeed there forever."""
        if ensure_home(self.home) and self.config.home_by_default and not asked:
            log.warning("created a new home at %s", self.home)

    def _open(self, *, create: bool) -> Store:
        store = open_store(self.store_url, create=create, host=self.config.host)
        if store.migrated_from is not None:
            self.recorder.emit(
                Event.STORE_MIGRATED,
                message=f"store migrated from schema {store.migrated_from} to "
                f"{store.schema_version}",
                from_version=store.migrated_from,
                to_version=store.schema_version,
            )
        return store

    def _existing_store(self) -> Store | None:
        """The store, for reading: never created. None when the home has no store yet.

        With no home at all (or no store at a configured URL) it is a
        `StoreMissingError`: a command run from the wrong directory says so.
        """
        if self._store is not None:
            return self._store
        if self.config.store is None:
            self._require_home()  # a configured store says for itself that it is missing
        try:
            self._store = self._open(create=False)
        except errors.StoreMissingError:
            if self.config.store is not None:
                raise
            return None  # a home without tasks.db yet: nothing scheduled
        return self._store

    def _stored(self, task_id: int) -> Store:
        """The store, for reading or acting on task `task_id`: never created."""
        _int64("task id", task_id)  # no store can hold a larger one, and SQLite refuses it
        store = self._existing_store()
        if store is None:
            raise errors.TaskNotFoundError(task_id)
        return store

    def _require_home(self) -> None:
        if self.home.exists() and not self.home.is_dir():
            raise errors.StoreError(f"home {self.home} exists and is not a directory")
        if not self.home.is_dir():
            path = self.config.path
            why = f"no config file in {Path.cwd()} or its parents" if path is None else str(path)
            raise errors.HomeMissingError(str(self.home), why)

    @property
    def logstore(self) -> LogStore:
        """The log store in `<home>/log/`."""
        if self._logstore is None:
            settings = self.config.log
            self._logstore = LogStore(
                self.home / "log",
                level=settings.level,
                max_bytes=settings.max_bytes,
                backups=settings.backups,
            )
        return self._logstore

    @property
    def shared_log(self) -> SharedLog | None:
        """The log of every host sharing the store (a PostgreSQL store's `log` table); None
        for a store that keeps none (SQLite). Every record goes there too."""
        if not self._shared_log_opened:
            self._shared_log = open_shared_log(self.store_url, host=self.recorder.host)
            self._shared_log_opened = True
        return self._shared_log

    def close(self) -> None:
        """Close the store and the shared log."""
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._shared_log is not None:
            self._shared_log.close()

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
        _utf8("title", title)
        if title == "":
            raise errors.InputError(
                f"invalid title {title!r}: empty; leave the title out to use the target"
            )
        _utf8("task data", text)
        for part in (target.value,) if isinstance(target.value, str) else target.value:
            _utf8("target", part)
        _int64("priority", priority)
        if _int64("max attempts", max_attempts) < 1:
            raise errors.InputError(f"invalid max attempts {max_attempts}: must be at least 1")
        limit = _duration(timeout)
        if limit is not None and limit <= timedelta(0):
            raise errors.DurationError(str(timeout), "a timeout must be more than zero")
        recurrence = self._recurrence(cron, every, tz)
        lateness = _duration(max_lateness)
        if lateness is not None and lateness <= timedelta(0):
            raise errors.DurationError(str(max_lateness), "a max lateness must be more than zero")
        _utf8("key", key)
        if key is not None and not _KEY.fullmatch(key):
            raise errors.InputError(
                f"invalid key {key!r}: expected 1 to 255 characters, no control"
            )
        _owner(owner)
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
            syntax.zone(tz)
        if cron is not None:
            schedule_module.validate_cron(cron)
            return Recurrence(cron=cron.strip(), tz=tz or self.timezone)
        if every is not None:
            period = _duration(every)
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
            wait = _duration(delay)
            assert wait is not None
            return now + wait
        if at is not None:
            due = self._parse_time(at, tz)
            if now - due > PAST_AT:
                late = format_duration(timedelta(seconds=round((now - due).total_seconds())))
                log.warning("--at %s is %s in the past: the task is due at once", at, late)
            return due
        if recurrence is not None:
            return schedule_module.next_due(recurrence, now)
        return now

    def _parse_time(self, value: datetime | str, tz: str | None) -> datetime:
        """An ISO 8601 time; one without an offset is read in `tz` (or the default zone)."""
        if isinstance(value, str):
            text = value.strip()
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise errors.InputError(
                    f"invalid time {value!r}: expected ISO 8601, e.g. 2026-12-24T18:00 or "
                    "2026-12-24T18:00:00+01:00"
                ) from None
        else:
            moment = value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=syntax.zone(tz or self.timezone))
        try:
            return moment.astimezone(timezone.utc)
        except OverflowError:  # in UTC it falls before year 1 or after year 9999
            raise errors.InputError(
                f"invalid time {str(value)!r}: out of range, in UTC it falls outside the years"
                " 1 to 9999"
            ) from None

    def get(self, task_id: int) -> Task:
        """The task with its runs; `TaskNotFoundError` if there is none."""
        return self._stored(task_id).get(task_id)

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
        if limit is not None and _int64("limit", limit) < 1:
            raise errors.InputError(f"invalid limit {limit}: must be at least 1")
        if _int64("offset", offset) < 0:
            raise errors.InputError(f"invalid offset {offset}: must be 0 or more")
        if limit is not None and offset > INT64[1] - limit:  # a page's end no store can count to
            raise errors.InputError(f"invalid offset {offset}: out of range")
        _owner(owner)
        store = self._existing_store()
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
        if not 0 <= _int64("count", count) <= MAX_UPCOMING:
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
        if _int64("count", count) < 0:
            raise errors.InputError(f"invalid count {count}: must be 0 or more")
        store = self._existing_store()
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
        store = self._existing_store()
        return [] if store is None else store.running(scope)

    def cancel(self, task_id: int) -> Task:
        """Withdraw a queued or paused task."""
        return self._move(task_id, "cancel", (State.QUEUED, State.PAUSED), State.CANCELLED)

    def cancel_owned(self, owner: str) -> Tasks:
        """Withdraw every queued or paused task of `owner`; return them."""
        _owner(owner)
        store = self._existing_store()
        if store is None:
            return []
        cancelled = store.cancel_owned(owner, now=self.clock())
        for task in cancelled:
            self.recorder.emit(
                ACTION_EVENTS["cancel"], task=task, message="cancel: now cancelled", owner=owner
            )
        return cancelled

    def retry(self, task_id: int) -> Task:
        """Put a failed or cancelled task at the back of the line, due now, attempts reset."""
        return self._move(
            task_id, "retry", (State.FAILED, State.CANCELLED), State.QUEUED, reset=True, due=True
        )

    def pause(self, task_id: int) -> Task:
        """Hold a queued task until `resume`."""
        return self._move(task_id, "pause", (State.QUEUED,), State.PAUSED)

    def resume(self, task_id: int) -> Task:
        """Put a paused task back in line."""
        return self._move(task_id, "resume", (State.PAUSED,), State.QUEUED)

    def run_now(self, task_id: int) -> Task:
        """Make a queued task due now: it joins the back of the line of due tasks.

        A task that is already due keeps its place (it is never moved back); a
        recurring task runs now, and then again by its schedule.
        """
        return self._move(task_id, "run now", (State.QUEUED,), State.QUEUED, due=True, sooner=True)

    def remove(self, task_id: int) -> Task:
        """Delete a task that is not running, and its runs; return it as it was."""
        task = self._stored(task_id).remove(task_id)
        self.recorder.emit(Event.TASK_REMOVED, task=task, message=f"removed ({task.state.value})")
        return task

    def _move(
        self,
        task_id: int,
        action: str,
        allowed: tuple[State, ...],
        to: State,
        *,
        reset: bool = False,
        due: bool = False,
        sooner: bool = False,
    ) -> Task:
        now = self.clock()
        task = self._stored(task_id).transition(
            task_id,
            action=action,
            allowed=allowed,
            to=to,
            now=now,
            reset_attempts=reset,
            due_at=now if due else None,
            sooner_only=sooner,
        )
        self.recorder.emit(
            ACTION_EVENTS[action], task=task, message=f"{action}: now {task.state.value}"
        )
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
        scope = Scope.parse(modules, excepts)
        deadline = self._deadline(budget)
        claim = self._claim(scope, None)
        if claim.outcome is not ClaimOutcome.CLAIMED:
            return TickResult(
                outcome=claim.outcome.value,
                task=claim.task,
                recovered=claim.recovered,
                skipped=claim.skipped,
            )
        life, settings = self._begin(claim, deadline, watcher)
        return life.result(life.execute(settings))

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
        from taskcron.pool import PoolSettings

        size = self._pool_size(workers)
        if _int64("max tasks", max_tasks) < 0:
            raise errors.InputError(f"invalid max tasks {max_tasks}: must be 0 or more")
        settings = PoolSettings(
            workers=size,
            lanes=self.config.lanes,
            deadline=self._deadline(budget),
            max_tasks=max_tasks,
            lease=self.config.lease,
        )
        return self._pool(Scope.parse(modules, excepts), settings, watcher)

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
        from taskcron.pool import PoolSettings

        settings = PoolSettings(
            workers=self._pool_size(workers),
            lanes=self.config.lanes,
            forever=True,
            poll=self.config.poll,
            grace=self.config.kill_grace,
            lease=self.config.lease,
            task_budget=_duration(budget) if budget is not None else self.config.budget,
        )
        return self._pool(Scope.parse(modules, excepts), settings, watcher)

    def _pool_size(self, workers: int | None) -> int:
        size = self.config.workers if workers is None else workers
        if _int64("workers", size) < 1:
            raise errors.InputError(f"invalid workers {size}: must be at least 1")
        return size

    def _pool(self, scope: Scope, settings: PoolSettings, watcher: Watcher | None) -> Pool:
        from taskcron.pool import Pool

        def begin(claim: Claim) -> tuple[RunLife, RunSettings]:
            budget = settings.task_budget
            deadline = settings.deadline if budget is None else self.clock() + budget
            runner = "taskcron work" if settings.forever else "the tick"
            return self._begin(claim, deadline, watcher, pooled=True, runner=runner)

        return Pool(
            store=self.store,
            scope=scope,
            settings=settings,
            clock=self.clock,
            claim=lambda lanes: self._claim(scope, lanes),
            begin=begin,
        )

    def _deadline(self, budget: timedelta | str | float | None) -> datetime | None:
        allowance = _duration(budget) if budget is not None else self.config.budget
        return None if allowance is None else self.clock() + allowance

    def _claim(self, scope: Scope, lanes: Lanes | None) -> Claim:
        """Recover, then claim the next due task (in lanes, for a pool) and record what it did."""
        now = self.clock()
        claim = self.store.claim_next(
            scope=scope,
            now=now,
            lease=self._lease(now),
            decide=self.policy.after_run,
            skip=self.policy.after_skip,
            lanes=lanes,
        )
        after_claim(self.recorder, claim, self.store)
        if claim.outcome is not ClaimOutcome.CLAIMED:
            self._record_no_run(claim, scope)
        return claim

    def _begin(
        self,
        claim: Claim,
        deadline: datetime | None,
        watcher: Watcher | None,
        *,
        pooled: bool = False,
        runner: str = "the tick",
    ) -> tuple[RunLife, RunSettings]:
        """The life of a claimed run and the settings to run it with.

        A pool's run is begun here (the pool starts its child itself), and its
        handler is imported in this process first, so that later forks start warm.
        """
        assert claim.run is not None
        life = RunLife(
            max_steps=self.config.max_steps,
            store=self.store,
            claim=claim,
            recorder=self.recorder,
            lease=lambda: self._lease(self.clock()),
            decide=self.policy.after_run,
            deadline=deadline,
            watcher=watcher,
        )
        if pooled:
            life.begin()
        chosen = self._run_settings(claim.run.id, deadline, preload=pooled)
        return life, dataclasses.replace(chosen, runner=runner)

    def _record_no_run(self, claim: Claim, scope: Scope) -> None:
        if claim.outcome is ClaimOutcome.IDLE:
            event, message = Event.TICK_IDLE, "nothing due"
        else:
            event, message = Event.TICK_BUSY, "a task in scope is running"
        self.recorder.emit(
            event, level="debug", task=claim.task, message=message, scope=scope.to_json()
        )

    def _run_settings(
        self, run_id: int, deadline: datetime | None, *, preload: bool = False
    ) -> RunSettings:
        from taskcron.runner import RunSettings

        return RunSettings(
            preload=preload,
            run_id=run_id,
            import_paths=self.config.import_paths,
            modules=self.config.modules,
            cwd=self.config.directory,
            deadline=deadline,
            kill_grace=self.config.kill_grace,
            renew_every=self.config.lease / 3,
            output_tail=self.config.log.output_tail,
            log_level=self.config.log.level,
        )

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
        self._require_home()
        shared = self._readable_shared_log()
        if shared is not None:
            return shared.tail(count, keep=wanted)
        return self.logstore.tail(count, keep=wanted, stop=wanted.before_since)

    def _readable_shared_log(self) -> SharedLog | None:
        """The shared log, once its store is known to exist (and opened, so migrated)."""
        if self.shared_log is not None:
            self._existing_store()
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
            _int64("task id", task)
        level = LEVEL_ALIASES.get(level, level) if level is not None else None
        if level is not None and level not in LOG_LEVELS:
            raise errors.InputError(
                f"invalid level {level!r}: expected one of {', '.join(LOG_LEVELS)}"
            )
        return LogFilter(task=task, scope=scope, level=level, since=self._since(since))

    def _since(self, since: datetime | timedelta | str | None) -> datetime | None:
        if since is None or isinstance(since, datetime):
            return since
        if isinstance(since, timedelta):
            return self.clock() - since
        try:
            return self.clock() - parse_duration(since)
        except errors.DurationError:
            pass
        try:
            moment = datetime.fromisoformat(since)
        except ValueError:
            raise errors.InputError(
                f"invalid time {since!r}: expected a duration such as '1h' or an ISO 8601 time"
            ) from None
        return moment if moment.tzinfo is not None else moment.astimezone()

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
            age = syntax.parse_age(older_than)
        before = self.clock() - age
        store = self._existing_store() if dry_run else self.store
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
        self._require_home()
        return LogFeed(logstore.Follower(self.logstore), keep or self.log_filter())

    def owner_link(self, owner: str) -> str:
        """The dashboard's read-only page of `owner`'s tasks: `/owner/OWNER?sig=SIGNATURE`.

        Signed (HMAC-SHA256) with a key derived from the dashboard's token for owner
        links only, so it stays valid while the token does and opens nothing else;
        a `ConfigError` when no token is configured.
        """
        _owner(owner)
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
        self._require_home()
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
        self._make_home(asked=True)
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
        source = self._existing_store()
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

        It imports the configured modules (listing the task names they
        register), resolves the target of every queued, paused or recurring
        task, runs the store's integrity check, checks that the log directory
        is writable, and reports whether a crontab line for this home is
        installed (not required: ticks run another way need none).
        """
        checks = [_check_config(self.config), _check_home(self.config)]
        home = self.home.is_dir()
        checks += self._check_code()
        if home or self.config.store is not None:
            store_check, store = self._check_store()
            checks.append(store_check)
            if store is not None:
                checks += self._check_targets(store)
        checks.append(_check_writable("log", self.home / "log"))
        checks.append(self._check_crontab())
        return CheckReport(config=self.config.path, home=self.home, checks=tuple(checks))

    def _check_code(self) -> Checks:
        from taskcron import handlers

        handlers.add_import_paths(self.config.import_paths)
        try:
            names = handlers.registered(self.config.modules)
        except errors.HandlerError as exc:
            return [Check(name="modules", ok=False, detail=str(exc))]
        except Exception as exc:
            detail = f"importing the configured modules failed: {type(exc).__name__}: {exc}"
            return [Check(name="modules", ok=False, detail=detail)]
        imported = (
            "imported " + ", ".join(self.config.modules)
            if self.config.modules
            else "no modules configured"
        )
        listed = ", ".join(names) or "none"
        return [Check(name="modules", ok=True, detail=f"{imported}; tasks: {listed}")]

    def _check_store(self) -> tuple[Check, Store | None]:
        where = redact(self.store_url)
        try:
            store = self._existing_store()
        except errors.TaskcronError as exc:
            return Check(name="store", ok=False, detail=str(exc)), None
        if store is None:
            return Check(name="store", ok=True, detail=f"{where}: not created yet (no tasks)"), None
        problems = store.integrity()
        if problems:
            return Check(name="store", ok=False, detail=f"{where}: {'; '.join(problems)}"), store
        detail = f"{where}: {store.about()}, schema {store.schema_version}, integrity ok"
        return Check(name="store", ok=True, detail=detail), store

    def _check_targets(self, store: Store) -> Checks:
        from taskcron import handlers

        listed = store.list(scope=Scope(), states=(State.QUEUED, State.PAUSED, State.RUNNING))
        waiting = [t for t in listed if t.state is not State.RUNNING or t.recurrence is not None]
        broken = []
        for task in waiting:
            try:
                handlers.resolve(
                    task.target, modules=self.config.modules, cwd=self.config.directory
                )
            except errors.HandlerError as exc:
                broken.append(
                    Check(name=f"task {task.id}", ok=False, detail=f"{task.module}: {exc}")
                )
        count = len(waiting)
        summary = (
            f"{count - len(broken)} of {count} waiting tasks resolve"
            if count
            else "no waiting tasks"
        )
        return [Check(name="targets", ok=not broken, detail=summary), *broken]

    def _check_crontab(self) -> Check:
        """Whether a crontab job ticks this home, and whether the program it runs exists."""
        from taskcron import crontab

        try:
            jobs = crontab.jobs_for_home(crontab.open_crontab().read(), self.home)
        except errors.TaskcronError as exc:
            return Check(name="crontab", ok=True, detail=f"cannot read the crontab: {exc}")
        if not jobs:
            return Check(
                name="crontab",
                ok=True,
                detail="no crontab job ticks this home (none is needed when tasks run by "
                "`taskcron work`, a systemd timer or by hand)",
            )
        found = []
        for _, words in jobs:
            program = Path(words[0]) if words else Path()
            runnable = program.is_file() and os.access(program, os.X_OK)
            found.append(f"{program} ({'exists' if runnable else 'MISSING'})")
        missing = any(text.endswith("(MISSING)") for text in found)
        return Check(name="crontab", ok=not missing, detail="installed: " + ", ".join(found))

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
            tz=syntax.zone(config_module.system_timezone()),
        )
        edit = CronEdit(where=tab.describe(), scope=cronline.describe_scope(scope), job=job.block)
        if dry_run:
            change = crontab.install(job, tab, lock=None, dry_run=True)
            return dataclasses.replace(edit, text=change.text, removed=change.removed)
        self._make_home()  # the job appends to <home>/cron.log: the directory must exist
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
            self._make_home()
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

    def _lease(self, now: datetime) -> Lease:
        store = self.store
        return Lease(
            host=store.host,
            machine=store.machine,
            pid=os.getpid(),
            expires_at=now + self.config.lease,
        )


def _owner(owner: str | None) -> None:
    _utf8("owner", owner)
    if owner is not None and not _KEY.fullmatch(owner):
        raise errors.InputError(
            f"invalid owner {owner!r}: expected 1 to 255 characters, no control characters"
        )


def _check_config(config: Config) -> Check:
    """The config file in use; broken when one was ignored as unsafe (its settings, and the
    home it names, are not in effect)."""
    found = "none found: defaults" if config.path is None else str(config.path)
    detail = "; ".join([found, *config.warnings])
    return Check(name="config", ok=not config.warnings, detail=detail)


def _check_home(config: Config) -> Check:
    """Whether the home exists, and, when nothing named it, that it is the last fallback."""
    home = config.home
    exists = home.is_dir()
    detail = f"{home} {'exists' if exists else 'does not exist'}"
    if config.home_by_default:
        detail += (
            " (no config names a home: no --home, TASKCRON_HOME, --config or config file"
            " found, so it is ./.taskcron here)"
        )
    if not exists:
        detail += ": run 'taskcron init' to create it"
    return Check(name="home", ok=exists, detail=detail)


def _check_writable(name: str, directory: Path) -> Check:
    """Whether files can be written in `directory`, or in its nearest existing parent."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        how = "is writable" if existing == directory else f"can be created in {existing}"
        return Check(name=name, ok=True, detail=f"{directory} {how}")
    return Check(name=name, ok=False, detail=f"cannot write to {existing}")
