"""Adding a task: a request's options read and checked, its first due time, and the
keyed request that finds the task it would add instead.

`TaskCron.schedule` and `schedule_or_find` take the same options (`TaskOptions`),
declared once here; this module turns them into the store's `NewTask`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

from taskcron import errors, inputs
from taskcron import schedule as schedule_module
from taskcron.config import system_timezone
from taskcron.inputs import check_owner, check_utf8, int64, optional_duration, parse_module_id
from taskcron.lifecycle import Event
from taskcron.model import Recurrence, Target, Task, format_duration, iso
from taskcron.store import NewTask

if TYPE_CHECKING:
    from taskcron.home import Home

log = logging.getLogger(__name__)

PAST_AT = timedelta(seconds=60)  #: An `at` further in the past than this gets a warning.


class TaskOptions(TypedDict, total=False):
    """What `schedule` takes beside the module id; each is optional.

    Exactly one of `call`, `task` or `command` is required.
    """

    call: str | None  #: `package.module:function` to call.
    task: str | None  #: A name registered by the config's `modules` or an entry point.
    command: Sequence[str] | None  #: An argv to run.
    data: Any  #: Any JSON-serialisable value (default `{}`).
    data_json: str | None  #: JSON text, passed as it is (instead of `data`).
    priority: int  #: Higher runs first among due tasks of one module id (default 0).
    title: str | None  #: What people read (default: the target).
    max_attempts: int  #: Runs a failing task gets, retried with backoff (default 1).
    timeout: timedelta | str | float | None  #: Kill a run after this long.
    cron: str | None  #: Recur at the fire times of a cron expression, read in `tz`.
    every: timedelta | str | float | None  #: Recur this long after each run ends.
    tz: str | None  #: The zone of `cron` and `at` (default: the config's, else the system's).
    at: datetime | str | None  #: First due at this time.
    delay: timedelta | str | float | None  #: First due after this long.
    max_lateness: timedelta | str | float | None  #: Skip a run later than this.
    key: str | None  #: Add nothing when a task of this module id and key is active.
    owner: str | None  #: Who the task belongs to (a web session, a user, a tenant).
    #: The newest runs the store keeps of it (0: no limit); None: the config's
    #: `history.keep_runs`.
    keep_runs: int | None
    #: A recurring task this late with no run started is missed ("0": never); None: the
    #: config's `missed_after`. A one-off task is never missed.
    missed_after: timedelta | str | float | None
    check: bool  #: The target must resolve here and now (default False).
    check_task: bool  #: A `task` name must be registered (default True).


#: The options' names, to refuse a misspelt one as a call with a wrong keyword would be.
OPTION_NAMES = frozenset(TaskOptions.__annotations__)


class Scheduled(NamedTuple):
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


def schedule(home: Home, module: str, options: TaskOptions, *, caller: str) -> Scheduled:
    """Add the task the options describe, or find the active task of its module id and key
    (warning of the fields it differs in); record `task.scheduled` for an added one."""
    unknown = sorted(options.keys() - OPTION_NAMES)
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
    now = home.clock()
    new = new_task(home, module, options, now)
    created, existing = home.store.schedule_or_find(new, now=now)
    if existing:
        differs = differences(created, new, title_given=options.get("title") is not None)
        if differs:
            log.warning(
                "task %s (key %s) exists and differs in %s: kept as it was",
                created.id,
                new.key,
                ", ".join(differs),
            )
        return Scheduled(task=created, existing=True, differs=differs)
    home.recorder.emit(
        Event.TASK_SCHEDULED,
        task=created,
        message=f"scheduled {created.title}",
        title=created.title,
        target=created.target.to_json(),
        priority=created.priority,
        due_at=iso(created.due_at),
        schedule=None if new.recurrence is None else new.recurrence.to_json(),
        key=new.key,
        owner=new.owner,
    )
    return Scheduled(task=created)


def new_task(home: Home, module: str, options: TaskOptions, now: datetime) -> NewTask:
    """The task the options describe, every option checked; its target resolved when asked."""
    module = parse_module_id(module)
    target = _target(options.get("call"), options.get("task"), options.get("command"))
    text = _data(options.get("data"), options.get("data_json"))
    title = options.get("title")
    check_utf8("title", title)
    if title == "":
        raise errors.InputError(
            f"invalid title {title!r}: empty; leave the title out to use the target"
        )
    check_utf8("task data", text)
    for part in (target.value,) if isinstance(target.value, str) else target.value:
        check_utf8("target", part)
    priority, max_attempts = options.get("priority", 0), options.get("max_attempts", 1)
    int64("priority", priority)
    if int64("max attempts", max_attempts) < 1:
        raise errors.InputError(f"invalid max attempts {max_attempts}: must be at least 1")
    limit = _positive(options.get("timeout"), "a timeout")
    zone = options.get("tz")
    recurrence = _recurrence(options.get("cron"), options.get("every"), zone, home)
    lateness = _positive(options.get("max_lateness"), "a max lateness")
    key, owner = options.get("key"), options.get("owner")
    check_utf8("key", key)
    if key is not None and not inputs.is_key(key):
        raise errors.InputError(f"invalid key {key!r}: expected 1 to 255 characters, no control")
    check_owner(owner)
    keep_runs = options.get("keep_runs")
    if keep_runs is not None and int64("keep runs", keep_runs) < 0:
        raise errors.InputError(f"invalid keep runs {keep_runs}: must not be negative")
    missed_after = _missed_after(options.get("missed_after"), recurrence, home)
    if options.get("check", False):
        _resolve(home, target)
    elif (
        options.get("check_task", True)
        and isinstance(target.value, str)
        and options.get("task") is not None
    ):
        _check_task(home, target.value)
    return NewTask(
        module=module,
        title=str(target) if title is None else title,
        target=target,
        data_json=text,
        priority=priority,
        due_at=_first_due(now, recurrence, options.get("at"), options.get("delay"), zone, home),
        max_attempts=max_attempts,
        timeout=limit,
        recurrence=recurrence,
        max_lateness=lateness,
        key=key,
        owner=owner,
        keep_runs=keep_runs,
        missed_after=missed_after,
    )


def _missed_after(
    value: timedelta | str | float | None, recurrence: Recurrence | None, home: Home
) -> timedelta | None:
    """How late a task may be before it is missed: its own, else the config's; never for a
    one-off task, nor when zero."""
    found = optional_duration(value)
    if found is not None and found < timedelta(0):
        raise errors.DurationError(str(value), "a missed-after must not be negative")
    if recurrence is None:
        return None
    return (home.config.missed_after if found is None else found) or None


def timezone(home: Home) -> str:
    """The zone cron expressions are read in by default: the config's, else the system's."""
    return home.config.timezone or system_timezone()


def differences(found: Task, new: NewTask, *, title_given: bool) -> tuple[str, ...]:
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


def _data(data: Any, data_json: str | None) -> str:
    """The task data as JSON text: `data_json` checked, `data` serialised, else `{}`."""
    if data_json is not None:
        if data is not None:
            raise errors.DataError("give data or data_json, not both")
        return inputs.parse_data(data_json)
    if data is None:
        return "{}"
    try:
        return json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise errors.DataError(f"task data is not JSON-serialisable: {exc}") from None


def _positive(value: timedelta | str | float | None, what: str) -> timedelta | None:
    """A duration option read, refused unless more than zero."""
    found = optional_duration(value)
    if found is not None and found <= timedelta(0):
        raise errors.DurationError(str(value), f"{what} must be more than zero")
    return found


def _recurrence(
    cron: str | None, every: timedelta | str | float | None, tz: str | None, home: Home
) -> Recurrence | None:
    if cron is not None and every is not None:
        raise errors.InputError("give --cron or --every, not both")
    if tz is not None:
        inputs.zone(tz)
    if cron is not None:
        schedule_module.validate_cron(cron)
        return Recurrence(cron=cron.strip(), tz=tz or timezone(home))
    if every is not None:
        period = _positive(every, "a period")
        assert period is not None
        return Recurrence(every=period)
    return None


def _first_due(
    now: datetime,
    recurrence: Recurrence | None,
    at: datetime | str | None,
    delay: timedelta | str | float | None,
    zone: str | None,
    home: Home,
) -> datetime:
    if at is not None and delay is not None:
        raise errors.InputError("give --at or --in, not both")
    if delay is not None:
        wait = optional_duration(delay)
        assert wait is not None
        return now + wait
    if at is not None:
        due = inputs.parse_time(at, zone or timezone(home))
        if now - due > PAST_AT:
            late = format_duration(timedelta(seconds=round((now - due).total_seconds())))
            log.warning("--at %s is %s in the past: the task is due at once", at, late)
        return due
    if recurrence is not None:
        return schedule_module.next_due(recurrence, now)
    return now


def _check_task(home: Home, name: str) -> None:
    """Refuse a task name that no configured module or entry point registers; warn
    when a module cannot be imported, as the name may be one of its own."""
    from taskcron import handlers

    handlers.add_import_paths(home.config.import_paths)
    try:
        found, unimportable = handlers.check_name(name, home.config.modules)
    except errors.HandlerError as exc:
        raise errors.TargetError(str(exc)) from exc
    for problem in unimportable:
        log.warning(
            "%s; task %r %s",
            problem,
            name,
            "is registered by another module" if found else "could not be checked",
        )


def _resolve(home: Home, target: Target) -> None:
    from taskcron import handlers

    handlers.add_import_paths(home.config.import_paths)
    try:
        handlers.resolve(target, modules=home.config.modules, cwd=home.config.directory)
    except errors.HandlerError as exc:
        raise errors.TargetError(f"target {str(target)!r} does not resolve: {exc}") from exc
