"""Composing a tick, a drain and a pool from a home: claiming, beginning a run, and the
settings it runs with.

A run's deadline is computed here alone (`deadline_after`, or a pool's per-task
budget) and handed to both its life and its execution.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from taskcron import errors, tickmarks
from taskcron.home import Home
from taskcron.inputs import int64, optional_duration
from taskcron.lifecycle import Event, RunLife, TickResult, Watcher, after_claim
from taskcron.model import Lanes, Scope, Task
from taskcron.outage import Outage, Say
from taskcron.store import Claim, ClaimOutcome, Lease
from taskcron.values import replace

if TYPE_CHECKING:
    from taskcron.pool import Pool, PoolSettings
    from taskcron.runner import RunSettings

Budget = timedelta | str | float | None
logger = logging.getLogger(__name__)


class Ticks(Protocol):
    """What a tick command runs: its results as each run ends, then the signal that
    stopped it, if one did (a `Pool`, or `OneTick`)."""

    @property
    def signal(self) -> int | None: ...

    def __iter__(self) -> Iterator[TickResult]: ...


class OneTick:
    """A plain tick's result, read as a pool's results are."""

    def __init__(self, result: TickResult) -> None:
        self.result = result

    @property
    def signal(self) -> int | None:
        return self.result.signal

    def __iter__(self) -> Iterator[TickResult]:
        yield self.result


def ticks(
    home: Home,
    scope: Scope,
    budget: Budget,
    drain: bool,
    workers: int | None,
    max_tasks: int | None,
    watcher: Watcher | None,
    heartbeat: str | None = None,
) -> Ticks:
    """What `taskcron tick` runs (see `TaskCron.ticks`), marked (`mark_tick`) and with
    its heartbeat's pings (`taskcron.heartbeat.tick`)."""
    beat = None
    if heartbeat is not None or home.config.heartbeat.url is not None:
        from taskcron.heartbeat.tick import Heartbeat  # 2 ms to import: only with one

        beat = Heartbeat(home, heartbeat)
    settings = None
    if pooled(drain, workers, max_tasks):
        settings = drain_settings(home, budget, workers, max_tasks or 0)
    elif budget is not None:
        optional_duration(budget)  # bad input is refused, not pinged as a failed tick
    if beat is not None:
        watcher = beat.watch(watcher)
    try:
        if settings is None:
            ran: Ticks = OneTick(tick(home, scope, budget, watcher, mark=True))
        else:
            mark_tick(home, scope)
            ran = make_pool(home, scope, settings, watcher)
    except Exception:
        if beat is not None:
            beat.fail()  # the store cannot be opened, or answer
        raise
    return ran if beat is None else beat.around(ran)


def pooled(drain: bool, workers: int | None, max_tasks: int | None) -> bool:
    """Whether a tick command drains (a pool): with `drain`, or a number of workers other
    than one. `max_tasks` goes with a pool only."""
    found = drain or (workers is not None and workers != 1)  # the pool refuses a bad size
    if max_tasks is not None and not found:
        raise errors.InputError("--max-tasks goes with --drain or --workers")
    return found


def mark_tick(home: Home, scope: Scope) -> None:
    """Record in the home that a tick of `scope` runs now (`taskcron.tickmarks`), once the
    store is open: opening it makes the home, and a home that fails is removed whole."""
    home.store  # opened, so the home exists  # noqa: B018
    tickmarks.mark(home.path, scope.modules, scope.excepts)


def tick(
    home: Home, scope: Scope, budget: Budget, watcher: Watcher | None, *, mark: bool = False
) -> TickResult:
    """Run at most one due task in `scope` (see `TaskCron.tick`); with `mark`, a tick
    command's, mark it (`mark_tick`) once its input is found good."""
    deadline = deadline_after(home, budget)
    if mark:
        mark_tick(home, scope)
    claim = claim_next(home, scope, None)
    if claim.outcome is not ClaimOutcome.CLAIMED:
        watch_missed(home)
        publish_metrics(home, ran=False)
        return TickResult(
            outcome=claim.outcome.value,
            task=claim.task,
            recovered=claim.recovered,
            skipped=claim.skipped,
        )
    life = begin_run(home, claim, deadline, watcher)
    result = life.result(life.execute())
    watch_missed(home)
    publish_metrics(home, ran=True)
    return result


def watch_missed(home: Home) -> list[Task]:
    """Record each recurring task of any scope found missed by now, once, and send its
    alert: one healthy cron line watches the work of the others. One indexed question
    when none is."""
    now = home.clock()
    found = home.store.mark_missed(now)
    for task in found:
        home.recorder.missed(task, now)
    return found


def publish_metrics(home: Home, *, ran: bool) -> None:
    """With `[metrics] textfile` set: write the metrics there after a tick (or a pool's
    while) that ran something, else only move the file's time. Never fails the tick: a
    file that cannot be written, or a store that cannot be read then, is a warning."""
    path = home.config.metrics.textfile
    if path is None:
        return
    try:
        if not ran:
            with contextlib.suppress(FileNotFoundError):  # nothing is created for it
                os.utime(path)
            return
        from taskcron import metrics

        store = home.store
        samples = metrics.collect(store, home=home.path, host=store.host, now=home.clock())
        metrics.write_textfile(path, metrics.text(samples, openmetrics=False))
    except (OSError, errors.StoreError) as exc:  # the tick's work is done and recorded
        logger.warning("cannot write the metrics to %s: %s", path, exc)


def drain_settings(home: Home, budget: Budget, workers: int | None, max_tasks: int) -> PoolSettings:
    """A draining tick's pool: until nothing is due, the budget or `max_tasks` is spent."""
    from taskcron.pool import PoolSettings

    size = pool_size(home, workers)
    if int64("max tasks", max_tasks) < 0:
        raise errors.InputError(f"invalid max tasks {max_tasks}: must be 0 or more")
    return PoolSettings(
        workers=size,
        lanes=home.config.lanes,
        deadline=deadline_after(home, budget),
        max_tasks=max_tasks,
        lease=home.config.lease,
    )


def work_settings(home: Home, budget: Budget, workers: int | None) -> PoolSettings:
    """`taskcron work`'s pool: forever, each task with a deadline of its start plus `budget`."""
    from taskcron.pool import PoolSettings

    return PoolSettings(
        workers=pool_size(home, workers),
        lanes=home.config.lanes,
        forever=True,
        poll=home.config.poll,
        grace=home.config.kill_grace,
        lease=home.config.lease,
        task_budget=optional_duration(budget) if budget is not None else home.config.budget,
    )


def pool_size(home: Home, workers: int | None) -> int:
    """`workers`, else the config's; at least 1."""
    size = home.config.workers if workers is None else workers
    if int64("workers", size) < 1:
        raise errors.InputError(f"invalid workers {size}: must be at least 1")
    return size


def make_pool(
    home: Home,
    scope: Scope,
    settings: PoolSettings,
    watcher: Watcher | None,
    *,
    say: Say | None = None,
) -> Pool:
    """A pool over `scope` that claims and begins its runs through this module; `say`
    also hears when the store is lost or back (the log always does)."""
    from taskcron.pool import Pool

    def tell(lost: bool, message: str) -> None:
        home.recorder.say(lost, message)
        if say is not None:
            say(lost, message)

    outage = Outage(tell)
    home.recorder.queue_alerts()  # a delivery never delays a claim

    def begin(claim: Claim) -> RunLife:
        budget = settings.task_budget
        deadline = settings.deadline if budget is None else home.clock() + budget
        runner = "taskcron work" if settings.forever else "the tick"
        return begin_run(home, claim, deadline, watcher, pooled=True, runner=runner, outage=outage)

    return Pool(
        store=home.store,
        scope=scope,
        settings=settings,
        clock=home.clock,
        claim=lambda lanes: claim_next(home, scope, lanes),
        begin=begin,
        outage=outage,
        watch=lambda: watch_missed(home),
        metrics=lambda ran: publish_metrics(home, ran=ran),
    )


def deadline_after(home: Home, budget: Budget) -> datetime | None:
    """Now plus `budget` (default: the config's); None without a budget."""
    allowance = optional_duration(budget) if budget is not None else home.config.budget
    return None if allowance is None else home.clock() + allowance


def claim_next(home: Home, scope: Scope, lanes: Lanes | None) -> Claim:
    """Recover, then claim the next due task (in lanes, for a pool) and record what it did."""
    now = home.clock()
    claim = home.store.claim_next(
        scope=scope,
        now=now,
        lease=lease(home, now),
        decide=home.policy.after_run,
        skip=home.policy.after_skip,
        lanes=lanes,
    )
    after_claim(home.recorder, claim, home.store)
    if claim.outcome is not ClaimOutcome.CLAIMED:
        _record_no_run(home, claim, scope)
    return claim


def begin_run(
    home: Home,
    claim: Claim,
    deadline: datetime | None,
    watcher: Watcher | None,
    *,
    pooled: bool = False,
    runner: str = "the tick",
    outage: Outage | None = None,
) -> RunLife:
    """The life of a claimed run, with the settings to run it with (`RunLife.settings`).

    A pool's run is begun here (the pool starts its child itself), and its
    handler is imported in this process first, so that later forks start warm.
    """
    assert claim.run is not None
    chosen = run_settings(home, claim.run.id, deadline, preload=pooled)
    life = RunLife(
        max_steps=home.config.max_steps,
        keep=home.config.history.retention(),
        store=home.store,
        claim=claim,
        recorder=home.recorder,
        lease=lambda: lease(home, home.clock()),
        decide=home.policy.after_run,
        settings=replace(chosen, runner=runner),
        watcher=watcher,
        outage=outage,
    )
    if pooled:
        life.begin()
    return life


def _record_no_run(home: Home, claim: Claim, scope: Scope) -> None:
    if claim.outcome is ClaimOutcome.IDLE:
        event, message = Event.TICK_IDLE, "nothing due"
    else:
        event, message = Event.TICK_BUSY, "a task in scope is running"
    home.recorder.emit(
        event, level="debug", task=claim.task, message=message, scope=scope.to_json()
    )


def run_settings(
    home: Home, run_id: int, deadline: datetime | None, *, preload: bool = False
) -> RunSettings:
    """How the runner runs `run_id`: the home's settings and the run's deadline."""
    from taskcron.runner import RunSettings

    config = home.config
    return RunSettings(
        preload=preload,
        run_id=run_id,
        import_paths=config.import_paths,
        modules=config.modules,
        cwd=config.directory,
        deadline=deadline,
        kill_grace=config.kill_grace,
        renew_every=config.lease / 3,
        lease=config.lease,
        output_tail=config.log.output_tail,
        log_level=config.log.level,
    )


def lease(home: Home, now: datetime) -> Lease:
    """A lease held by this process on this host, from `now` for the configured time."""
    store = home.store
    return Lease(
        host=store.host,
        machine=store.machine,
        pid=os.getpid(),
        expires_at=now + home.config.lease,
    )
