"""TaskCron: the public Python API. The CLI is a thin layer over it.

    from taskcron import TaskCron

    tc = TaskCron("/var/lib/myapp/taskcron")
    task = tc.schedule("billing.invoices", call="myapp.billing:send_invoices", data={"day": 1})
    tc.tick()                       # what `taskcron tick` does

Every method validates its input before it touches the store, so bad input
changes nothing.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from taskcron import config as config_module
from taskcron import errors, logstore
from taskcron import schedule as schedule_module
from taskcron.config import Config
from taskcron.logstore import LogFilter, LogStore
from taskcron.model import (
    ACTIVE_STATES,
    Outcome,
    Recurrence,
    Run,
    Scope,
    State,
    Target,
    Task,
    iso,
    parse_duration,
    parse_module_id,
)
from taskcron.schedule import RetryPolicy
from taskcron.store import ClaimOutcome, Lease, NewTask, Recovered, Store
from taskcron.store.sqlite import SCHEMA_VERSION, SqliteStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Records = list[dict[str, Any]]
Upcoming = list[tuple[datetime, Task]]
INT64 = (-(2**63), 2**63 - 1)
_KEY = re.compile(r"[^\x00-\x1f\x7f]{1,255}")


def utc_now() -> datetime:
    """The wall clock, timezone-aware UTC: `TaskCron`'s default clock."""
    return datetime.now(timezone.utc)


def ensure_home(path: Path) -> None:
    """Create the home (mode 0700) if it does not exist; safe when racing other processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if not path.is_dir():
            raise errors.StoreError(f"home {path} exists and is not a directory") from None
        return
    except OSError as exc:
        raise errors.StoreError(f"cannot create home {path}: {exc.strerror}") from exc
    path.chmod(0o700)  # mkdir's mode is filtered by the umask


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
class TickResult:
    """What one tick did: ran a task (`ran`), found nothing due (`idle`) or found its scope busy."""

    outcome: str
    task: Task | None = None  #: The task it ran, with its runs; or the running one when busy.
    recovered: tuple[Recovered, ...] = field(default=())

    @property
    def failed(self) -> bool:
        """True when the tick ran a task and that run did not succeed."""
        if self.outcome != ClaimOutcome.CLAIMED.value or self.task is None:
            return False
        run = self.task.last_run
        return run is None or run.outcome is not Outcome.DONE

    def to_json(self) -> dict[str, Any]:
        """`{"outcome": ..., "task": {...} | null}`, as `tick --json` prints it."""
        task = None
        if self.task is not None:
            task = self.task.to_json(runs=self.outcome == ClaimOutcome.CLAIMED.value)
        return {"outcome": self.outcome, "task": task}


class TaskCron:
    """A taskcron home: its store, its settings, and the operations on tasks.

    `home` and `config` mean what `--home` and `--config` mean on the command
    line (None: the environment, then the config file, then the default).
    Pass a `Config` to skip reading files. `clock` returns aware UTC datetimes.
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        config: Config | str | os.PathLike[str] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        if isinstance(config, Config):
            self.config = config
            if home is not None:
                self.config = _with_home(config, Path(home).expanduser().absolute())
        else:
            self.config = config_module.load(config, home=home)
        self.clock = clock
        self.policy = RetryPolicy(
            first=self.config.retry.backoff, cap=self.config.retry.max_backoff
        )
        self._store: Store | None = None
        self._logstore: LogStore | None = None

    @property
    def home(self) -> Path:
        """The directory that holds the store and the log store."""
        return self.config.home

    @property
    def store(self) -> Store:
        """The task store, opened (and the home created) on first use."""
        if self._store is None:
            ensure_home(self.home)
            store = SqliteStore(self.home / "tasks.db")
            self._store = store
            if store.migrated_from is not None:
                self._emit(
                    "store.migrated",
                    message=f"store migrated from schema {store.migrated_from} to {SCHEMA_VERSION}",
                    from_version=store.migrated_from,
                    to_version=SCHEMA_VERSION,
                )
        return self._store

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

    def _emit(
        self,
        event: str,
        *,
        level: str = "info",
        task: Task | None = None,
        message: str = "",
        **fields: Any,
    ) -> None:
        """Append one record to the log store; a log that cannot be written never stops work."""
        if not self.logstore.enabled(level):
            return
        self._write(
            logstore.record(
                event,
                at=self.clock(),
                level=level,
                task=None if task is None else task.id,
                module=None if task is None else task.module,
                message=message,
                **fields,
            )
        )

    def _write(self, *records: dict[str, Any]) -> None:
        try:
            self.logstore.append(*records)
        except OSError as exc:
            log.warning("cannot write to the log store %s: %s", self.logstore.directory, exc)

    def close(self) -> None:
        """Close the store."""
        if self._store is not None:
            self._store.close()
            self._store = None

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
    ) -> Task:
        """Add a task to the queue and return it.

        Exactly one of `call` (`package.module:function`), `task` (a registered
        name) or `command` (an argv) says what it runs. `data` is any
        JSON-serialisable value; `data_json` passes JSON text as it is.

        A one-off task is due now, or at `at`, or after `delay`. With `cron`
        (read in `tz`: default the config's `timezone`, else the system's) or
        `every`, the task recurs: first due at its next fire time after now
        (`every`: now + the period) unless `at`/`delay` says otherwise, then
        again after each run ends. `max_lateness` skips a run that is later
        than that. With `key`, a task of the same module id and key that is
        queued or running is returned instead of adding another.
        """
        module = parse_module_id(module)
        chosen = [t for t in (call, task, command) if t is not None]
        if len(chosen) != 1:
            raise errors.TargetError("give exactly one target: call, task or command")
        if call is not None:
            target = Target.call(call)
        elif task is not None:
            target = Target.task(task)
        else:
            assert command is not None
            target = Target.command(command)
        if data_json is not None:
            if data is not None:
                raise errors.DataError("give data or data_json, not both")
            text = parse_data(data_json)
        else:
            try:
                text = json.dumps(data, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise errors.DataError(f"task data is not JSON-serialisable: {exc}") from None
        _utf8("title", title)
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
        if key is not None and not _KEY.fullmatch(key):
            raise errors.InputError(
                f"invalid key {key!r}: expected 1 to 255 characters, no control"
            )
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
        )
        created = self.store.schedule(new, now=now)
        if created.created_at == now:
            self._emit(
                "task.scheduled",
                task=created,
                message=f"scheduled {created.title}",
                title=created.title,
                target=created.target.to_json(),
                priority=created.priority,
                due_at=iso(created.due_at),
                schedule=None if recurrence is None else recurrence.to_json(),
                key=key,
            )
        return created

    def _recurrence(
        self, cron: str | None, every: timedelta | str | float | None, tz: str | None
    ) -> Recurrence | None:
        if cron is not None and every is not None:
            raise errors.InputError("give --cron or --every, not both")
        if tz is not None:
            schedule_module.zone(tz)
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
            return self._parse_time(at, tz)
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
            moment = moment.replace(tzinfo=schedule_module.zone(tz or self.timezone))
        return moment.astimezone(timezone.utc)

    def get(self, task_id: int) -> Task:
        """The task with its runs; `TaskNotFoundError` if there is none."""
        return self.store.get(task_id)

    def list(
        self,
        *,
        modules: Iterable[str] = (),
        excepts: Iterable[str] = (),
        state: State | str | None = None,
        all: bool = False,
    ) -> list[Task]:
        """Tasks in scope, in line order: active ones, all of them, or those in one state."""
        scope = Scope.parse(modules, excepts)
        if state is not None:
            states: Iterable[State] = (State.parse(state) if isinstance(state, str) else state,)
        else:
            states = tuple(State) if all else ACTIVE_STATES
        return self.store.list(scope=scope, states=states)

    def upcoming(
        self, *, modules: Iterable[str] = (), excepts: Iterable[str] = (), count: int = 10
    ) -> Upcoming:
        """The next `count` due times of queued tasks in scope, soonest first.

        A recurring task appears at each of its fire times, as if every run
        ended the moment it started.
        """
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

    def cancel(self, task_id: int) -> Task:
        """Withdraw a queued task."""
        return self._move(task_id, "cancel", (State.QUEUED,), State.CANCELLED)

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

    def remove(self, task_id: int) -> Task:
        """Delete a task that is not running, and its runs; return it as it was."""
        task = self.store.remove(task_id)
        self._emit("task.removed", task=task, message=f"removed ({task.state.value})")
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
    ) -> Task:
        now = self.clock()
        task = self.store.transition(
            task_id,
            action=action,
            allowed=allowed,
            to=to,
            now=now,
            reset_attempts=reset,
            due_at=now if due else None,
        )
        self._emit(_EVENTS[action], task=task, message=f"{action}: now {task.state.value}")
        return task

    # --- ticking -------------------------------------------------------------

    def tick(
        self,
        *,
        modules: Iterable[str] = (),
        excepts: Iterable[str] = (),
        budget: timedelta | str | float | None = None,
    ) -> TickResult:
        """Run at most one due task in scope, by the order rule, and say what happened.

        `budget` (default: the config's) sets the deadline the task sees; it
        never kills. A scope with a task running is `busy`; nothing due is `idle`.
        """
        scope = Scope.parse(modules, excepts)
        allowance = _duration(budget) if budget is not None else self.config.budget
        now = self.clock()
        lease = self._lease(now)
        claim = self.store.claim_next(
            scope=scope,
            now=now,
            lease=lease,
            decide=self.policy.after_run,
            skip=self.policy.after_skip,
        )
        for skipped in claim.skipped:
            self._emit(
                "task.skipped",
                level="warning",
                task=skipped,
                message=f"skipped: later than its max lateness; now {skipped.state.value}",
                state=skipped.state.value,
                next_due_at=iso(skipped.due_at) if skipped.state is State.QUEUED else None,
            )
        for item in claim.recovered:
            self._stop_orphan(item.task, item.run)
            self._emit_end(item.task, item.run)
        if claim.outcome is ClaimOutcome.IDLE:
            self._emit("tick.idle", level="debug", message="nothing due", scope=_scope_json(scope))
        if claim.outcome is ClaimOutcome.BUSY:
            self._emit(
                "tick.busy",
                level="debug",
                task=claim.task,
                message="a task in scope is running",
                scope=_scope_json(scope),
            )
        if claim.outcome is not ClaimOutcome.CLAIMED:
            return TickResult(
                outcome=claim.outcome.value, task=claim.task, recovered=claim.recovered
            )
        assert claim.task is not None and claim.run is not None
        task, run = claim.task, claim.run
        from taskcron import runner  # only a tick with a task to run pays for it

        deadline = None if allowance is None else now + allowance
        self._emit(
            "task.started",
            task=task,
            message=f"started {task.title}",
            run=run.id,
            attempt=run.attempt,
            deadline=iso(deadline),
            pid=run.pid,
            host=run.host,
        )
        settings = runner.RunSettings(
            run_id=run.id,
            import_paths=self.config.import_paths,
            modules=self.config.modules,
            cwd=self.config.directory,
            deadline=deadline,
            kill_grace=self.config.kill_grace,
            renew_every=self.config.lease / 3,
            output_tail=self.config.log.output_tail,
            log_level=self.config.log.level,
        )
        store = self.store

        def renew() -> bool:
            try:
                return store.renew_lease(run.id, lease=self._lease(self.clock()))
            except errors.StoreError as exc:
                log.warning("task %s: cannot renew its lease: %s", task.id, exc)
                return True

        def started(pid: int) -> None:
            try:
                store.set_child(run.id, pid)
            except errors.StoreError as exc:
                log.warning("task %s: cannot record its process: %s", task.id, exc)

        def output(stream: str, lines: Sequence[str]) -> None:
            at = logstore.timestamp(self.clock())
            base = {"ts": at, "level": "info", "event": "task.output", "task": task.id}
            self._write(
                *(
                    {
                        **base,
                        "module": task.module,
                        "message": line,
                        "stream": stream,
                        "run": run.id,
                    }
                    for line in lines
                )
            )

        def event(reported: dict[str, Any]) -> None:
            if reported.get("event") == "progress":
                done, total = reported.get("done"), reported.get("total")
                self._emit(
                    "task.progress",
                    task=task,
                    message=str(reported.get("message") or _progress_text(done, total)),
                    run=run.id,
                    done=done,
                    total=total,
                )
            elif reported.get("event") == "log":
                self._emit(
                    "task.output",
                    level=str(reported.get("level", "info")),
                    task=task,
                    message=str(reported.get("message", "")),
                    stream="log",
                    logger=reported.get("logger"),
                    exc=reported.get("exc"),
                    run=run.id,
                )

        end = runner.execute(
            task,
            settings,
            clock=self.clock,
            hooks=runner.RunHooks(
                renew=renew,
                started=started,
                output=output,
                event=event,
            ),
        )
        finished = store.finish_run(run.id, end, decide=self.policy.after_run)
        current = store.get(task.id)
        if finished is None:
            self._emit(
                "task.interrupted",
                level="warning",
                task=task,
                message=f"run {run.id} ended after another tick had recovered it",
                run=run.id,
            )
        else:
            self._emit_end(current, current.runs[-1])
        return TickResult(
            outcome=ClaimOutcome.CLAIMED.value, task=current, recovered=claim.recovered
        )

    def _stop_orphan(self, task: Task, run: Run) -> None:
        """A recovered run's task may outlive its tick: stop it, so it never runs twice."""
        if run.child_pid is None or run.host != os.uname().nodename:
            return
        from taskcron import runner

        if runner.kill_orphan(run.child_pid, run.id):
            self._emit(
                "task.killed",
                level="warning",
                task=task,
                message=f"killed the orphaned process group {run.child_pid} of run {run.id}",
                run=run.id,
                pid=run.child_pid,
            )

    def _emit_end(self, task: Task, run: Run) -> None:
        """The record of a run's end: task.done, task.failed or task.interrupted."""
        outcome = run.outcome
        event, level = (
            {
                Outcome.DONE: ("task.done", "info"),
                Outcome.INTERRUPTED: ("task.interrupted", "warning"),
            }.get(outcome, ("task.failed", "error"))
            if outcome is not None
            else ("task.failed", "error")
        )
        elapsed = run.elapsed or 0.0
        what = outcome.value if outcome is not None else "ended"
        message = f"{what} in {elapsed:.3f}s"
        if run.error:
            message += f": {run.error}"
        fields: dict[str, Any] = {
            "run": run.id,
            "attempt": run.attempt,
            "outcome": what,
            "started_at": iso(run.started_at),
            "ended_at": iso(run.ended_at),
            "elapsed": run.elapsed,
            "exit_code": run.exit_code,
            "state": task.state.value,
        }
        if outcome is not Outcome.DONE:
            fields["error"] = run.error
            fields["traceback"] = run.traceback
        if task.state is State.QUEUED:
            fields["next_due_at"] = iso(task.due_at)
        self._emit(event, level=level, task=task, message=message, **fields)

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
        """The last `count` log records that match, oldest first (see `taskcron log`)."""
        wanted = self.log_filter(
            task=task, modules=modules, excepts=excepts, level=level, since=since
        )
        return self.logstore.tail(count, keep=wanted, stop=wanted.before_since)

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
        if level is not None and level not in logstore.LEVELS:
            raise errors.InputError(
                f"invalid level {level!r}: expected one of {', '.join(logstore.LEVELS)}"
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

    def prune(self, older_than: timedelta | str | None = None) -> tuple[int, int]:
        """Remove finished one-off tasks and rotated logs older than `older_than`.

        The default is the config's `log.retention`. Returns (tasks, log files)
        removed. Queued, running and paused tasks are never touched.
        """
        age = _duration(older_than) if older_than is not None else self.config.log.retention
        assert age is not None
        before = self.clock() - age
        tasks = self.store.prune(before=before)
        files = logstore.prune_rotated(self.logstore, before)
        self._emit(
            "store.pruned",
            message=f"removed {tasks} tasks and {files} log files older than {iso(before)}",
            tasks=tasks,
            files=files,
        )
        return tasks, files

    def _lease(self, now: datetime) -> Lease:
        return Lease(host=os.uname().nodename, pid=os.getpid(), expires_at=now + self.config.lease)


_EVENTS = {
    "cancel": "task.cancelled",
    "retry": "task.retried",
    "pause": "task.paused",
    "resume": "task.resumed",
}


def _scope_json(scope: Scope) -> dict[str, list[str]]:
    return {"modules": list(scope.modules), "excepts": list(scope.excepts)}


def _progress_text(done: Any, total: Any) -> str:
    if isinstance(total, int | float) and total and isinstance(done, int | float):
        return f"{done:g}/{total:g} ({100 * done / total:.0f}%)"
    return f"{done}%"


def _with_home(config: Config, home: Path) -> Config:
    return dataclasses.replace(config, home=home)
