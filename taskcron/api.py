"""TaskCron: the public Python API. The CLI is a thin layer over it.

    from taskcron import TaskCron

    tc = TaskCron("/var/lib/myapp/taskcron")
    task = tc.schedule("billing.invoices", call="myapp.billing:send_invoices", data={"day": 1})
    tc.tick()                       # what `taskcron tick` does

Every method validates its input before it touches the store, so bad input
changes nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from taskcron import (
    actions,
    alerts,
    reading,
    scheduling,
    ticking,
)
from taskcron.actions import ACTIONS, Action, allowed_in
from taskcron.alerts import Delivery
from taskcron.config import Config
from taskcron.configfile import ENV_DEBUG
from taskcron.cronjobs import CronEdit
from taskcron.doctor import Check, CheckReport, broken_config_report
from taskcron.home import Clock, Home, load_config, utc_now
from taskcron.inputs import SHOWN_RUNS, check_owner, parse_module_id, parse_runs
from taskcron.lifecycle import TickResult, Watcher
from taskcron.logstore import LogStore
from taskcron.logview import LogFeed, LogWhere
from taskcron.maintenance import InitResult, MigrateResult, Pruned
from taskcron.model import Scope, State, Task
from taskcron.reading import STATUS_COUNT, Status, Upcoming
from taskcron.scheduling import Scheduled, TaskOptions
from taskcron.store import Recovered, SharedLog, Store, Tasks
from taskcron.ticking import Ticks
from taskcron.upkeep import Upkeep

if TYPE_CHECKING:
    from typing_extensions import Unpack  # in typing from Python 3.11

    from taskcron.pool import Pool

log = logging.getLogger(__name__)

#: What others import from here; the CLI imports only the API, render and errors, so
#: the few names it needs of lower modules are passed on here.
__all__ = [
    "ACTIONS",
    "ENV_DEBUG",
    "SHOWN_RUNS",
    "Action",
    "Check",
    "CheckReport",
    "CronEdit",
    "Delivery",
    "InitResult",
    "LogFeed",
    "LogWhere",
    "MigrateResult",
    "Pruned",
    "Recovered",
    "Scheduled",
    "State",
    "Status",
    "Task",
    "TaskCron",
    "TickResult",
    "alerts_test",
    "allowed_in",
    "broken_config_report",
    "parse_module_id",
    "parse_runs",
    "utc_now",
    "watch_missed",
]


class TaskCron(Upkeep):
    """A taskcron home: its store, its settings, and the operations on tasks.

    `home`, `config` and `store` mean what `--home`, `--config` and `--store`
    mean on the command line (None: the environment, then the config file,
    then the default). Pass a `Config` to skip reading files. `clock` returns
    aware UTC datetimes.

    Reading (`list`, `get`, `upcoming`, `log`) never creates a home or a
    store; `schedule`, `tick`, `init` and `prune` create them when missing.
    The log, housekeeping and crontab methods are `taskcron.upkeep.Upkeep`'s.
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

    def schedule(self, module: str, **options: Unpack[TaskOptions]) -> Task:
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
        session, a user, a tenant). Every option is described in `TaskOptions`.
        """
        return scheduling.schedule(self._home, module, options, caller="schedule").task

    def schedule_or_find(self, module: str, **options: Unpack[TaskOptions]) -> Scheduled:
        """`schedule`, saying whether a keyed task was there already and how it differs."""
        return scheduling.schedule(self._home, module, options, caller="schedule_or_find")

    @property
    def timezone(self) -> str:
        """The zone cron expressions are read in by default: the config's, else the system's."""
        return scheduling.timezone(self._home)

    def get(self, task_id: int, *, runs: int | None = None) -> Task:
        """The task with its runs, oldest first (its newest `runs` only, if given);
        `TaskNotFoundError` if there is none."""
        return self._home.stored(task_id).get(task_id, runs=runs)

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
        return reading.tasks(
            self._home, scope, state=state, all=all, owner=owner, limit=limit, offset=offset
        )

    def upcoming(
        self, *, modules: Iterable[str] = (), excepts: Iterable[str] = (), count: int = 10
    ) -> Upcoming:
        """The next `count` (at most `MAX_UPCOMING`) due times of queued tasks in scope,
        soonest first.

        A recurring task appears at each of its fire times, as if every run
        ended the moment it started.
        """
        return reading.upcoming(self._home, Scope.parse(modules, excepts), count)

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
        return reading.status(self._home, Scope.parse(modules, excepts), count)

    def running(self, *, modules: Iterable[str] = (), excepts: Iterable[str] = ()) -> Tasks:
        """The running tasks in scope, each with its current run as its only run (its start,
        host and progress so far), the oldest run first. One indexed read; creates nothing."""
        return reading.running(self._home, Scope.parse(modules, excepts))

    # --- actions -------------------------------------------------------------

    def act(self, name: str, task_id: int) -> Task:
        """Take the action `name` (a key of `taskcron.actions.ACTIONS`) on task `task_id`."""
        return actions.take(self._home, ACTIONS[name], task_id)

    def cancel(self, task_id: int) -> Task:
        """Withdraw a queued or paused task."""
        return self.act("cancel", task_id)

    def cancel_owned(self, owner: str) -> Tasks:
        """Withdraw every queued or paused task of `owner`; return them."""
        return actions.cancel_owned(self._home, owner)

    def retry(self, task_id: int) -> Task:
        """Put a failed or cancelled task at the back of the line, due now, attempts reset."""
        return self.act("retry", task_id)

    def pause(self, task_id: int) -> Task:
        """Hold a queued task until `resume`."""
        return self.act("pause", task_id)

    def resume(self, task_id: int) -> Task:
        """Put a paused task back in line."""
        return self.act("resume", task_id)

    def run_now(self, task_id: int) -> Task:
        """Make a queued task due now: it joins the back of the line of due tasks.

        A task that is already due keeps its place (it is never moved back); a
        recurring task runs now, and then again by its schedule.
        """
        return self.act("run-now", task_id)

    def remove(self, task_id: int) -> Task:
        """Delete a task that is not running, and its runs; return it as it was."""
        return self.act("remove", task_id)

    def owner_link(self, owner: str) -> str:
        """The dashboard's read-only page of `owner`'s tasks: `/owner/OWNER?sig=SIGNATURE`.

        Signed (HMAC-SHA256) with a key derived from the dashboard's token for owner
        links only, so it stays valid while the token does and opens nothing else;
        a `ConfigError` when no token is configured.
        """
        check_owner(owner)
        from taskcron.web.auth import owner_link  # standard library only

        return owner_link(self.config.web.token, owner)

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

    def ticks(
        self,
        *,
        modules: Iterable[str] = (),
        excepts: Iterable[str] = (),
        budget: timedelta | str | float | None = None,
        drain: bool = False,
        workers: int | None = None,
        max_tasks: int | None = None,
        watcher: Watcher | None = None,
        heartbeat: str | None = None,
    ) -> Ticks:
        """What `taskcron tick` runs: `drain` when `drain` is set or `workers` is other
        than one (`max_tasks` only then), else one `tick`; iterate for the results. It
        pings `heartbeat` (default: the config's `[heartbeat]`; `taskcron.heartbeat`)."""
        scope = Scope.parse(modules, excepts)
        return ticking.ticks(
            self._home, scope, budget, drain, workers, max_tasks, watcher, heartbeat
        )

    def work(
        self,
        *,
        modules: Iterable[str] = (),
        excepts: Iterable[str] = (),
        workers: int | None = None,
        budget: timedelta | str | float | None = None,
        watcher: Watcher | None = None,
        say: Callable[[bool, str], None] | None = None,
    ) -> Pool:
        """`work`'s pool: it claims due tasks as they come (every `poll`, and at once when the
        store tells of one) until a stop signal, then lets running tasks finish within the
        kill grace; `budget` (default: the config's) is each task's deadline after its start.
        It outlives store outages (`taskcron.pool`; `say` hears of them). Iterating raises
        `PoolBusyError` when another pool serves an overlapping scope on this host."""
        settings = ticking.work_settings(self._home, budget, workers)
        scope = Scope.parse(modules, excepts)
        return ticking.make_pool(self._home, scope, settings, watcher, say=say)


def watch_missed(app: TaskCron) -> list[Task]:
    """Record each recurring task of any scope found missed by now, once, and send its
    alert (as every tick does); the tasks found. One indexed question when none is."""
    return ticking.watch_missed(app._home)


def alerts_test(app: TaskCron, name: str | None = None) -> tuple[Delivery, ...]:
    """Send a sample alert through every channel of the config's alert rule `name` (None:
    of every rule) and return what each answered, as `taskcron alerts test` does.

    Each rule's channels are tried at once, within its `timeout`; nothing is
    written to the store or the log. A `ConfigError` when no rule has that name.
    """
    return alerts.test(app.config, host=app.recorder.host, at=app.clock(), name=name)


def metrics_text(app: TaskCron, *, openmetrics: bool = True) -> str:
    """The metrics (`taskcron.metrics.FAMILIES`) read from the store and this host's tick
    marks now, as OpenMetrics text (`taskcron metrics`, the dashboard's `/metrics`), or
    in Prometheus' classic format (the `[metrics] textfile`)."""
    from taskcron import metrics

    store = app.store
    samples = metrics.collect(store, home=app.home, host=store.host, now=app.clock())
    return metrics.text(samples, openmetrics=openmetrics)
