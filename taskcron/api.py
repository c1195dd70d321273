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
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from taskcron import config as config_module
from taskcron import errors
from taskcron.config import Config
from taskcron.model import (
    ACTIVE_STATES,
    Outcome,
    Scope,
    State,
    Target,
    Task,
    parse_duration,
    parse_module_id,
)
from taskcron.schedule import RetryPolicy
from taskcron.store import ClaimOutcome, Lease, NewTask, Recovered, Store
from taskcron.store.sqlite import SqliteStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
INT64 = (-(2**63), 2**63 - 1)


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

    @property
    def home(self) -> Path:
        """The directory that holds the store and the log store."""
        return self.config.home

    @property
    def store(self) -> Store:
        """The task store, opened (and the home created) on first use."""
        if self._store is None:
            ensure_home(self.home)
            self._store = SqliteStore(self.home / "tasks.db")
        return self._store

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
    ) -> Task:
        """Add a one-off task to the queue, due now, and return it.

        Exactly one of `call` (`package.module:function`), `task` (a registered
        name) or `command` (an argv) says what it runs. `data` is any
        JSON-serialisable value; `data_json` passes JSON text as it is.
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
        _int64("priority", priority)
        if _int64("max attempts", max_attempts) < 1:
            raise errors.InputError(f"invalid max attempts {max_attempts}: must be at least 1")
        limit = _duration(timeout)
        if limit is not None and limit <= timedelta(0):
            raise errors.DurationError(str(timeout), "a timeout must be more than zero")
        now = self.clock()
        new = NewTask(
            module=module,
            title=str(target) if title is None else title,
            target=target,
            data_json=text,
            priority=priority,
            due_at=now,
            max_attempts=max_attempts,
            timeout=limit,
        )
        return self.store.schedule(new, now=now)

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

    def cancel(self, task_id: int) -> Task:
        """Withdraw a queued task."""
        return self._move(task_id, "cancel", (State.QUEUED,), State.CANCELLED)

    def retry(self, task_id: int) -> Task:
        """Put a failed or cancelled task back in line, due now, with its attempts reset."""
        return self._move(
            task_id, "retry", (State.FAILED, State.CANCELLED), State.QUEUED, reset=True
        )

    def pause(self, task_id: int) -> Task:
        """Hold a queued task until `resume`."""
        return self._move(task_id, "pause", (State.QUEUED,), State.PAUSED)

    def resume(self, task_id: int) -> Task:
        """Put a paused task back in line."""
        return self._move(task_id, "resume", (State.PAUSED,), State.QUEUED)

    def remove(self, task_id: int) -> Task:
        """Delete a task that is not running, and its runs; return it as it was."""
        return self.store.remove(task_id)

    def _move(
        self,
        task_id: int,
        action: str,
        allowed: tuple[State, ...],
        to: State,
        *,
        reset: bool = False,
    ) -> Task:
        return self.store.transition(
            task_id,
            action=action,
            allowed=allowed,
            to=to,
            now=self.clock(),
            reset_attempts=reset,
        )

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
            scope=scope, now=now, lease=lease, decide=self.policy.after_run
        )
        for item in claim.recovered:
            log.warning("task %s: %s", item.task.id, item.run.error)
        if claim.outcome is not ClaimOutcome.CLAIMED:
            return TickResult(
                outcome=claim.outcome.value, task=claim.task, recovered=claim.recovered
            )
        assert claim.task is not None and claim.run is not None
        task, run = claim.task, claim.run
        from taskcron import runner  # only a tick with a task to run pays for it

        settings = runner.RunSettings(
            import_paths=self.config.import_paths,
            modules=self.config.modules,
            cwd=self.config.directory,
            deadline=None if allowance is None else now + allowance,
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

        end = runner.execute(task, settings, clock=self.clock, hooks=runner.RunHooks(renew=renew))
        store.finish_run(run.id, end, decide=self.policy.after_run)
        return TickResult(
            outcome=ClaimOutcome.CLAIMED.value, task=store.get(task.id), recovered=claim.recovered
        )

    def _lease(self, now: datetime) -> Lease:
        return Lease(host=os.uname().nodename, pid=os.getpid(), expires_at=now + self.config.lease)


def _with_home(config: Config, home: Path) -> Config:
    return dataclasses.replace(config, home=home)
