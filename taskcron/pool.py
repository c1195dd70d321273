"""Many runs from one process: draining ticks, pools with lanes, and `taskcron work`.

A `Pool` claims due tasks and runs them in forked children under one
`Supervisor` loop, up to `workers` at a time, and yields each run's
`TickResult` as it ends.

- A **drain** of one worker is a series of plain ticks: before each task it
  applies the busy rule (a running task in scope stops it), and it stops when
  nothing is due.
- A **pool** (more than one worker, or `work`) is bounded by lanes instead:
  its claims pass over module ids whose lane is full, checked in the claim's
  transaction. Only one pool per scope runs on a host: it registers itself in
  the store, and a second one with an overlapping scope finds it there.
- The store may go away meanwhile (a restart, a failover): claims wait and try
  again (at once, then after 0.1 s, doubling up to 2 s), running tasks go on
  while their leases hold, and an end that cannot be recorded is kept and
  recorded once the store answers, if its lease still holds. `outage` says
  once that the store is lost and once that it is back. A drain with nothing
  running and no budget ends with the error instead.
- `work` on a store that tells of its writes (PostgreSQL's LISTEN/NOTIFY) waits on
  that too: a task scheduled, put back or made due sooner while it waits ends the
  wait at once, and the pool claims. The poll stays, for what a lost listening
  connection missed; that connection is opened again once the store answers.
- Claiming stops at the budget's deadline (a pool then gives up its scope, so
  that the next one can serve the other lanes while its last tasks finish),
  after `max_tasks` starts, and when a stop signal arrives.

A tick's pool treats a signal as a plain tick does: its running tasks are
stopped at once and recorded `interrupted`. `work` lets them finish for up to
the kill grace first.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from taskcron import errors
from taskcron.lifecycle import RunLife, TickResult
from taskcron.model import Lanes, RunEnd, Scope
from taskcron.outage import Outage, delay
from taskcron.runner import Execution, Supervisor
from taskcron.store import Claim, ClaimOutcome, PoolLease
from taskcron.values import field, value

#: How often a pool looks for missed runs, at most (seconds): at its start, then so.
WATCH_EVERY = 15.0
#: How often `work` writes the metrics' textfile, at most (seconds).
METRICS_EVERY = 5.0

if TYPE_CHECKING:
    from taskcron.store import Store, WakeSource

logger = logging.getLogger(__name__)

#: Claim the next task: with `Lanes` as a pool does, or with None under the busy rule.
ClaimNext = Callable[[Lanes | None], Claim]
#: Start the life of a claimed run: its `RunLife` and how to run it.
Begin = Callable[[Claim], RunLife]


@value
class PoolSettings:
    """How a pool runs: its size, its limits, and whether it keeps waiting for work."""

    workers: int = 1
    lanes: Lanes = field(default_factory=Lanes)
    deadline: datetime | None = None  #: No task starts after it (the tick's budget).
    max_tasks: int = 0  #: Stop claiming after this many starts; 0: no limit.
    forever: bool = False  #: `work`: wait for due tasks instead of stopping when none is.
    poll: timedelta = timedelta(seconds=1)  #: How often `work` looks for due tasks.
    grace: timedelta = timedelta(seconds=10)  #: `work`: how long tasks may finish after a signal.
    lease: timedelta = timedelta(seconds=30)  #: The pool's registration lasts this long, renewed.
    #: `work`: each task's deadline is its start plus this (None: no deadline).
    task_budget: timedelta | None = None

    @property
    def is_pool(self) -> bool:
        """A pool is `work`, or a drain of more than one worker: lanes bound it, not busy."""
        return self.forever or self.workers > 1


class Pool:
    """Claims and runs tasks of one scope until it is told, or finds no reason, to stop."""

    def __init__(
        self,
        *,
        store: Store,
        scope: Scope,
        settings: PoolSettings,
        clock: Callable[[], datetime],
        claim: ClaimNext,
        begin: Begin,
        outage: Outage,
        watch: Callable[[], object] = lambda: None,
        metrics: Callable[[bool], object] = lambda ran: None,
    ) -> None:
        self.store = store
        self.scope = scope
        self.settings = settings
        self.clock = clock
        self._claim = claim
        self._begin = begin
        self._watch = watch  #: Records the missed runs of any scope (`ticking.watch_missed`).
        self._watched_at: float | None = None  # monotonic seconds
        #: Writes the metrics' textfile (`ticking.publish_metrics`): after a drain, and
        #: every METRICS_EVERY seconds from `work`.
        self._metrics = metrics
        self._published_at = time.monotonic()
        self.signal: int | None = None  #: The stop signal that ended it, if one did.
        self.started = 0
        self.stopped_in_grace = True  #: Every task running at a signal finished in time.
        self._registration: PoolLease | None = None
        self._lives: dict[Execution, RunLife] = {}
        self.outage = outage  #: Whether the store answers; shared with the runs' lives.
        #: Runs that ended while the store could not be reached: recorded when it can be.
        self._unrecorded: list[tuple[RunLife, RunEnd]] = []
        self._lost: errors.StoreUnreachable | None = None  #: The last call the store failed.

    def __iter__(self) -> Iterator[TickResult]:
        return self.run()

    def run(self) -> Iterator[TickResult]:
        """Run tasks and yield each one's result as it ends; a busy or idle result when none ran.

        With `forever` it ends only on a signal. `PoolBusyError` when `work`
        finds another pool serving its scope on this host.
        """
        if self.settings.is_pool and not self._register():
            if self.settings.forever:
                assert self._registration is not None
                holder = self.store.serving_pool(self._registration, now=self.clock())
                if holder is None:  # it ended meanwhile: the next start will serve
                    raise errors.PoolBusyError(0, self.scope.modules, self.scope.excepts)
                raise errors.PoolBusyError(holder.pid, holder.scope.modules, holder.scope.excepts)
            yield TickResult(outcome=ClaimOutcome.BUSY.value)
            return
        try:
            with Supervisor(self.clock) as supervisor:
                yield from self._serve(supervisor)
        finally:
            self._release()

    def _serve(self, supervisor: Supervisor) -> Iterator[TickResult]:
        wakes = Wakes(self.store, supervisor, lambda: supervisor.running < self.settings.workers)
        try:
            yield from self._loop(supervisor, wakes)
        finally:
            wakes.close()

    def _loop(self, supervisor: Supervisor, wakes: Wakes) -> Iterator[TickResult]:
        claiming, quiet = True, None
        self._watch_missed()
        while True:
            while claiming and supervisor.running < self.settings.workers and self.outage.due():
                claiming, outcome = self._start_next(supervisor)
                if outcome is not None:
                    quiet = quiet or outcome
                    break
            if claiming and not supervisor.running and not self.settings.forever:
                claiming = self.outage.down  # a drain waits for the store, within its budget
            if not claiming and not supervisor.running and not self._unrecorded:
                if self.outage.down and self._lost is not None and not self.settings.forever:
                    raise self._lost  # a drain that ends without its store says so
                if not self.settings.forever:
                    self._publish(ran=self.started > 0)
                if self.started == 0 and quiet is not None and not self.settings.forever:
                    yield TickResult(outcome=quiet.value)
                return
            timeout = self._wait_time(claiming)
            if claiming and self.settings.forever and not self.outage.down and wakes.listen():
                timeout = 0.0  # listening from now on: one more claim finds what came before
            for execution in supervisor.wait(timeout):
                if execution.stopped_by is not None:
                    self.stopped_in_grace = False
                life = self._lives.pop(execution)
                self._unrecorded.append((life, life.ending(execution.end())))
            yield from self._record()
            if supervisor.signalled is not None and self.signal is None:
                claiming = False
                self._on_signal(supervisor)
            self._renew()
            self._watch_missed()
            if self.settings.forever and time.monotonic() - self._published_at >= METRICS_EVERY:
                self._publish(ran=True)

    def _watch_missed(self) -> None:
        """Look for missed runs at the start, then every WATCH_EVERY seconds at most,
        while the store answers."""
        now = time.monotonic()
        if self._watched_at is not None and now - self._watched_at < WATCH_EVERY:
            return
        if self.outage.down:
            return
        self._watched_at = now
        try:
            self._watch()
        except errors.StoreUnreachable as exc:
            self.outage.lost(exc)

    def _publish(self, *, ran: bool) -> None:
        """Write the metrics' textfile (or move its time when nothing ran), while the
        store answers (it never raises: `ticking.publish_metrics`)."""
        self._published_at = time.monotonic()
        if not self.outage.down:
            self._metrics(ran)

    def _record(self) -> Iterator[TickResult]:
        """Record the ends not yet recorded, oldest first, while the store answers."""
        while self._unrecorded and self.outage.due():
            life, end = self._unrecorded[0]
            try:
                task = life.record(end)
            except errors.StoreUnreachable as exc:
                self._lost = exc
                self.outage.lost(exc)
                self._give_up(exc)
                return
            del self._unrecorded[0]
            yield life.tick_result(task, end)

    def _give_up(self, exc: errors.StoreError) -> None:
        """Drop the ends whose lease has run out (another tick records them `interrupted`),
        each with a warning in the log."""
        kept = []
        for life, end in self._unrecorded:
            if life.lease_left > 0:
                kept.append((life, end))
            else:
                life.unrecorded(exc)
        self._unrecorded = kept

    def _start_next(self, supervisor: Supervisor) -> tuple[bool, ClaimOutcome | None]:
        """Claim and start one task: (go on claiming?, what was found when none started)."""
        settings = self.settings
        if supervisor.signalled is not None:
            return False, None
        if settings.max_tasks and self.started >= settings.max_tasks:
            return False, None
        if settings.deadline is not None and self.clock() >= settings.deadline:
            self._release()  # the next pool may serve the other lanes meanwhile
            return False, None
        try:
            claim = self._claim(settings.lanes if settings.is_pool else None)
        except errors.StoreUnreachable as exc:
            if not (
                settings.forever or supervisor.running or self._unrecorded or settings.deadline
            ):
                raise  # a drain with nothing to wait for ends with its one line
            self._lost = exc
            self.outage.lost(exc)
            return True, None
        self.outage.back()
        if claim.outcome is not ClaimOutcome.CLAIMED:
            # A drain of one stops when busy or idle; a pool waits for a lane or a due task.
            go_on = settings.is_pool and (settings.forever or supervisor.running > 0)
            return go_on, claim.outcome
        assert claim.task is not None
        life = self._begin(claim)
        execution = supervisor.start(claim.task, life.settings, life)
        self._lives[execution] = life
        self.started += 1
        return True, None

    def _wait_time(self, claiming: bool) -> float | None:
        waits = []
        if self._registration is not None:
            waits.append(self.settings.lease.total_seconds() / 3)
        if claiming and self.settings.forever:
            waits.append(self.settings.poll.total_seconds())
        if self.outage.down and (claiming or self._unrecorded):
            waits.append(self.outage.wait())
        return min(waits) if waits else None

    def _on_signal(self, supervisor: Supervisor) -> None:
        self.signal = supervisor.signalled
        grace = self.settings.grace.total_seconds() if self.settings.forever else 0.0
        supervisor.stop_all(after=grace)

    # --- the pool's registration on this host ----------------------------------------

    def _register(self) -> bool:
        now = self.clock()
        lease = PoolLease(
            host=self.store.host,
            machine=self.store.machine,
            pid=os.getpid(),
            scope=self.scope,
            expires_at=now + self.settings.lease,
        )
        self._registration = lease
        pool_id = self.store.register_pool(lease, now=now)
        if pool_id is None:
            return False
        self._registration = PoolLease(
            host=lease.host,
            pid=lease.pid,
            scope=lease.scope,
            expires_at=lease.expires_at,
            id=pool_id,
        )
        self._next_renewal = time.monotonic() + self.settings.lease.total_seconds() / 3
        return True

    def _renew(self) -> None:
        registration = self._registration
        if registration is None or registration.id is None:
            return
        if time.monotonic() < self._next_renewal or not self.outage.due():
            return
        try:
            self.store.renew_pool(registration.id, expires_at=self.clock() + self.settings.lease)
        except errors.StoreUnreachable as exc:
            self.outage.lost(exc)  # while it lasts, another pool of this scope could start
            return
        self._next_renewal = time.monotonic() + self.settings.lease.total_seconds() / 3

    def _release(self) -> None:
        registration, self._registration = self._registration, None
        if registration is not None and registration.id is not None:
            with contextlib.suppress(errors.StoreUnreachable):  # it expires by itself
                self.store.release_pool(registration.id)


class Wakes:
    """`work`'s wake-ups: the store's `WakeSource`, watched by the supervisor, so that news
    of a task ends the pool's wait when `wanted()` says it has room.

    A source that is lost is closed, and opened again by `listen` after the store's
    retry delays (at once, then 0.1 s, doubling up to 2 s); meanwhile the poll serves.
    """

    def __init__(self, store: Store, supervisor: Supervisor, wanted: Callable[[], bool]) -> None:
        self._store = store
        self._supervisor = supervisor
        self._wanted = wanted
        self._source: WakeSource | None = None
        self._fd = -1  #: The source's descriptor, as watched (a lost one may not say).
        self._failures = 0
        self._retry_at = 0.0  #: Monotonic seconds: no new source before.

    def listen(self) -> bool:
        """Open a source if none is open and a try is due; whether one was opened now."""
        if self._source is not None or time.monotonic() < self._retry_at:
            return False
        try:
            source = self._store.wake_source()
        except errors.StoreUnreachable:
            self._lost()
            return False
        except errors.StoreError as exc:
            logger.warning("no wake-ups from the store, polling only: %s", exc)
            self._retry_at = math.inf
            return False
        if source is None:  # the store cannot tell: the poll alone
            self._retry_at = math.inf
            return False
        self._source, self._fd, self._failures = source, source.fileno(), 0
        self._supervisor.watch(self._fd, self._ready)
        return True

    def _ready(self) -> bool:
        assert self._source is not None
        try:
            self._source.drain()
        except errors.StoreError:
            self.close()
            self._lost()
            return True  # the claim that follows finds out whether the store is away
        return self._wanted()

    def _lost(self) -> None:
        self._failures += 1
        self._retry_at = time.monotonic() + delay(self._failures)

    def close(self) -> None:
        """Stop watching, and release the source's connection."""
        source, self._source = self._source, None
        if source is not None:
            self._supervisor.unwatch(self._fd)
            source.close()
